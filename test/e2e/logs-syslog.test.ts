/*
 * The mail log as an administrator meets it (issue 17): a real rsyslogd
 * (its own socket in place of /dev/log) receives a detached smtpd's lines
 * under facility mail; a daemon with nowhere to log refuses to detach; a
 * crash is logged; logrotate (create, not copytruncate) and SIGUSR1 move
 * the log file; -v -v shows commands and replies; OpenSMTPD's line form;
 * and Debian's fail2ban-regex finds the addresses of failed AUTHs and
 * refused clients in the real log the daemon wrote.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, SMTPD, basicConfig, startDaemon, tempDir, tlsAuthHead } from '../helpers/daemon.js';
import { startRsyslog } from '../helpers/rsyslog.js';
import { makeCert } from '../helpers/certs.js';
import { RawClient } from '../helpers/smtp-client.js';
import { requireTool, run } from '../helpers/tools.js';

const smtpd = (...args: string[]) => run(process.execPath, [SMTPD, ...args]);
const swaks = (port: number, ...extra: string[]) =>
  run(requireTool('swaks'), ['--server', '127.0.0.1', '--port', String(port), '--from', 'alice@test.example', '--to', 'root@test.example', '--helo', 'swaks.test', ...extra]);

/** The port the daemon logged it listens on. */
async function portFrom(lines: () => string[]): Promise<number> {
  // Up to 60 s: as root, smtpd starts two Node.js processes one after the other (privilege separation).
  for (let i = 0; i < 1200; i++) {
    const m = lines().map((l) => /listening on 127\.0\.0\.1 port (\d+)/.exec(l)).find((x) => x);
    if (m) return Number(m[1]);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no "listening on" line:\n${lines().join('\n')}`);
}

async function stopByPidFile(pidFile: string): Promise<void> {
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 1200; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`smtpd ${pid} did not stop`);
}

test('detached without a log file: every line reaches rsyslog under facility mail, tagged smtpd[PID]', async () => {
  const dir = tempDir();
  const rs = await startRsyslog(dir);
  try {
    const conf = join(dir, 'smtpd.conf');
    writeFileSync(conf, basicConfig(`log syslog socket "${rs.socket}"`).replaceAll('$DIR', dir));
    const r = await smtpd('-f', conf);
    assert.equal(r.status, 0, r.stderr);
    const ready = await rs.waitFor(/smtpd\[\d+\]: smtpd ready/);
    const pid = Number(readFileSync(join(dir, 'spool/smtpd.pid'), 'utf8').trim());
    assert.match(ready, new RegExp(`^\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d \\S+ smtpd\\[${pid}\\]: smtpd ready`));
    const port = await portFrom(rs.mail);
    assert.equal((await swaks(port)).status, 0);
    // 127.0.0.2 stands for a remote client (not `from local`): relaying is denied to it.
    assert.equal((await swaks(port, '--to', 'someone@far.example', '--local-interface', '127.0.0.2')).status, 24);
    await rs.waitFor(/smtp message session=\S+ msgid=\S+ from=<alice@test\.example> .*address=127\.0\.0\.1/);
    await rs.waitFor(/smtp failed-command session=\S+ address=127\.0\.0\.2 command="RCPT TO:<someone@far\.example>" result="550 5\.7\.1/);
    await stopByPidFile(join(dir, 'spool/smtpd.pid'));
    await rs.waitFor(/smtpd exiting/);
    const other = existsSync(rs.otherLog) ? readFileSync(rs.otherLog, 'utf8') : '';
    assert.ok(!/smtpd\[/.test(other), `lines outside facility mail:\n${other}`);
  } finally {
    await rs.stop();
  }
});

test('a daemon that would log nowhere refuses to detach, in one line', async () => {
  const dir = tempDir();
  const conf = join(dir, 'smtpd.conf');
  writeFileSync(conf, basicConfig(`log syslog socket "${dir}/no-such.sock"`).replaceAll('$DIR', dir));
  const r = await smtpd('-f', conf);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^smtpd: refusing to detach: no "log file" and no syslog socket at .*no-such\.sock/);
  assert.ok(!existsSync(join(dir, 'spool/smtpd.pid')));
});

test('an uncaught error is logged, with its stack, before the daemon exits 70', async () => {
  const dir = tempDir();
  const rs = await startRsyslog(dir);
  try {
    const conf = join(dir, 'smtpd.conf');
    writeFileSync(conf, basicConfig(`log syslog socket "${rs.socket}"`).replaceAll('$DIR', dir));
    // A module loaded before smtpd that throws from a timer once the daemon runs.
    const bomb = join(dir, 'bomb.mjs');
    writeFileSync(bomb, "setTimeout(() => { throw new Error('boom from a test'); }, 4000);\n");
    const r = await run(process.execPath, ['--import', bomb, SMTPD, '-F', '-f', conf]);
    assert.equal(r.status, 70, r.stderr);
    await rs.waitFor(/smtpd\[\d+\]: error: fatal: uncaught exception: boom from a test/);
    await rs.waitFor(/error: fatal: at .*bomb\.mjs/);
  } finally {
    await rs.stop();
  }
});

test('log file: logrotate moves it (create, no copytruncate), SIGUSR1 reopens it, nothing is lost', async () => {
  const logrotate = existsSync('/usr/sbin/logrotate') ? '/usr/sbin/logrotate' : requireTool('logrotate');
  const dir = tempDir();
  const logFile = join(dir, 'smtpd.log');
  writeFileSync(join(dir, 'smtpd.conf'), basicConfig(`log file "${logFile}"`).replaceAll('$DIR', dir));
  // -F: in the foreground, logging to the file only (startDaemon reads standard error, so not used here).
  const spawned = spawn(process.execPath, [SMTPD, '-F', '-f', join(dir, 'smtpd.conf'), '-P', 'mda', '-P', 'mta'], { stdio: 'ignore' });
  try {
    const lines = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n') : []);
    const port = await portFrom(() => lines(logFile));
    assert.equal((await swaks(port, '--header', 'Subject: before rotation')).status, 0);
    const pidFile = join(dir, 'spool/smtpd.pid');
    const conf = join(dir, 'logrotate.conf');
    writeFileSync(
      conf,
      `${logFile} {
  rotate 2
  nocopytruncate
  create 0640 root root
  missingok
  postrotate
    kill -USR1 $(cat ${pidFile})
  endscript
}
`,
    );
    const lr = await run(logrotate, ['-f', '-s', join(dir, 'logrotate.state'), conf]);
    assert.equal(lr.status, 0, lr.stderr);
    for (let i = 0; i < 100 && !lines(logFile).some((l) => /reopened/.test(l)); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await swaks(port, '--header', 'Subject: after rotation')).status, 0);
    for (let i = 0; i < 100 && !lines(logFile).some((l) => /smtp message/.test(l)); i++) await new Promise((r) => setTimeout(r, 50));
    const old = lines(`${logFile}.1`).join('\n');
    const now = lines(logFile).join('\n');
    assert.match(old, /smtpd ready/);
    assert.equal((old.match(/smtp message /g) ?? []).length, 1, old);
    assert.match(now, /log file .*smtpd\.log reopened/);
    assert.equal((now.match(/smtp message /g) ?? []).length, 1, now);
  } finally {
    spawned.kill('SIGTERM');
  }
});

test('-v -v logs every command and reply; failures carry the client address', async () => {
  const d = await startDaemon(basicConfig(), { args: ['-v', '-v'] });
  try {
    assert.equal((await swaks(d.port)).status, 0);
    await d.waitForLog(/trace io: session \S+: <<< MAIL FROM:<alice@test\.example>/);
    await d.waitForLog(/trace io: session \S+: >>> 250 /);
    const c = await RawClient.open(d.port, '127.0.0.1', '127.0.0.2');
    await c.reply();
    c.send('EHLO c\r\nMAIL FROM:<a@our_domain.org>\r\nRCPT TO:<x@far.example>\r\nQUIT\r\n');
    await c.reply();
    await c.reply();
    await c.reply();
    await d.waitForLog(/smtp failed-command session=\S+ address=127\.0\.0\.2 command="RCPT TO:<x@far\.example>"/);
    await d.waitForLog(/smtp disconnected session=\S+ address=127\.0\.0\.2 reason=quit/);
  } finally {
    await d.stop();
    d.cleanup();
  }
});

test('log format opensmtpd: seed 002 lines for a message and its delivery', async () => {
  const d = await startDaemon(basicConfig('log format opensmtpd'), { deliver: true });
  try {
    assert.equal((await swaks(d.port, '--from', 'user@our_domain.org')).status, 0);
    await d.waitForLog(/^[0-9a-f]{8}: from=<user@our_domain\.org>, size=\d+, nrcpts=1, proto=ESMTP, relay=localhost \[127\.0\.0\.1\]$/);
    await d.waitForLog(/^[0-9a-f]{16}: to=<root@test\.example>, delay=\d+, stat=Sent$/);
  } finally {
    await d.stop();
    d.cleanup();
  }
});

test('fail2ban-regex: the shipped filter finds failed AUTHs and refused clients in the real log', async () => {
  const f2b = requireTool('fail2ban-regex');
  const dir = tempDir();
  makeCert(dir, 'mx.test.example');
  writeFileSync(join(dir, 'creds'), 'alice {PLAIN}alice-secret\n');
  const logFile = join(dir, 'smtpd.log');
  const d = await startDaemon(
    `${tlsAuthHead()}smtp limit max-connections 1
listen on 127.0.0.1 port 0 tls pki mx.test.example auth-optional <creds>
action "local" mbox
match from any for domain "test.example" action "local"
`,
    { dir },
  );
  try {
    // Two failed AUTHs, one success (not matched), one refused connection, one relay attempt.
    for (const pw of ['wrong-1', 'wrong-2', 'alice-secret']) await swaks(d.port, '--tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', pw);
    const holder = await RawClient.open(d.port);
    await holder.reply();
    const refused = await RawClient.open(d.port);
    await refused.reply().catch(() => undefined);
    holder.send('QUIT\r\n');
    await holder.reply();
    await d.waitForLog(/smtp refused address=127\.0\.0\.1/);
    await new Promise((r) => setTimeout(r, 300));
    await swaks(d.port, '--to', 'someone@far.example', '--local-interface', '127.0.0.2');
    await d.waitForLog(/RCPT TO:<someone@far\.example>/);
    // The daemon's own lines (standard error), with the file's timestamp and tag, as `log file` writes them.
    writeFileSync(logFile, d.logs.map((l) => `${new Date().toISOString()} smtpd[${d.proc.pid}]: ${l}`).join('\n') + '\n');
    // Installed as fail2ban installs filters: beside its common.conf.
    const filters = join(dir, 'filter.d');
    mkdirSync(filters);
    copyFileSync(join(REPO, 'etc/fail2ban/filter.d/postern.conf'), join(filters, 'postern.conf'));
    symlinkSync('/etc/fail2ban/filter.d/common.conf', join(filters, 'common.conf'));
    const r = await run(f2b, ['-v', logFile, join(filters, 'postern.conf')], { timeoutMs: 120_000 });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const matched = /Lines: \d+ lines, \d+ ignored, (\d+) matched/.exec(r.stdout);
    assert.equal(Number(matched?.[1]), 4, r.stdout);
    assert.match(r.stdout, /127\.0\.0\.1/);
    assert.match(r.stdout, /127\.0\.0\.2/);
    // The successful AUTH is not a failure.
    assert.ok(!/result=ok/.test(r.stdout.split('Lines:')[0] ?? ''), r.stdout);
  } finally {
    await d.stop();
    d.cleanup();
  }
});
