/*
 * End to end, the rest of the checks at the door (src/antispam/) in the
 * built smtpd started with -v, from real clients (swaks with STARTTLS and
 * AUTH, Python's smtplib) bound to addresses of 127.0.22.0/24:
 * greylisting (delay 1h: every unskipped triplet is deferred) skipped for
 * authenticated and local clients; rate limits on recipients per client,
 * on messages per authenticated user and on recipients per sender domain
 * (450 4.7.1 naming what was counted); a header check whose pattern runs
 * past its budget (451 4.3.0, logged) while the daemon keeps serving; and
 * the -v lines fail2ban reads: a TLS handshake broken by garbage, a
 * command timeout and a protocol error, each with the client address,
 * and fail2ban-regex finding them with the shipped filter.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { makeCert } from '../helpers/certs.js';
import { python, requireTool, run } from '../helpers/tools.js';

let d: DaemonHandle;

before(async () => {
  const dir = tempDir();
  makeCert(dir, 'mx.test.example');
  writeFileSync(join(dir, 'creds'), ['alice', 'bob', 'carol', 'dave'].map((u) => `${u} {PLAIN}${u}-secret\n`).join(''));
  // Backreferences keep V8's linear engine out: this pattern runs guarded, and backtracks 2^40 times on 40 "a"s.
  writeFileSync(join(dir, 'header_checks'), '/^X-Evil: (a|a)*\\1!$/ REJECT evil\n/^Subject:.*casino/ REJECT no casino\n');
  d = await startDaemon(
    `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
pki mx.test.example cert "$DIR/mx.test.example.crt"
pki mx.test.example key "$DIR/mx.test.example.key"
table creds file:$DIR/creds
smtp auth-fail-delay 0
smtp timeout command 5s
listen on 127.0.0.1 port 0 tls pki mx.test.example auth-optional <creds>
greylist delay 1h
rate-limit connections 4 per 1h by client
rate-limit recipients 2 per 1h by client
rate-limit messages 2 per 1h by auth-user
rate-limit recipients 3 per 1h by sender-domain
header-checks "$DIR/header_checks"
action "local" mbox
match from any for domain "test.example" action "local"
`,
    { dir, args: ['-v'] },
  );
});
after(async () => {
  await d?.stop();
});

/** swaks from SRC (authenticated as USER over STARTTLS when given); its whole transcript. */
async function swaks(src: string, user: string | undefined, extra: string[] = []): Promise<string> {
  const auth = user === undefined ? [] : ['--tls', '--auth', 'PLAIN', '--auth-user', user, '--auth-password', `${user}-secret`];
  const r = await run(requireTool('swaks'), ['--server', '127.0.0.1', '--port', String(d.port), '--local-interface', src, '--helo', 'client.sender.test', '--from', `${user ?? 'someone'}@${user ?? 'anon'}.example`, '--to', 'root@test.example', ...auth, ...extra]);
  return r.stdout + r.stderr;
}

const ACCEPTED = /<[-~]\s+250 2\.0\.0 \S+ Message accepted/;

test('greylisting defers an unauthenticated client, and skips an authenticated one and a local one', async () => {
  assert.match(await swaks('127.0.22.5', undefined), /<\*\* 450 4\.7\.1 Greylisted, please try again in \d+ seconds/);
  assert.match(await swaks('127.0.22.6', 'alice'), ACCEPTED);
  // 127.0.0.1 is this machine ("from local"): no check at the door applies.
  assert.match(await swaks('127.0.0.1', undefined, ['--from', 'local@local.example']), ACCEPTED);
});

test('rate limit on recipients per client: the third RCPT gets 450 4.7.1, the first two are kept', async () => {
  const out = await swaks('127.0.22.7', 'bob', ['--to', 'root@test.example,daemon@test.example,bin@test.example']);
  assert.match(out, /<~\*+ 450 4\.7\.1 Error: too many recipients from \[127\.0\.22\.7\]/);
  assert.match(out, ACCEPTED);
  await d.waitForLog(/smtp failed-command session=\S+ address=127\.0\.22\.7 command="RCPT TO:<bin@test\.example>" result="450 4\.7\.1 /);
});

test('rate limit on messages per authenticated user: counted across client addresses, the third DATA gets 450 4.7.1', async () => {
  assert.match(await swaks('127.0.22.8', 'carol'), ACCEPTED);
  assert.match(await swaks('127.0.22.9', 'carol'), ACCEPTED);
  assert.match(await swaks('127.0.22.10', 'carol'), /<~\*+ 450 4\.7\.1 Error: too many messages from user carol, try again later/);
  // Another user from the same address is not counted with carol.
  assert.match(await swaks('127.0.22.10', 'alice'), ACCEPTED);
});

test('rate limit on recipients per sender domain: counted across clients, before greylisting', async () => {
  for (const src of ['127.0.22.20', '127.0.22.21', '127.0.22.22']) assert.match(await swaks(src, undefined, ['--from', 'x@bulk.example']), /<\*\* 450 4\.7\.1 Greylisted/);
  assert.match(await swaks('127.0.22.23', undefined, ['--from', 'y@bulk.example']), /<\*\* 450 4\.7\.1 Error: too many recipients from sender domain bulk\.example/);
});

test('a header check pattern past its budget: 451 4.3.0 and a log line; the daemon serves the next session', async () => {
  const started = Date.now();
  const out = await swaks('127.0.22.30', 'dave', ['--add-header', `X-Evil: ${'a'.repeat(40)}`]);
  assert.match(out, /<~\*+ 451 4\.3\.0 Temporary failure in header checks, try again later/);
  await d.waitForLog(/smtp rejected session=\S+ msgid=\S+ reason="header checks: a pattern ran longer than 50 ms"/);
  await d.waitForLog(/smtp failed-command session=\S+ address=127\.0\.22\.30 command=DATA result="451 4\.3\.0 /);
  assert.ok(Date.now() - started < 15_000, 'the pattern was cut short');
  assert.match(await swaks('127.0.22.31', 'dave', ['--header', 'Subject: after the evil one']), ACCEPTED);
});

/** smtplib from SRC: EHLO, then BODY (Python using `s`); prints what BODY prints. */
async function smtplib(src: string, body: string): Promise<string> {
  const script = `
import smtplib, time
s = smtplib.SMTP('127.0.0.1', ${d.port}, local_hostname='client.sender.test', source_address=(${JSON.stringify(src)}, 0), timeout=20)
s.ehlo()
${body}
`;
  const r = await run(python(), ['-c', script]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('-v: garbage after STARTTLS is a TLS handshake failure logged with the client address', async () => {
  const out = await smtplib('127.0.22.40', `
print(s.docmd('STARTTLS')[0])
s.sock.sendall(b'this is not a TLS ClientHello\\r\\n' * 8)
try:
    print('read', s.sock.recv(100))
except Exception as e:
    print('closed', type(e).__name__)
`);
  assert.match(out, /^220\n(read b''|closed)/);
  await d.waitForLog(/smtp tls-failed session=\S+ address=127\.0\.22\.40 reason=\S+/);
  await d.waitForLog(/smtp disconnected session=\S+ address=127\.0\.22\.40 /);
});

test('-v: a command timeout and a protocol error are logged with the client address', async () => {
  const out = await smtplib('127.0.22.41', `
time.sleep(6.5)
try:
    print(s.getreply())
except Exception as e:
    print('closed', type(e).__name__)
`);
  assert.match(out, /421|closed/);
  await d.waitForLog(/smtp failed-command session=\S+ address=127\.0\.22\.41 command=\(timeout\) result="421 4\.4\.2 /);
  await d.waitForLog(/smtp disconnected session=\S+ address=127\.0\.22\.41 reason=timeout/);
  const bad = await smtplib('127.0.22.42', `
print(s.docmd('MAIL', 'FROM:<no-closing-bracket'))
print(s.docmd('FROBNICATE'))
`);
  assert.match(bad, /^\(501, b'5\.\d\.\d /m);
  assert.match(bad, /^\(500, b'5\.5\.[12] /m);
  await d.waitForLog(/smtp failed-command session=\S+ address=127\.0\.22\.42 command="MAIL FROM:<no-closing-bracket" result="501 5\.\d\.\d /);
  await d.waitForLog(/smtp failed-command session=\S+ address=127\.0\.22\.42 command=FROBNICATE result="500 5\.5\.[12] /);
  await d.waitForLog(/trace io: session \S+: <<< FROBNICATE/);
});

test('fail2ban-regex: the shipped filter finds a client refused at connect; mode=aggressive also the TLS failure, the timeout and the protocol errors', async () => {
  for (let i = 0; i < 4; i++) assert.match(await swaks('127.0.22.50', undefined, ['--quit-after', 'CONNECT']), /<-  220 /);
  assert.match(await swaks('127.0.22.50', undefined, ['--quit-after', 'CONNECT']), /<\*\* 421 4\.7\.0 Error: too many connections from \[127\.0\.22\.50\]/);
  await d.waitForLog(/smtp failed-command session=\S+ address=127\.0\.22\.50 command=\(connect\) result="421 /);
  const dir = tempDir();
  const logFile = join(dir, 'smtpd.log');
  writeFileSync(logFile, d.logs.map((l) => `${new Date().toISOString()} smtpd[${d.proc.pid}]: ${l}`).join('\n') + '\n');
  // Installed as fail2ban installs filters: beside its common.conf.
  mkdirSync(join(dir, 'filter.d'));
  const filter = join(dir, 'filter.d', 'postern.conf');
  copyFileSync(join(REPO, 'etc/fail2ban/filter.d/postern.conf'), filter);
  symlinkSync('/etc/fail2ban/filter.d/common.conf', join(dir, 'filter.d', 'common.conf'));
  const f2b = async (mode: string): Promise<string> => {
    const r = await run(requireTool('fail2ban-regex'), ['-v', logFile, `${filter}[mode=${mode}]`], { timeoutMs: 120_000 });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    return r.stdout.split('Lines:')[0] ?? '';
  };
  const normal = await f2b('normal');
  assert.match(normal, /127\.0\.22\.50/);
  assert.doesNotMatch(normal, /127\.0\.22\.4[012]/);
  const aggressive = await f2b('aggressive');
  for (const a of ['50', '40', '41', '42']) assert.match(aggressive, new RegExp(`127\\.0\\.22\\.${a}\\b`));
  // Greylisting and rate limits (450) are not offences.
  assert.doesNotMatch(aggressive, /127\.0\.22\.(5|7|2[0-3])\b/);
});
