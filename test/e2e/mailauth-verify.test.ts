/*
 * Inbound mail authentication end to end: a real smtpd, a real DNS server
 * (nsd on loopback, test/helpers/nsd.ts) serving SPF, DKIM and DMARC
 * records, messages signed by a third party (dkimpy), clients connecting
 * from addresses of this test's own loopback range (127.0.14.0/24) so that
 * they are not `local`. What dkimpy says of a signature, Postern must say
 * too; the stored message carries one Authentication-Results field.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startNsd, type NsdHandle } from '../helpers/nsd.js';
import { basicConfig, startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient } from '../helpers/smtp-client.js';
import { spoolMessages } from '../helpers/inproc.js';
import { authMessage, queued, sendFrom } from './mailauth-helpers.js';
import { dkimpySign, dkimpyVerify, ed25519Key, rsaKey, txtStrings, type TestKey } from '../helpers/dkimpy.js';

const GOOD_IP = '127.0.14.10';
const OTHER_IP = '127.0.14.11';
let dns: NsdHandle;
let d: DaemonHandle;
let rsa: TestKey;
let ed: TestKey;
const records: Record<string, string> = {};

function zone(): string[] {
  const big = 'A'.repeat(6000);
  return [
    `good      TXT "v=spf1 ip4:${GOOD_IP} -all"`,
    `_dmarc.good TXT "v=DMARC1; p=reject"`,
    `rsa._domainkey.good TXT ${txtStrings(records['rsa._domainkey.good.test'] ?? '')}`,
    `ed._domainkey.good TXT ${txtStrings(records['ed._domainkey.good.test'] ?? '')}`,
    `bad._domainkey.good TXT "v=DKIM1; k=rsa; p=!!!this is not base64!!!"`,
    `big._domainkey.good TXT ${txtStrings(`v=DKIM1; k=rsa; p=${big}`)}`,
    `soft      TXT "v=spf1 ~all"`,
    `_dmarc.soft TXT "v=DMARC1; p=none"`,
    `perm      TXT "v=spf1 ip4:999.1.1.1 -all"`,
    `quar      TXT "v=spf1 ip4:${GOOD_IP} -all"`,
    `_dmarc.quar TXT "v=DMARC1; p=quarantine"`,
    `baddmarc  TXT "v=spf1 ip4:${GOOD_IP} -all"`,
    `_dmarc.baddmarc TXT "v=DMARC1; p=; pct=lots; rua=not a uri"`,
    `badspf    TXT "v=spf1 include: redirect==x -all"`,
  ];
}

before(async () => {
  rsa = rsaKey();
  ed = ed25519Key();
  records['rsa._domainkey.good.test'] = rsa.record;
  records['ed._domainkey.good.test'] = ed.record;
  dns = await startNsd({ address: '127.0.14.53', zones: { test: zone() } });
  d = await startDaemon(basicConfig(`resolver "${dns.server}"\nmailauth verify dmarc-reject quarantine hold`));
});

after(async () => {
  await d?.stop();
  d?.cleanup();
  await dns?.close();
});

const message = (from: string, subject: string, extraHeaders = ''): Buffer => authMessage(from, subject, extraHeaders);
const send = (ip: string, sender: string, content: Buffer): Promise<{ mail: number; final: string }> => sendFrom(d.port, ip, sender, content);
const stored = async (subject: string): Promise<string> => (await queued(d.dir, subject)).body;

function ar(body: string): string {
  const fields = body.split(/\r\n(?=\S)/).filter((f) => /^Authentication-Results:/i.test(f));
  const ours = fields.filter((f) => /^Authentication-Results:\s*mx\.test\.example;/i.test(f));
  assert.equal(ours.length, 1, `one Authentication-Results of ours:\n${fields.join('\n')}`);
  return (ours[0] ?? '').replace(/\r\n\s+/g, ' ');
}

test('RSA and Ed25519 signatures made by dkimpy pass, SPF and DMARC pass; a forged Authentication-Results of ours is removed', async () => {
  const forged = 'Authentication-Results: mx.test.example; dkim=pass header.d=bank.example\r\nAuthentication-Results: other.example; spf=pass\r\n';
  const msg = message('a@good.test', 'dual signed', forged);
  const signed = Buffer.concat([Buffer.from(dkimpySign(msg, ed, 'ed', 'good.test') + dkimpySign(msg, rsa, 'rsa', 'good.test'), 'latin1'), msg]);
  assert.deepEqual(dkimpyVerify(signed, records), [true, true], 'dkimpy verifies its own signatures');
  const r = await send(GOOD_IP, 'a@good.test', signed);
  assert.match(r.final, /^250 /);
  const body = await stored('dual signed');
  const h = ar(body);
  assert.match(h, /dkim=pass header\.i=@good\.test header\.s=ed header\.a=ed25519-sha256/);
  assert.match(h, /dkim=pass header\.i=@good\.test header\.s=rsa header\.a=rsa-sha256/);
  assert.match(h, /spf=pass [^;]*smtp\.mailfrom=good\.test/);
  assert.match(h, /dmarc=pass/);
  assert.doesNotMatch(body, /header\.d=bank\.example/, 'the forged field is gone');
  assert.match(body, /Authentication-Results: other\.example; spf=pass/, 'another ADMD\'s field is kept');
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ spf=pass:good\.test dkim=pass:good\.test,pass:good\.test dmarc="pass:p=reject" arc=none removed=1 verdict=accept/);
});

test('a body changed after signing: dkimpy and Postern both say fail; p=reject with no aligned pass is refused 550 5.7.1', async () => {
  const msg = message('a@good.test', 'tampered');
  const sig = dkimpySign(msg, rsa, 'rsa', 'good.test');
  const tampered = Buffer.concat([Buffer.from(sig, 'latin1'), Buffer.from(msg.toString('latin1').replace('Hello', 'Hullo'), 'latin1')]);
  assert.deepEqual(dkimpyVerify(tampered, records), [false]);
  const r = await send(OTHER_IP, 'a@good.test', tampered);
  assert.match(r.final, /^550 5\.7\.1 .*DMARC/);
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ spf=fail:good\.test dkim=neutral:good\.test dmarc="fail:p=reject" arc=none verdict=refuse/);
});

test('the same tampered body from the SPF-permitted address passes DMARC through SPF alone', async () => {
  const msg = message('a@good.test', 'tampered spf ok');
  const sig = dkimpySign(msg, rsa, 'rsa', 'good.test');
  const tampered = Buffer.concat([Buffer.from(sig, 'latin1'), Buffer.from(msg.toString('latin1').replace('Hello', 'Hullo'), 'latin1')]);
  const r = await send(GOOD_IP, 'a@good.test', tampered);
  assert.match(r.final, /^250 /);
  const h = ar(await stored('tampered spf ok'));
  assert.match(h, /dkim=neutral \(body hash did not verify\)/, 'mailauth reports a body hash mismatch as neutral (dkimpy: not verified)');
  assert.match(h, /spf=pass/);
  assert.match(h, /dmarc=pass/);
});

test('SPF softfail and permerror are reported, p=none accepts', async () => {
  let r = await send(OTHER_IP, 'a@soft.test', message('a@soft.test', 'softfail'));
  assert.match(r.final, /^250 /);
  assert.match(ar(await stored('softfail')), /spf=softfail/);
  r = await send(OTHER_IP, 'a@perm.test', message('a@perm.test', 'permerror'));
  assert.match(r.final, /^250 /);
  assert.match(ar(await stored('permerror')), /spf=permerror/);
});

test('p=quarantine failing DMARC is held (quarantine hold)', async () => {
  const r = await send(OTHER_IP, 'a@quar.test', message('a@quar.test', 'quarantined'));
  assert.match(r.final, /^250 /);
  await d.waitForLog(/smtp held session=\S+ msgid=\S+ reason="mailauth: dmarc=fail policy=quarantine header\.from=quar\.test"/);
});

test('DNS failure where DMARC is enforced: 451 4.7.0, never a silent pass or fail', async () => {
  // nsd answers REFUSED for names outside its zones: a server failure as the resolver sees it.
  const r = await send(OTHER_IP, 'a@elsewhere.invalid', message('a@elsewhere.invalid', 'dns failure'));
  assert.match(r.final, /^451 4\.7\.0 /);
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ spf=temperror.* dmarc=temperror/);
});

test('bad input: a malformed key record, an oversized key record, a signature over thousands of headers — each a result and a log line', async () => {
  const msg = message('a@good.test', 'malformed key');
  const sig = dkimpySign(msg, rsa, 'bad', 'good.test');
  let r = await send(GOOD_IP, 'a@good.test', Buffer.concat([Buffer.from(sig, 'latin1'), msg]));
  assert.match(r.final, /^250 /);
  assert.match(ar(await stored('malformed key')), /dkim=(neutral|permerror|fail)[^;]*header\.s=bad/);

  const msg2 = message('a@good.test', 'oversized key');
  const sig2 = dkimpySign(msg2, rsa, 'big', 'good.test');
  r = await send(GOOD_IP, 'a@good.test', Buffer.concat([Buffer.from(sig2, 'latin1'), msg2]));
  assert.match(r.final, /^250 /);
  assert.match(ar(await stored('oversized key')), /dkim=(neutral|permerror|fail)[^;]*header\.s=big/);

  // 5,000 header fields, and a signature whose h= names 20,000 of them.
  const many = Array.from({ length: 5000 }, (_, i) => `X-Filler: ${i}\r\n`).join('');
  const msg3 = message('a@good.test', 'absurd header count', many);
  const h = Array.from({ length: 20000 }, () => 'x-filler').join(':');
  const forgedSig = `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=good.test; s=rsa; h=from:${h}; bh=AAAA; b=AAAA\r\n`;
  r = await send(GOOD_IP, 'a@good.test', Buffer.concat([Buffer.from(forgedSig, 'latin1'), msg3]));
  assert.match(r.final, /^250 /);
  assert.match(ar(await stored('absurd header count')), /dkim=(neutral|permerror|fail)/);
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ .*dkim=(neutral|permerror|fail)/);
});

test('bad input: a malformed DMARC record and a malformed SPF record — a result in the field, a log line, mail not lost', async () => {
  let r = await send(GOOD_IP, 'a@baddmarc.test', message('a@baddmarc.test', 'malformed dmarc'));
  assert.match(r.final, /^250 /);
  assert.match(ar(await stored('malformed dmarc')), /dmarc=(none|permerror|fail)/);
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ spf=pass:baddmarc\.test dkim=none dmarc=\S+ arc=none verdict=accept/);
  r = await send(GOOD_IP, 'a@badspf.test', message('a@badspf.test', 'malformed spf'));
  assert.match(r.final, /^250 /);
  assert.match(ar(await stored('malformed spf')), /spf=permerror/);
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ spf=permerror:badspf\.test /);
});

test('a local sender is not checked, but a forged Authentication-Results of ours is removed all the same', async () => {
  const forged = 'Authentication-Results: mx.test.example; dmarc=pass header.from=bank.example\r\n';
  const c = await RawClient.open(d.port, '127.0.0.1');
  try {
    await c.reply();
    c.send('EHLO localhost\r\nMAIL FROM:<me@elsewhere.invalid>\r\nRCPT TO:<root@test.example>\r\nDATA\r\n');
    for (let i = 0; i < 4; i++) await c.reply();
    c.send(Buffer.concat([message('me@elsewhere.invalid', 'local forged', forged), Buffer.from('.\r\n')]));
    assert.match((await c.reply()).text, /^250 /, 'no DNS asked (elsewhere.invalid would be a temporary failure)');
  } finally {
    c.close();
  }
  const body = await stored('local forged');
  assert.doesNotMatch(body, /bank\.example/);
  assert.doesNotMatch(body, /^Authentication-Results:/m, 'and none added');
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ checks=skipped removed=1 verdict=accept/);
});

test('a signed message larger than what is held in memory (8 MiB) is checked, gets its Authentication-Results field, and is stored whole', async () => {
  const line = 'x'.repeat(998) + '\r\n';
  const big = Buffer.concat([message('a@good.test', 'very large'), Buffer.from(line.repeat(9 * 1024))]);
  const signedBig = Buffer.concat([Buffer.from(dkimpySign(big, rsa, 'rsa', 'good.test'), 'latin1'), big]);
  const r = await send(GOOD_IP, 'a@good.test', signedBig);
  assert.match(r.final, /^250 /);
  await d.waitForLog(/smtp auth session=\S+ msgid=\S+ spf=pass:good\.test dkim=pass:good\.test dmarc="pass:p=reject" arc=none spilled=\d+ verdict=accept/);
  const body = await stored('very large');
  assert.match(ar(body), /dkim=pass header\.i=@good\.test header\.s=rsa/);
  assert.ok(body.endsWith(line.repeat(3)), 'the end of the content is there');
  assert.equal(body.split(line).length - 1, 9 * 1024, 'every line of the body is stored once');
});
