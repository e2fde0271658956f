/*
 * `mailauth sign` and the `mta` statements follow a reload (SIGHUP to the
 * detached smtpd, as `smtpctl reload` does): a real daemon relays to a
 * scripted SMTP server on this test's loopback range (127.0.23.0/24).
 *
 *   no `mailauth sign`          → the relayed message is not signed
 *   `mailauth sign` added, HUP  → signed, and dkimpy verifies the signature
 *   `mta tls-policy` saying the smarthost needs TLS (it offers none), HUP
 *                               → deferred 4.7.x with the policy named
 *   both removed, HUP           → unsigned and delivered again
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { freePort, startScriptedServer, type ScriptedServer } from '../helpers/mta-peers.js';
import { dkimpyVerify, rsaKey, type TestKey } from '../helpers/dkimpy.js';
import { send } from './filter-helpers.js';

const SINK = '127.0.23.20';
let dir: string;
let sink: ScriptedServer;
let d: DaemonHandle;
let key: TestKey;
let port: number;
/** A fixed port: a reload binds the listener again, and port 0 would give it another. */
let listenPort: number;

function conf(extra: string): string {
  return `queue path "${dir}/spool"
hostname "mail.postern.test"
listen on 127.0.0.1 port ${listenPort}
table dkim file:${dir}/dkim-keys
table tlspol { "${SINK}" = "encrypt" }
${extra}
action "out" relay host "smtp://${SINK}:${port}"
match from local for any action "out"
`;
}

before(async () => {
  dir = tempDir('postern-authreload-');
  key = rsaKey(2048);
  writeFileSync(join(dir, 'rsa.pem'), key.pem, { mode: 0o644 });
  writeFileSync(join(dir, 'dkim-keys'), `origin.test rsa:${join(dir, 'rsa.pem')}\n`, { mode: 0o644 });
  port = await freePort([SINK]);
  listenPort = await freePort(['127.0.0.1']);
  sink = await startScriptedServer({ address: SINK, port });
  d = await startDaemon(conf(''), { dir, deliver: true });
});

after(async () => {
  await d?.stop();
  await sink?.close();
});

/** Rewrite smtpd.conf, send SIGHUP, wait for the n-th "configuration reloaded". */
async function reload(extra: string): Promise<void> {
  writeFileSync(join(dir, 'smtpd.conf'), conf(extra));
  const before = d.logs.filter((l) => /configuration reloaded/.test(l)).length;
  d.proc.kill('SIGHUP');
  const deadline = Date.now() + 15_000;
  while (d.logs.filter((l) => /configuration reloaded/.test(l)).length <= before) {
    assert.ok(Date.now() < deadline, `no reload in the log:\n${d.logs.slice(-10).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Relay one message; resolves with what the sink received (undefined: nothing within `waitMs`). */
async function relay(subject: string, waitMs = 10_000): Promise<Buffer | undefined> {
  const n = sink.messages().length;
  const msg = `From: Alice <alice@origin.test>\r\nTo: bob@dest.test\r\nSubject: ${subject}\r\nDate: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}@origin.test>\r\n\r\nHello Bob.\r\n`;
  const r = await send(d.port, 'alice@origin.test', ['bob@dest.test'], msg);
  assert.match(r.end ?? '', /^250 /);
  const deadline = Date.now() + waitMs;
  while (sink.messages().length <= n) {
    if (Date.now() > deadline) return undefined;
    await new Promise((r2) => setTimeout(r2, 50));
  }
  const m = sink.messages()[n];
  return m ? Buffer.from(m.raw.toString('latin1').replace(/\.\r\n$/, '').replace(/^\.\./gm, '.'), 'latin1') : undefined;
}

test('mailauth sign added and removed by reload: signing starts and stops without a restart', async () => {
  const plain = await relay('before');
  assert.ok(plain, 'delivered');
  assert.doesNotMatch(plain.toString('latin1'), /^DKIM-Signature:/im);

  await reload('mailauth sign <dkim>');
  await d.waitForLog(/reload: rebuilt mailauth sign\/seal/);
  const signed = await relay('after adding');
  assert.ok(signed, 'delivered');
  assert.match(signed.toString('latin1'), /^DKIM-Signature: [^]*d=origin\.test/im);
  assert.deepEqual(dkimpyVerify(signed, { 'rsa._domainkey.origin.test': key.record }), [true], 'dkimpy verifies it');

  await reload('');
  await d.waitForLog(/reload: rebuilt mailauth sign\/seal removed/);
  const again = await relay('after removing');
  assert.ok(again, 'delivered');
  assert.doesNotMatch(again.toString('latin1'), /^DKIM-Signature:/im);
});

test('mta tls-policy added and removed by reload: the smarthost policy applies, then no longer', async () => {
  await reload('mta tls-policy <tlspol>');
  await d.waitForLog(/reload: rebuilt mta statements/);
  assert.equal(await relay('needs tls', 3000), undefined, 'not delivered: the smarthost offers no STARTTLS');
  await d.waitForLog(/mta delivery tempfail .*stat="4\.7\.4 TLS is required, but was not offered by host \[127\.0\.23\.20\]/);

  await reload('');
  await d.waitForLog(/reload: rebuilt mta statements removed/);
  assert.ok(await relay('no policy'), 'delivered without the policy');
});
