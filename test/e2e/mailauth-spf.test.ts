/*
 * SPF (RFC 7208) at MAIL FROM with `mailauth verify spf-reject`, against
 * a real DNS server (nsd on loopback) and compared, case by case, with
 * pyspf, the reference implementation, asking the same server: pass,
 * fail (refused 550 5.7.23 at MAIL), softfail, neutral, none, permerror
 * (syntax, more than 10 DNS-querying terms, more than 2 void lookups),
 * temperror (the server refuses: 451 4.7.24, never a pass or a fail).
 * Also ARC: a chain sealed by dkimpy verifies (arc=pass), and one broken
 * after sealing fails.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNsd, type NsdHandle } from '../helpers/nsd.js';
import { basicConfig, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient } from '../helpers/smtp-client.js';
import { pyspf } from '../helpers/pyspf.js';
import { dkimpyArcSign, dkimpySign, rsaKey, txtStrings, type TestKey } from '../helpers/dkimpy.js';

const OK_IP = '127.0.14.30';
const OTHER_IP = '127.0.14.31';
const HELO = 'client.pass.test';
let dns: NsdHandle;
let d: DaemonHandle;
let orig: TestKey;
let fwd: TestKey;

before(async () => {
  orig = rsaKey();
  fwd = rsaKey();
  const includes = Array.from({ length: 11 }, (_, i) => `include:l${i}.limit.test`).join(' ');
  dns = await startNsd({
    address: '127.0.14.54',
    zones: {
      test: [
        `pass TXT "v=spf1 ip4:${OK_IP} -all"`,
        `client.pass A ${OK_IP}`,
        `soft TXT "v=spf1 ip4:${OK_IP} ~all"`,
        `neutral TXT "v=spf1 ?all"`,
        `perm TXT "v=spf1 ip4:${OK_IP} bogus:thing -all"`,
        `limit TXT "v=spf1 ${includes} -all"`,
        ...Array.from({ length: 11 }, (_, i) => `l${i}.limit TXT "v=spf1 ip4:192.0.2.${i + 1}"`),
        `void TXT "v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test ip4:${OTHER_IP} -all"`,
        `orig TXT "v=spf1 ip4:${OK_IP} -all"`,
        `_dmarc.orig TXT "v=DMARC1; p=none"`,
        `s1._domainkey.orig TXT ${txtStrings(orig.record)}`,
        `arc._domainkey.fwd TXT ${txtStrings(fwd.record)}`,
      ],
    },
  });
  d = await startDaemon(basicConfig(`resolver "${dns.server}"\nmailauth verify spf-reject`));
});

after(async () => {
  await d?.stop();
  d?.cleanup();
  await dns?.close();
});

async function transaction(ip: string, sender: string, content = 'Subject: spf\r\n\r\nhi\r\n'): Promise<{ mail: string; final?: string }> {
  const c = await RawClient.open(d.port, '127.0.0.1', ip);
  try {
    await c.reply();
    c.send(`EHLO ${HELO}\r\n`);
    await c.reply();
    c.send(`MAIL FROM:<${sender}>\r\n`);
    const mail = await c.reply(30_000);
    if (mail.code !== 250) return { mail: mail.text };
    c.send('RCPT TO:<root@test.example>\r\nDATA\r\n');
    await c.reply();
    await c.reply();
    c.send(`${content}.\r\n`);
    const final = await c.reply(30_000);
    c.send('QUIT\r\n');
    return { mail: mail.text, final: final.text };
  } finally {
    c.close();
  }
}

const CASES: readonly { name: string; ip: string; sender: string; expect: string }[] = [
  { name: 'pass', ip: OK_IP, sender: 'a@pass.test', expect: 'pass' },
  { name: 'fail', ip: OTHER_IP, sender: 'a@pass.test', expect: 'fail' },
  { name: 'softfail', ip: OTHER_IP, sender: 'a@soft.test', expect: 'softfail' },
  { name: 'neutral', ip: OTHER_IP, sender: 'a@neutral.test', expect: 'neutral' },
  { name: 'none', ip: OTHER_IP, sender: 'a@norecord.test', expect: 'none' },
  { name: 'permerror (syntax)', ip: OTHER_IP, sender: 'a@perm.test', expect: 'permerror' },
  { name: 'permerror (11 DNS-querying terms)', ip: OTHER_IP, sender: 'a@limit.test', expect: 'permerror' },
  { name: 'permerror (3 void lookups)', ip: OTHER_IP, sender: 'a@void.test', expect: 'permerror' },
  { name: 'temperror (the DNS server refuses)', ip: OTHER_IP, sender: 'a@example.invalid', expect: 'temperror' },
];

for (const c of CASES) {
  test(`SPF ${c.name}: Postern and pyspf agree`, async () => {
    assert.equal(pyspf(dns, c.ip, c.sender, HELO), c.expect, 'pyspf');
    const r = await transaction(c.ip, c.sender);
    if (c.expect === 'fail') {
      assert.match(r.mail, /^550 5\.7\.23 SPF check failed/);
      await d.waitForLog(/smtp failed-command session=\S+ address=127\.0\.14\.31 command="MAIL FROM:<a@pass\.test>" result="550 5\.7\.23 SPF check failed/);
      return;
    }
    if (c.expect === 'temperror') {
      assert.match(r.mail, /^451 4\.7\.24 /);
      return;
    }
    assert.match(r.mail, /^250 /);
    assert.match(r.final ?? '', /^250 /);
    const domain = c.sender.split('@')[1] ?? '';
    await d.waitForLog(new RegExp(`smtp auth session=\\S+ msgid=\\S+ spf=${c.expect}:${domain.replace(/\./g, '\\.')} `));
  });
}

function arcMessage(): Buffer {
  const msg = Buffer.from('From: A <a@orig.test>\r\nTo: list@fwd.test\r\nSubject: forwarded\r\nMessage-ID: <arc1@orig.test>\r\n\r\nThe original text.\r\n', 'latin1');
  const signed = Buffer.concat([Buffer.from(dkimpySign(msg, orig, 's1', 'orig.test'), 'latin1'), msg]);
  // The forwarder's own verdict, then its ARC set (instance 1).
  const withAr = Buffer.concat([Buffer.from('Authentication-Results: fwd.test; dkim=pass header.d=orig.test; spf=pass smtp.mailfrom=orig.test\r\n', 'latin1'), signed]);
  const arcSet = dkimpyArcSign(withAr, fwd, 'arc', 'fwd.test', 'fwd.test', { 's1._domainkey.orig.test': orig.record });
  return Buffer.concat([Buffer.from(arcSet, 'latin1'), withAr]);
}

test('ARC: a chain sealed by dkimpy passes; the same message changed after sealing fails', async () => {
  const sealed = arcMessage();
  // From the forwarder's address, not the original sender's: SPF fails for orig.test, but it is p=none.
  let r = await transaction(OTHER_IP, 'list@neutral.test', sealed.toString('latin1'));
  assert.match(r.final ?? '', /^250 /);
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ spf=neutral:neutral\.test dkim=pass:orig\.test dmarc="pass:p=none" arc=pass/);
  const broken = sealed.toString('latin1').replace('The original text.', 'A changed text.');
  r = await transaction(OTHER_IP, 'list@neutral.test', broken);
  assert.match(r.final ?? '', /^250 /);
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ spf=neutral:neutral\.test dkim=\w+:orig\.test dmarc="fail:p=none" arc=fail/);
});
