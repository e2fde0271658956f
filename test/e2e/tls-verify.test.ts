/*
 * test/e2e/tls-verify.test.ts — `smtps verify` and `tls-require verify`
 * (OpenSMTPD's): a client must present a certificate that verifies against
 * the listener's `ca`, or against the well-known CAs when it names none;
 * otherwise the session ends at the handshake. Real TLS on real sockets,
 * with a CA and client certificates made by openssl for the test, and swaks
 * as a third-party client.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { makeCa, makeCert, makeClientCert, type CertFiles } from '../helpers/certs.js';
import { spoolMessages } from '../helpers/inproc.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { requireTool, run } from '../helpers/tools.js';

let d: DaemonHandle;
let smtpsCa: number;
let requireCa: number;
let smtpsWellKnown: number;
let good: CertFiles;
let rogue: CertFiles;

before(async () => {
  const dir = tempDir();
  makeCert(dir, 'mx.test.example');
  const ca = makeCa(dir, 'Postern Test Client CA');
  good = makeClientCert(dir, 'good-client', ca);
  rogue = makeCert(dir, 'rogue-client'); // self-signed: no CA vouches for it
  d = await startDaemon(
    `queue path "$DIR/spool"
hostname "mx.test.example"
pki mx.test.example cert "$DIR/mx.test.example.crt"
pki mx.test.example key "$DIR/mx.test.example.key"
ca clients cert "${ca.cert}"
listen on 127.0.0.1 port 0 smtps verify ca clients pki mx.test.example tag VERIFIED
listen on 127.0.0.1 port 0 tls-require verify ca clients pki mx.test.example tag VERIFIED
listen on 127.0.0.1 port 0 smtps verify pki mx.test.example tag VERIFIED
action "local" mbox
action "relay" relay
match tag VERIFIED from any for any action "relay"
match from any for domain "test.example" action "local"
`,
    { dir },
  );
  [smtpsCa, requireCa, smtpsWellKnown] = d.ports as [number, number, number];
});
after(async () => {
  await d.stop();
  d.cleanup();
});

/** What a client got: the greeting (or the EHLO reply after STARTTLS), or how it ended. */
async function smtpsGreeting(port: number, cert?: CertFiles): Promise<{ greeting?: string; error?: string }> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(cert ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}) });
    finishOnFirstLine(s, resolve);
  });
}

function finishOnFirstLine(s: TLSSocket, resolve: (r: { greeting?: string; error?: string }) => void): void {
  let buf = '';
  const done = (r: { greeting?: string; error?: string }): void => {
    s.destroy();
    resolve(r);
  };
  s.on('data', (d: Buffer) => {
    buf += d.toString();
    if (buf.includes('\r\n')) done({ greeting: buf.slice(0, buf.indexOf('\r\n')) });
  });
  s.on('error', (e) => done({ error: e.message }));
  s.on('close', () => done({ error: 'closed' }));
}

/** STARTTLS on a tls-require listener, then EHLO: its reply's first line, or how it ended. */
async function afterStarttls(port: number, cert?: CertFiles): Promise<{ greeting?: string; error?: string }> {
  const c = await RawClient.open(port);
  await dialogue(c, 'S: 220\nC: EHLO client.test\nS: 250\nC: STARTTLS\nS: 220 2.0.0');
  c.socket.removeAllListeners('data');
  return new Promise((resolve) => {
    const s = tlsConnect({ socket: c.socket, servername: 'mx.test.example', rejectUnauthorized: false, ...(cert ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}) });
    s.once('secureConnect', () => s.write('EHLO client.test\r\n'));
    finishOnFirstLine(s, resolve);
  });
}

test('smtps verify ca: a client certificate signed by that CA is served', async () => {
  const r = await smtpsGreeting(smtpsCa, good);
  assert.match(r.greeting ?? '', /^220 mx\.test\.example /, JSON.stringify(r));
});

test('smtps verify ca: no certificate, or one no CA signed, ends the session before any greeting', async () => {
  for (const cert of [undefined, rogue]) {
    const r = await smtpsGreeting(smtpsCa, cert);
    assert.equal(r.greeting, undefined, `${cert ? 'rogue' : 'no'} certificate got ${r.greeting}`);
  }
  await d.waitForLog(/tls-failed .*client certificate not accepted/);
});

test('tls-require verify ca: after STARTTLS, only the CA-signed client gets on', async () => {
  assert.match((await afterStarttls(requireCa, good)).greeting ?? '', /^250-mx\.test\.example/);
  for (const cert of [undefined, rogue]) {
    const r = await afterStarttls(requireCa, cert);
    assert.equal(r.greeting, undefined, `${cert ? 'rogue' : 'no'} certificate got ${r.greeting}`);
  }
});

test('smtps verify without a ca trusts only the well-known CAs: the test CA is not one', async () => {
  const r = await smtpsGreeting(smtpsWellKnown, good);
  assert.equal(r.greeting, undefined, `got ${r.greeting}`);
});

test('swaks with the CA-signed certificate relays through the VERIFIED listener; without one it cannot', async () => {
  const swaks = requireTool('swaks');
  const args = ['--server', '127.0.0.1', '--port', String(smtpsCa), '--tlsc', '--from', 'a@client.example', '--to', 'someone@far.example', '--helo', 'client.example', '--header', 'Subject: verified relay'];
  const ok = await run(swaks, [...args, '--tls-cert', good.cert, '--tls-key', good.key]);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /<~\s+250 2\.0\.0 [0-9a-f]{8} Message accepted/);
  const m = (await spoolMessages(`${d.dir}/spool`)).find((x) => x.body.includes('Subject: verified relay'));
  assert.ok(m);
  assert.equal(m.stored.envelope.recipients[0]?.action, 'relay');
  assert.match(m.body, /CN=good-client/);
  const refused = await run(swaks, args);
  assert.notEqual(refused.status, 0);
  assert.doesNotMatch(refused.stdout, /Message accepted/);
});
