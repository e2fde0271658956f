/*
 * TLS and AUTH on the receiving side, end to end with real clients:
 * swaks (--tls, --tlsc, --auth), Python's smtplib (starttls, login, CRAM-MD5),
 * openssl s_client -starttls smtp, nodemailer; the STARTTLS injection
 * test; AUTH before TLS; throttling; the external authenticator; senders.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import bcrypt from 'bcryptjs';
import nodemailer from 'nodemailer';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { makeCert } from '../helpers/certs.js';
import { spoolMessages } from '../helpers/inproc.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { python, requireTool, run } from '../helpers/tools.js';

let d: DaemonHandle;
let starttlsPort: number;
let smtpsPort: number;
let requirePort: number;
let plainAuthPort: number;
let masqueradePort: number;

before(async () => {
  const dir = tempDir();
  makeCert(dir, 'mx.test.example');
  writeFileSync(join(dir, 'creds'), `alice ${bcrypt.hashSync('alice-secret', 8)}\ncarol {PLAIN}carol-secret\n`);
  writeFileSync(join(dir, 'senders'), 'alice alice@test.example, @alice.example\ncarol carol@test.example\n');
  const pipe = join(dir, 'auth-pipe.sh');
  writeFileSync(pipe, '#!/bin/sh\nread pw\n[ "$1" = "pipeuser" ] && [ "$pw" = "pipe-secret" ]\n');
  chmodSync(pipe, 0o755);
  d = await startDaemon(
    `queue path "$DIR/spool"
hostname "mx.test.example"
pki mx.test.example cert "$DIR/mx.test.example.crt"
pki mx.test.example key "$DIR/mx.test.example.key"
table creds file:$DIR/creds
table senders file:$DIR/senders
smtp auth-fail-delay 0
smtp auth-failrate 5
listen on 127.0.0.1 port 0 tls pki mx.test.example auth-optional <creds> senders <senders>
listen on 127.0.0.1 port 0 smtps pki mx.test.example auth-optional <creds>
listen on 127.0.0.1 port 0 tls-require pki mx.test.example
listen on 127.0.0.1 port 0 tag PIPE
listen on 127.0.0.1 port 0 tls pki mx.test.example auth-optional <creds> senders <senders> masquerade
action "local" mbox
action "relay" relay
match from any auth for any action "relay"
match from any for domain "test.example" action "local"
`,
    { dir },
  );
  [starttlsPort, smtpsPort, requirePort, plainAuthPort, masqueradePort] = d.ports as [number, number, number, number, number];
});
after(async () => {
  await d.stop();
  d.cleanup();
});

const swaksArgs = (port: number, ...extra: string[]) => ['--server', '127.0.0.1', '--port', String(port), '--from', 'alice@test.example', '--to', 'someone@far.example', '--helo', 'swaks.test', ...extra];

test('swaks: STARTTLS + AUTH PLAIN relays; Received says ESMTPSA', async () => {
  const r = await run(requireTool('swaks'), swaksArgs(starttlsPort, '--tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'alice-secret', '--header', 'Subject: swaks tls plain'));
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /<-\s+220 2\.0\.0 Ready to start TLS/);
  assert.match(r.stdout, /<~\s+250-AUTH PLAIN LOGIN CRAM-MD5/);
  assert.match(r.stdout, /<~\s+235 2\.7\.0 Authentication successful/);
  assert.match(r.stdout, /<~\s+250 2\.0\.0 [0-9a-f]{8} Message accepted/);
  const m = (await spoolMessages(`${d.dir}/spool`)).find((x) => x.body.includes('Subject: swaks tls plain'));
  assert.ok(m);
  assert.match(m.body, /with ESMTPSA id /);
  assert.match(m.body, /\(using TLSv1\.[23] with cipher /);
  assert.equal(m.stored.envelope.client.authUser, 'alice');
});

test('swaks: implicit TLS (smtps) + AUTH LOGIN', async () => {
  const r = await run(requireTool('swaks'), swaksArgs(smtpsPort, '--tlsc', '--auth', 'LOGIN', '--auth-user', 'alice', '--auth-password', 'alice-secret'));
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /<~\s+334 VXNlcm5hbWU6/);
  assert.match(r.stdout, /<~\s+235 2\.7\.0/);
  assert.match(r.stdout, /<~\s+250 2\.0\.0 /);
});

test('wrong password: 535 5.7.8, and relaying stays refused', async () => {
  const r = await run(requireTool('swaks'), swaksArgs(starttlsPort, '--tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'wrong-Pa55word-xyz'));
  assert.notEqual(r.status, 0);
  assert.match(r.stdout, /<~\*\s+535 5\.7\.8 Authentication credentials invalid/);
  assert.ok(!d.logs.some((l) => l.includes('wrong-Pa55word-xyz') || l.includes('alice-secret') || l.includes(Buffer.from('\0alice\0wrong-Pa55word-xyz').toString('base64'))), 'no password in the log');
});

test("Python's smtplib: starttls(), login() (CRAM-MD5 with a {PLAIN} secret), send", async () => {
  const script = `
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP('127.0.0.1', ${starttlsPort})
s.ehlo('py.test')
print('auth before tls', s.has_extn('auth'))
s.starttls(context=ctx)
s.ehlo('py.test')
print('auth after tls', s.esmtp_features.get('auth'))
print(s.login('carol', 'carol-secret'))
print(s.sendmail('carol@test.example', ['x@far.example'], 'Subject: smtplib tls\\r\\n\\r\\nhi\\r\\n'))
s.quit()
`;
  const r = await run(python(), ['-c', script]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /auth before tls False/);
  assert.match(r.stdout, /auth after tls\s+PLAIN LOGIN CRAM-MD5/);
  assert.match(r.stdout, /\(235, b'2\.7\.0 Authentication successful'\)/);
  await d.waitForLog(/smtp authentication .*user=carol mechanism=CRAM-MD5 result=ok/);
});

test('openssl s_client -starttls smtp negotiates TLS 1.2+ and gets a fresh EHLO', async () => {
  const r = await run(requireTool('openssl'), ['s_client', '-connect', `127.0.0.1:${starttlsPort}`, '-starttls', 'smtp', '-quiet', '-servername', 'mx.test.example'], { input: 'EHLO openssl.test\r\nQUIT\r\n', timeoutMs: 15_000 });
  assert.match(r.stdout, /250-mx\.test\.example Hello openssl\.test/);
  assert.match(r.stdout, /250-AUTH PLAIN LOGIN/);
  assert.ok(!/STARTTLS/.test(r.stdout.split('Hello openssl.test')[1] ?? ''), 'no STARTTLS offered twice');
  assert.match(r.stdout, /221 2\.0\.0/);
});

test('nodemailer: requireTLS + AUTH', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: starttlsPort, secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'alice-secret' } });
  const info = await t.sendMail({ from: 'alice@test.example', to: 'bob@far.example', subject: 'nodemailer tls', text: 'x' });
  assert.match(info.response, /^250 2\.0\.0 /);
  t.close();
});

test('STARTTLS injection: commands sent with STARTTLS in one packet are discarded', async () => {
  const c = await RawClient.open(starttlsPort);
  await dialogue(c, 'S: 220\nC: EHLO inject.test\nS: 250');
  c.send('STARTTLS\r\nRSET\r\n');
  await dialogue(c, 'S: 220 2.0.0');
  assert.equal(c.pending, '', 'no reply to the injected RSET before TLS');
  const secure = tlsConnect({ socket: c.socket, rejectUnauthorized: false, servername: 'mx.test.example' });
  await new Promise<void>((res, rej) => {
    secure.once('secureConnect', () => res());
    secure.once('error', rej);
  });
  let got = '';
  secure.on('data', (b: Buffer) => (got += b.toString()));
  secure.write('EHLO inject.test\r\n');
  const deadline = Date.now() + 5000;
  while (!/\r\n250 [^\r\n]*\r\n$/.test(got) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(got, /^250-mx\.test\.example Hello inject\.test/, 'the first reply inside TLS answers EHLO, not the injected RSET');
  secure.write('STARTTLS\r\n');
  got = '';
  while (!/\r\n$/.test(got) && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 20));
  assert.match(got, /^503 5\.5\.1 TLS already active/);
  secure.destroy();
  await d.waitForLog(/smtp starttls-injection .*discarded=6/);
});

test('the session starts over after STARTTLS: MAIL needs a new EHLO', async () => {
  const c = await RawClient.open(starttlsPort);
  await dialogue(c, 'S: 220\nC: EHLO a\nS: 250\nC: STARTTLS\nS: 220');
  const s = tlsConnect({ socket: c.socket, rejectUnauthorized: false });
  await new Promise<void>((res) => s.once('secureConnect', () => res()));
  let got = '';
  s.on('data', (b: Buffer) => (got += b.toString()));
  s.write('MAIL FROM:<alice@test.example>\r\n');
  const deadline = Date.now() + 5000;
  while (!got.includes('\r\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(got, /^503 5\.5\.1 Send HELO\/EHLO first/);
  s.destroy();
});

test('AUTH before TLS is neither offered nor accepted', async () => {
  const c = await RawClient.open(starttlsPort);
  const [, ehlo] = await dialogue(c, 'S: 220\nC: EHLO a\nS: 250\nC: AUTH PLAIN AGFsaWNlAGFsaWNlLXNlY3JldA==\nS: 538 5.7.11');
  assert.ok(!ehlo?.text.includes('AUTH'));
  assert.ok(ehlo?.text.includes('STARTTLS'));
  c.close();
});

test('tls-require: no MAIL before STARTTLS (530 5.7.0)', async () => {
  const c = await RawClient.open(requirePort);
  await dialogue(c, 'S: 220\nC: EHLO a\nS: 250\nC: MAIL FROM:<x@test.example>\nS: 530 5.7.0\nC: QUIT\nS: 221');
  c.close();
});

test('AUTH syntax: bad base64, cancel, unknown mechanism, twice', async () => {
  const c = await RawClient.open(smtpsPort);
  c.close();
  const s = tlsConnect({ host: '127.0.0.1', port: smtpsPort, rejectUnauthorized: false });
  await new Promise<void>((res) => s.once('secureConnect', () => res()));
  let got = '';
  s.on('data', (b: Buffer) => (got += b.toString()));
  const say = async (line: string | undefined, want: RegExp): Promise<void> => {
    got = '';
    if (line !== undefined) s.write(`${line}\r\n`);
    const deadline = Date.now() + 5000;
    while (!/(^|\r\n)\d{3} [^\r\n]*\r\n$/.test(got) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.match(got, want);
  };
  await say(undefined, /^220 /);
  await say('EHLO x', /250 HELP/);
  await say('AUTH FOO', /^504 5\.5\.4/);
  await say('AUTH PLAIN', /^334 /);
  await say('not base64!', /^501 5\.5\.2/);
  await say('AUTH LOGIN', /^334 VXNlcm5hbWU6/);
  await say('*', /^501 5\.7\.0/);
  await say(`AUTH PLAIN ${Buffer.from('\0alice\0alice-secret').toString('base64')}`, /^235 2\.7\.0/);
  await say('AUTH PLAIN', /^503 5\.5\.1 Already authenticated/);
  s.destroy();
});

test('senders table: an authenticated user may only send as its own addresses', async () => {
  const swaks = requireTool('swaks');
  const ok = await run(swaks, [...swaksArgs(starttlsPort, '--tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'alice-secret'), '--from', 'anyone@alice.example']);
  assert.equal(ok.status, 0, ok.stdout);
  const bad = await run(swaks, [...swaksArgs(starttlsPort, '--tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'alice-secret'), '--from', 'carol@test.example']);
  assert.match(bad.stdout, /<~\*\s+553 5\.7\.1 Sender address not allowed/);
});

test('an unauthenticated client from elsewhere cannot relay', async () => {
  const c = await RawClient.open(starttlsPort, '127.0.0.1', '127.0.0.2');
  await dialogue(c, 'S: 220\nC: EHLO a\nS: 250\nC: MAIL FROM:<x@far.example>\nS: 250\nC: RCPT TO:<y@far.example>\nS: 550 5.7.1\nC: QUIT\nS: 221');
  c.close();
});

test('the external authenticator (auth-pipe) and failure throttling', async () => {
  const dir = tempDir();
  const pipe = join(dir, 'auth-pipe.sh');
  writeFileSync(pipe, '#!/bin/sh\nread pw\n[ "$1" = "pipeuser" ] && [ "$pw" = "pipe-secret" ]\n');
  chmodSync(pipe, 0o755);
  const p = await startDaemon(
    `queue path "$DIR/spool"
smtp auth-without-tls
smtp auth-pipe "${pipe}"
smtp auth-fail-delay 0
smtp auth-failrate 3
listen on 127.0.0.1 port 0 auth
action "relay" relay
match from any auth for any action "relay"
`,
    { dir },
  );
  const plain = (u: string, pw: string) => Buffer.from(`\0${u}\0${pw}`).toString('base64');
  try {
    const c = await RawClient.open(p.port);
    await dialogue(c, `S: 220\nC: EHLO a\nS: 250\nC: MAIL FROM:<x@y.example>\nS: 530 5.7.0\nC: AUTH PLAIN ${plain('pipeuser', 'pipe-secret')}\nS: 235 2.7.0\nC: MAIL FROM:<x@y.example>\nS: 250\nC: RCPT TO:<z@far.example>\nS: 250\nC: QUIT\nS: 221`);
    c.close();
    const c2 = await RawClient.open(p.port);
    let script = 'S: 220\nC: EHLO a\nS: 250\n';
    for (let i = 0; i < 3; i++) script += `C: AUTH PLAIN ${plain('pipeuser', 'nope')}\nS: 535 5.7.8\n`;
    script += `C: AUTH PLAIN ${plain('pipeuser', 'pipe-secret')}\nS: 454 4.7.0\n`;
    await dialogue(c2, script);
    c2.close();
    // The daemon logs before it replies, but its log reaches this process through a pipe, maybe after the reply.
    await p.waitForLog(/smtp authentication .*result=throttled/);
  } finally {
    await p.stop();
    p.cleanup();
  }
});

test('senders … masquerade: the From: header is rewritten to the allowed envelope sender', async () => {
  const r = await run(requireTool('swaks'), [
    ...swaksArgs(masqueradePort, '--tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'alice-secret'),
    '--header', 'Subject: masquerade test',
    '--header', 'From: "The Boss" <boss@corp.example>',
  ]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const m = (await spoolMessages(`${d.dir}/spool`)).find((x) => x.body.includes('Subject: masquerade test'));
  assert.ok(m);
  assert.match(m.body, /\r\nFrom: "The Boss" <alice@test\.example>\r\n/);
  assert.ok(!m.body.includes('boss@corp.example'));
});
