/*
 * Hostile TLS clients against the real daemon (issue 14, defects 1, 3, 4):
 * STARTTLS then hang-up, en masse (the connection count must return to zero
 * and a fresh client still gets 220); smtps with a FIN before and during the
 * ClientHello; a client silent after STARTTLS (the handshake's own time
 * limit); client-initiated renegotiation with openssl s_client (refused,
 * disconnected, logged); and the default suites (no static RSA, no CBC, no
 * CCM8, no ARIA; ECDHE with GCM works).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { makeCert } from '../helpers/certs.js';
import { requireTool, run } from '../helpers/tools.js';
import { closedWithin, readUntil, serverSockets, tcp, total, waitUntil } from '../helpers/sockets.js';

let d: DaemonHandle;
let starttlsPort: number;
let smtpsPort: number;

before(async () => {
  const dir = tempDir();
  makeCert(dir, 'mx.test.example');
  d = await startDaemon(
    `queue path "$DIR/spool"
hostname "mx.test.example"
pki mx.test.example cert "$DIR/mx.test.example.crt"
pki mx.test.example key "$DIR/mx.test.example.key"
smtp timeout tls-handshake 2s
listen on 127.0.0.1 port 0 tls pki mx.test.example
listen on 127.0.0.1 port 0 smtps pki mx.test.example
action "local" mbox
match from any for domain "test.example" action "local"
`,
    { dir },
  );
  [starttlsPort, smtpsPort] = d.ports as [number, number];
});
after(async () => {
  await d.stop();
  d.cleanup();
});

/** EHLO, STARTTLS, then a FIN from the client: the server must let go. */
async function starttlsAndHangUp(port: number, from: string): Promise<void> {
  const s = await tcp(port, from);
  s.on('error', () => undefined);
  await readUntil(s, /^220 .*\r\n/m);
  s.write('EHLO hostile.test\r\n');
  await readUntil(s, /^250 .*\r\n/m);
  s.write('STARTTLS\r\n');
  await readUntil(s, /^220 .*\r\n/m);
  s.end();
}

test('200 clients that say STARTTLS and hang up are all released; a new client gets 220', async () => {
  const froms = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6'];
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) jobs.push(starttlsAndHangUp(starttlsPort, froms[i % froms.length] as string));
  await Promise.all(jobs);
  const released = await waitUntil(() => total(serverSockets(starttlsPort)) === 0, 10_000);
  assert.ok(released, `server sockets left: ${JSON.stringify([...serverSockets(starttlsPort)])}`);
  await d.waitForLog(/smtp tls-failed .*reason=disconnect/);
  const fresh = await tcp(starttlsPort, '127.0.0.2');
  assert.match(await readUntil(fresh, /^220 .*\r\n/m), /^220 mx\.test\.example/);
  fresh.destroy();
});

test('smtps: a FIN before the ClientHello, and one in the middle of it, end the session', async () => {
  const before = serverSockets(smtpsPort);
  assert.equal(total(before), 0);
  const early = await tcp(smtpsPort, '127.0.0.7');
  early.end();
  const middle = await tcp(smtpsPort, '127.0.0.7');
  // The first bytes of a TLS record carrying a ClientHello, and no more.
  middle.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xf0, 0x01, 0x00, 0x00, 0xec, 0x03, 0x03]));
  await new Promise((r) => setTimeout(r, 200));
  middle.end();
  assert.ok(await closedWithin(early, 5000), 'the server kept the connection that closed before its ClientHello');
  assert.ok(await closedWithin(middle, 5000), 'the server kept the connection that closed during its ClientHello');
  assert.ok(await waitUntil(() => total(serverSockets(smtpsPort)) === 0, 5000), JSON.stringify([...serverSockets(smtpsPort)]));
});

test('a client silent after STARTTLS is cut off by the handshake time limit', async () => {
  const s = await tcp(starttlsPort, '127.0.0.8');
  s.on('error', () => undefined);
  await readUntil(s, /^220 .*\r\n/m);
  s.write('EHLO silent.test\r\nSTARTTLS\r\n');
  await readUntil(s, /^220 2\.0\.0 .*\r\n/m);
  const t0 = Date.now();
  assert.ok(await closedWithin(s, 8000), 'not closed after the 2 s handshake limit');
  const took = Date.now() - t0;
  assert.ok(took >= 1500, `closed too early (${took} ms)`);
  await d.waitForLog(/smtp tls-failed .*reason=timeout/);
});

test('smtps: a client that sends nothing is cut off by the handshake time limit', async () => {
  const s = await tcp(smtpsPort, '127.0.0.9');
  s.on('error', () => undefined);
  assert.ok(await closedWithin(s, 8000), 'not closed after the 2 s handshake limit');
});

test('TLS 1.2 client-initiated renegotiation is refused, disconnected and logged', async () => {
  const openssl = requireTool('openssl');
  const p = spawn(openssl, ['s_client', '-connect', `127.0.0.1:${starttlsPort}`, '-starttls', 'smtp', '-tls1_2'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (x: Buffer) => (out += x.toString()));
  p.stderr.on('data', (x: Buffer) => (out += x.toString()));
  p.stdin.on('error', () => undefined);
  const exited = new Promise<number | null>((r) => p.on('close', (c) => r(c)));
  await waitUntil(() => /250[ -]/.test(out), 5000);
  p.stdin.write('R\n');
  await new Promise((r) => setTimeout(r, 500));
  p.stdin.write('NOOP\n');
  const timer = setTimeout(() => p.kill('SIGKILL'), 8000);
  const code = await exited;
  clearTimeout(timer);
  assert.match(out, /RENEGOTIATING/);
  assert.doesNotMatch(out, /^250 2\.0\.0 Ok/m, 'the NOOP after the renegotiation was answered');
  assert.notEqual(code, null, 's_client was still connected');
  await d.waitForLog(/smtp tls-renegotiation .*result=refused/);
});

async function sClient(port: number, starttls: boolean, ...args: string[]) {
  return run(requireTool('openssl'), ['s_client', '-connect', `127.0.0.1:${port}`, ...(starttls ? ['-starttls', 'smtp'] : []), ...args], { input: 'QUIT\n', timeoutMs: 10_000 });
}

test('default suites: static RSA, CBC, CCM8 and ARIA are refused; ECDHE with AES-GCM works; TLS 1.1 is refused', async () => {
  for (const weak of ['AES128-SHA', 'AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384', 'AES256-CCM8', 'ARIA128-GCM-SHA256']) {
    const r = await sClient(starttlsPort, true, '-tls1_2', '-cipher', weak);
    assert.doesNotMatch(r.stdout, /Cipher is (?!\(NONE\))/, `${weak} was accepted:\n${r.stdout}`);
  }
  for (const port of [starttlsPort, smtpsPort]) {
    const ok = await sClient(port, port === starttlsPort, '-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256');
    assert.match(ok.stdout, /Cipher is ECDHE-RSA-AES128-GCM-SHA256/, ok.stdout + ok.stderr);
  }
  const v13 = await sClient(starttlsPort, true, '-tls1_3');
  assert.match(v13.stdout, /TLSv1\.3/, v13.stdout);
  const old = await sClient(starttlsPort, true, '-tls1_1', '-cipher', 'ALL:@SECLEVEL=0');
  assert.doesNotMatch(old.stdout, /Cipher is (?!\(NONE\))/, old.stdout);
});
