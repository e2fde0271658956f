/*
 * DKIM signing of relayed mail: the relay client (RelayAgent) with a
 * signer sends to a scripted SMTP server on this test's loopback range;
 * what arrives must verify at dkimpy and at OpenDKIM (its `opendkim -t`
 * test mode, the keys given in a TestDNSData file: no DNS needed), with an
 * RSA-2048 and an Ed25519 key (dual signing). A domain without keys goes
 * out unsigned; an unusable key defers the delivery (4.7.0), never sends
 * unsigned.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { actionOf, configFrom, freePort, makeAgent, makeTask, startScriptedServer, type ScriptedServer } from '../helpers/mta-peers.js';
import { tempDir } from '../helpers/daemon.js';
import { dkimpyArcVerify, dkimpySign, dkimpyVerify, ed25519Key, rsaKey, type TestKey } from '../helpers/dkimpy.js';
import { KeyTable } from '../../src/mailauth/sign/keys.js';
import { OutboundSigner } from '../../src/mailauth/sign/signer.js';
import { SignPool } from '../../src/mailauth/sign/sign-pool.js';
import type { Lookup } from '../../src/table/table.js';

const ADDRESS = '127.0.14.20';
const config = configFrom(`hostname "mail.postern.test"\naction "out" relay\nmatch from any for any action "out"\n`);
const out = actionOf(config, 'out');
let port: number;
let server: ScriptedServer;
let dir: string;
let rsa: TestKey;
let ed: TestKey;
let table: Record<string, string>;
// Through the workers (inlineMax 0) even on a small machine; the daemon test below signs as the daemon does (on the event loop on 1–2 cores, sign-pool.ts).
const pool = new SignPool(undefined, 0);

before(async () => {
  dir = tempDir('postern-dkim-');
  rsa = rsaKey(2048);
  ed = ed25519Key();
  writeFileSync(join(dir, 'rsa.pem'), rsa.pem);
  writeFileSync(join(dir, 'ed.pem'), ed.pem);
  writeFileSync(join(dir, 'garbage.pem'), '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
  table = {
    'origin.test': `rsa:${join(dir, 'rsa.pem')}, ed:${join(dir, 'ed.pem')}`,
    'broken.test': `bad:${join(dir, 'garbage.pem')}`,
    'missing.test': `gone:${join(dir, 'nothing-here.pem')}`,
  };
  port = await freePort([ADDRESS]);
  server = await startScriptedServer({ address: ADDRESS, port });
});

after(async () => {
  await server?.close();
  await pool.close();
});

function signer(): OutboundSigner {
  const lookup = (k: string): Lookup => (table[k] !== undefined ? { kind: 'found', value: table[k] } : { kind: 'notfound' });
  return new OutboundSigner(new KeyTable(lookup), pool);
}

/** The message as sent: DATA content without the terminator, dot-stuffing undone. */
function received(n: number): Buffer {
  const m = server.messages()[n];
  assert.ok(m, `message ${n} arrived`);
  const text = m.raw.toString('latin1').replace(/\.\r\n$/, '').replace(/^\.\./gm, '.');
  return Buffer.from(text, 'latin1');
}

async function relay(from: string, subject: string): Promise<{ status: string; logs: string[] }> {
  const h = makeAgent({ config, tuning: { port }, signer: signer() });
  const body = `From: Alice <alice@${from}>\r\nTo: bob@dest.test\r\nSubject: ${subject}\r\nDate: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <${Date.now()}@${from}>\r\n\r\nHello Bob,\r\n.leading dot line\r\nbye\r\n`;
  const [r] = await h.agent.deliver(makeTask({ action: out, sender: `alice@${from}`, rcpts: [`bob@[${ADDRESS}]`], body }));
  await h.agent.close();
  return { status: `${r?.status} ${r?.enhanced} ${r?.detail ?? ''}`, logs: h.logs };
}

const records = (): Record<string, string> => ({ 'rsa._domainkey.origin.test': rsa.record, 'ed._domainkey.origin.test': ed.record });

test('RSA-2048 and Ed25519 signatures on relayed mail verify at dkimpy', async () => {
  const n = server.messages().length;
  const r = await relay('origin.test', 'dual signed');
  assert.match(r.status, /^ok /);
  assert.match(r.logs.join('\n'), /mta dkim-signed msgid=\S+ keys=rsa\._domainkey\.origin\.test,ed\._domainkey\.origin\.test/);
  const msg = received(n);
  assert.match(msg.toString('latin1'), /^DKIM-Signature: [^]*a=rsa-sha256[^]*\r\nDKIM-Signature: [^]*a=ed25519-sha256/);
  assert.deepEqual(dkimpyVerify(msg, records()), [true, true]);
});

test('the RSA signature verifies at OpenDKIM (opendkim -t, keys from a TestDNSData file)', async () => {
  const n = server.messages().length;
  assert.match((await relay('origin.test', 'for opendkim')).status, /^ok /);
  const msg = received(n);
  const file = join(dir, 'msg.eml');
  writeFileSync(file, msg);
  const dnsData = join(dir, 'dns-data');
  writeFileSync(dnsData, `rsa._domainkey.origin.test ${rsa.record}\ned._domainkey.origin.test ${ed.record}\n`);
  const conf = join(dir, 'opendkim.conf');
  writeFileSync(conf, `Mode v\nTestDNSData file:${dnsData}\nSyslog no\nAlwaysAddARHeader yes\nAuthservID opendkim.test\n`);
  const r = spawnSync('/usr/sbin/opendkim', ['-x', conf, '-t', file, '-vvv'], { encoding: 'utf8' });
  const outText = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, outText);
  assert.doesNotMatch(outText, /fail|bad signature/i, outText);
  assert.match(outText, /verification \(s=rsa, d=origin\.test, 2048-bit key\) succeeded/, outText);
});

test('a domain without keys goes out unsigned; an unusable key defers with 4.7.0 and a log line', async () => {
  const n = server.messages().length;
  assert.match((await relay('nokeys.test', 'unsigned')).status, /^ok /);
  assert.doesNotMatch(received(n).toString('latin1'), /DKIM-Signature/);
  for (const d of ['broken.test', 'missing.test']) {
    const r = await relay(d, `unusable key ${d}`);
    assert.match(r.status, /^tempfail 4\.7\.0 DKIM keys for /);
    assert.match(r.logs.join('\n'), new RegExp(`mta dkim-failed msgid=\\S+ error="DKIM keys for ${d.replace('.', '\\.')}`));
  }
  assert.equal(server.messages().length, n + 1, 'nothing sent unsigned for a domain that has keys');
});

test('dkimpy and Postern disagree on nothing: a signed message changed in transit fails at dkimpy', () => {
  const msg = received(0).toString('latin1').replace('Hello Bob', 'Hello Eve');
  assert.deepEqual(dkimpyVerify(Buffer.from(msg, 'latin1'), records()), [false, false]);
});

test('the daemon signs what it relays: `mailauth sign <table>` in smtpd.conf', async () => {
  const { startDaemon } = await import('../helpers/daemon.js');
  const { RawClient } = await import('../helpers/smtp-client.js');
  const keysFile = join(dir, 'dkim-keys');
  writeFileSync(keysFile, `# domain  selector:keyfile\norigin.test  rsa:${join(dir, 'rsa.pem')}, ed:${join(dir, 'ed.pem')}\n`);
  const d = await startDaemon(
    `queue path "$DIR/spool"\nhostname "mail.postern.test"\nlisten on 127.0.0.1 port 0\ntable dkim file:${keysFile}\nmailauth sign <dkim>\naction "out" relay host smtp://${ADDRESS}:${port}\nmatch from local for any action "out"\n`,
    { deliver: true },
  );
  const n = server.messages().length;
  try {
    const c = await RawClient.open(d.port);
    await c.reply();
    c.send('EHLO local.test\r\nMAIL FROM:<alice@origin.test>\r\nRCPT TO:<bob@dest.test>\r\nDATA\r\n');
    for (let i = 0; i < 4; i++) await c.reply();
    c.send('From: Alice <alice@origin.test>\r\nTo: bob@dest.test\r\nSubject: through the daemon\r\n\r\nHi.\r\n.\r\nQUIT\r\n');
    assert.equal((await c.reply()).code, 250);
    c.close();
    await d.waitForLog(/mta delivery .*result=Ok/, 20_000);
    await d.waitForLog(/mta dkim-signed msgid=\S+ keys=rsa\._domainkey\.origin\.test,ed\._domainkey\.origin\.test/);
    const msg = received(n);
    assert.match(msg.toString('latin1'), /^DKIM-Signature: /);
    assert.deepEqual(dkimpyVerify(msg, records()), [true, true], 'the Received: header Postern added is signed too and intact');
  } finally {
    await d.stop();
    d.cleanup();
  }
});

test('ARC: relayed mail that carries our Authentication-Results is sealed, and dkimpy validates the chain', async () => {
  const lookup = (k: string): Lookup => (table[k] !== undefined ? { kind: 'found', value: table[k] } : { kind: 'notfound' });
  const sealer = new OutboundSigner(new KeyTable(lookup), pool, { domain: 'relay.test', selector: 'arc', keyFile: join(dir, 'rsa.pem'), authservId: 'mail.postern.test' });
  const h = makeAgent({ config, tuning: { port }, signer: sealer });
  // As received from outside and checked: the author's signature, then our results on top (an alias forwards it on).
  const original = Buffer.from('From: Carol <carol@author.test>\r\nTo: list@postern.test\r\nSubject: forwarded by an alias\r\nMessage-ID: <arc@author.test>\r\n\r\nText.\r\n', 'latin1');
  const authorKey = rsaKey();
  const signedByAuthor = Buffer.concat([Buffer.from(dkimpySign(original, authorKey, 'a1', 'author.test'), 'latin1'), original]);
  const asReceived = Buffer.concat([Buffer.from('Authentication-Results: mail.postern.test;\r\n\tdkim=pass header.i=@author.test header.s=a1;\r\n\tspf=pass smtp.mailfrom=author.test;\r\n\tdmarc=pass header.from=author.test\r\n', 'latin1'), signedByAuthor]);
  const n = server.messages().length;
  const [r] = await h.agent.deliver(makeTask({ action: out, sender: 'list-bounces@postern.test', rcpts: [`bob@[${ADDRESS}]`], body: asReceived }));
  await h.agent.close();
  assert.equal(r?.status, 'ok', r?.detail);
  assert.match(h.logs.join('\n'), /mta dkim-signed msgid=\S+ keys=arc:arc\._domainkey\.relay\.test/);
  const msg = received(n);
  assert.match(msg.toString('latin1'), /^ARC-Seal: i=1;[^]*cv=none[^]*ARC-Message-Signature: i=1;[^]*ARC-Authentication-Results: i=1; [^]*dkim=pass header\.i=@author\.test/);
  const recs = { 'arc._domainkey.relay.test': rsa.record, 'a1._domainkey.author.test': authorKey.record };
  assert.equal(dkimpyArcVerify(msg, recs).cv, 'pass');
  assert.deepEqual(dkimpyVerify(msg, recs), [true], "the author's signature survived the relay");
  // Without our results (not checked here): no seal.
  const plain = await relay('nokeys.test', 'not ours to seal');
  assert.match(plain.status, /^ok /);
});
