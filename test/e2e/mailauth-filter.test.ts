/*
 * Acting on mail-authentication results at the end of data: built-in
 * filters at `phase commit` with spf/dkim/dmarc/arc conditions, end to end
 * — a real smtpd with `mailauth verify`, a real nsd (test/helpers/nsd.ts)
 * serving the records, messages signed by dkimpy and forged ones, clients
 * from this test's own loopback range (127.0.23.0/24, not `local`):
 *
 *   genuine (DKIM and SPF pass)         tagged by `tag "X-DKIM-Verified: yes"`
 *   forged (bad signature, SPF fail)    refused by `reject "550 5.7.1 …"`
 *   SPF softfail, DMARC fail            held by `quarantine`
 *   no SPF, no DKIM, no DMARC           marked by `junk` (X-Spam: yes)
 *   from 127.0.0.1 (local: unchecked)   no result condition holds, negated or not
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startNsd, type NsdHandle } from '../helpers/nsd.js';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { dkimpySign, dkimpyVerify, rsaKey, txtStrings, type TestKey } from '../helpers/dkimpy.js';
import { filterConfig } from './filter-helpers.js';
import { authMessage, queued, sendFrom } from './mailauth-helpers.js';

const GOOD_IP = '127.0.23.10';
const OTHER_IP = '127.0.23.11';
let dns: NsdHandle;
let d: DaemonHandle;
let key: TestKey;
let wrongKey: TestKey;
const records: Record<string, string> = {};

const FILTERS = `
filter "verified" phase commit match dkim pass spf pass tag "X-DKIM-Verified: yes"
filter "forged" phase commit match dmarc fail spf { fail, permerror } reject "550 5.7.1 Forged mail: DMARC and SPF fail"
filter "soft" phase commit match spf softfail dmarc fail quarantine
filter "unknown" phase commit match dkim none dmarc none junk
filter "unsigned" phase commit match !dkim pass !dkim none tag "X-Bad-Signature: yes"
filter "auth" chain { verified, forged, soft, unknown, unsigned }`;

before(async () => {
  key = rsaKey();
  wrongKey = rsaKey();
  records['sel._domainkey.good.test'] = key.record;
  dns = await startNsd({
    address: '127.0.23.53',
    zones: {
      test: [
        `good TXT "v=spf1 ip4:${GOOD_IP} -all"`,
        '_dmarc.good TXT "v=DMARC1; p=none"',
        `sel._domainkey.good TXT ${txtStrings(key.record)}`,
        'soft TXT "v=spf1 ~all"',
        '_dmarc.soft TXT "v=DMARC1; p=none"',
        'plain TXT "v=spf1 ?all"',
      ],
    },
  });
  d = await startDaemon(filterConfig(FILTERS, 'auth', `resolver "${dns.server}"\nmailauth verify`), { dir: tempDir('postern-authfilter-') });
});

after(async () => {
  await d?.stop();
  d?.cleanup();
  await dns?.close();
});

const message = (from: string, subject: string): Buffer => authMessage(from, subject);

function signed(msg: Buffer, k: TestKey): Buffer {
  return Buffer.concat([Buffer.from(dkimpySign(msg, k, 'sel', 'good.test'), 'latin1'), msg]);
}

const send = async (ip: string, sender: string, content: Buffer): Promise<string> => (await sendFrom(d.port, ip, sender, content)).final;
const stored = (subject: string): Promise<{ body: string; held: boolean }> => queued(d.dir, subject);

test('a genuine message (dkimpy signature and SPF pass) is tagged, not refused or marked', async () => {
  const msg = signed(message('a@good.test', 'genuine'), key);
  assert.deepEqual(dkimpyVerify(msg, records), [true], 'dkimpy verifies the signature');
  assert.match(await send(GOOD_IP, 'a@good.test', msg), /^250 /);
  const { body } = await stored('genuine');
  assert.match(body, /^X-DKIM-Verified: yes\r\n/m);
  assert.doesNotMatch(body, /X-Spam:|X-Bad-Signature:/);
  assert.match(body, /Authentication-Results: mx\.test\.example;[^]*dkim=pass/);
});

test('a forged message (signed with another key, from an address SPF forbids) is refused at the end of data', async () => {
  const msg = signed(message('a@good.test', 'forged'), wrongKey);
  assert.deepEqual(dkimpyVerify(msg, records), [false], 'dkimpy says the signature fails');
  assert.match(await send(OTHER_IP, 'a@good.test', msg), /^550 5\.7\.1 Forged mail: DMARC and SPF fail/);
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ spf=fail:good\.test dkim=fail:good\.test dmarc="fail:p=none"/);
  const all = await spoolMessages(join(d.dir, 'spool'));
  assert.ok(!all.some((m) => m.body.includes('Subject: forged\r\n')), 'nothing stored');
});

test('SPF softfail with DMARC fail is quarantined (queued held)', async () => {
  assert.match(await send(OTHER_IP, 'a@soft.test', message('a@soft.test', 'softfail')), /^250 /);
  await d.waitForLog(/filter quarantine session=\S+ msgid=\S+ filter=soft/);
  await d.waitForLog(/held session=\S+ msgid=\S+ reason="filter soft \(/);
});

test('no SPF, DKIM or DMARC at all: junk (X-Spam: yes); a bad signature alone: tagged by a negated condition', async () => {
  assert.match(await send(OTHER_IP, 'a@plain.test', message('a@plain.test', 'unknown')), /^250 /);
  const { body } = await stored('unknown');
  assert.match(body, /^X-Spam: yes\r\n/m);
  // good.test's SPF passes from GOOD_IP, so "forged" does not refuse it; the broken signature is what "unsigned" tags.
  assert.match(await send(GOOD_IP, 'a@good.test', signed(message('a@good.test', 'bad signature'), wrongKey)), /^250 /);
  const bad = await stored('bad signature');
  assert.match(bad.body, /^X-Bad-Signature: yes\r\n/m);
});

test('mail from a local client is not checked: result conditions hold neither plain nor negated', async () => {
  assert.match(await send('127.0.0.1', 'a@plain.test', message('a@plain.test', 'local one')), /^250 /);
  const { body } = await stored('local one');
  assert.doesNotMatch(body, /X-Spam:|X-Bad-Signature:|X-DKIM-Verified:/);
});
