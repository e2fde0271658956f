/*
 * test/e2e/smtpserver-privsep.test.ts — the ZMailer front end started as
 * root is privilege-separated as smtpd is (docs/architecture.md): the
 * detached `smtpserver` stays root as the privileged parent (pid file,
 * log, binds, deliveries) and its child, the SMTP side, runs as _postern —
 * real, effective, saved and file-system ids of the process and of every
 * thread, read in /proc. Mail sent over TCP lands in a real user's mbox
 * (a user the test makes, with a 0700 home), written as that user.
 * Root only (CI runs as root).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PRIVSEP_USER } from '../helpers/daemon.js';
import { freePort, run, site, smtpSend, stopSmtpserver } from '../helpers/smtpserver.js';
import { createUsers, removeUsers } from '../helpers/users.js';

const IS_ROOT = process.getuid?.() === 0;
const HOST = '127.0.21.7';

/** The four uids (real, effective, saved, fs) of a process or thread, from its status file. */
function uids(status: string): number[] {
  return (/^Uid:\s*(.*)$/m.exec(status)?.[1] ?? '').trim().split(/\s+/).map(Number);
}

/** A root-started smtpserver daemon on HOST with a session log (-l), stopped after the test. */
async function startRoot(t: { after(fn: () => Promise<void>): void }, s: ReturnType<typeof site>): Promise<{ port: number; spool: string; logFile: string }> {
  const port = await freePort(HOST);
  const spool = join(s.dir, 'spool');
  const logFile = join(s.dir, 'smtpserver.log');
  t.after(() => stopSmtpserver(spool));
  const r = await run(['-C', s.conf, '-p', String(port), '-4', '-P', spool, '-l', logFile], { env: s.env });
  assert.equal(r.code, 0, r.stderr);
  return { port, spool, logFile };
}

test('smtpserver as root: a root parent, the SMTP side as _postern (every thread); mail lands as the user', { skip: IS_ROOT ? false : 'needs root' }, async (t) => {
  const s = site(`PARAM BindAddress ${HOST}\n`);
  const [u] = createUsers(s.dir, 'pzs', 1);
  assert.ok(u);
  t.after(() => removeUsers([u]));
  chmodSync(u.home, 0o700); // as Debian's adduser makes it
  const { port, spool, logFile } = await startRoot(t, s);

  const parent = Number(readFileSync(join(spool, '.pid.smtpserver'), 'utf8'));
  const log = readFileSync(logFile, 'utf8');
  const m = /smtpserver: privileged parent pid=(\d+); SMTP side pid=(\d+) runs as (\S+) \(uid (\d+)\)/.exec(log);
  assert.ok(m, log);
  assert.equal(Number(m[1]), parent, 'the pid file names the privileged parent');
  const child = Number(m[2]);
  assert.equal(m[3], PRIVSEP_USER);
  const p = Number(spawnSync('id', ['-u', PRIVSEP_USER], { encoding: 'utf8' }).stdout.trim());

  for (const task of readdirSync(`/proc/${parent}/task`)) assert.deepEqual(uids(readFileSync(`/proc/${parent}/task/${task}/status`, 'utf8')), [0, 0, 0, 0], `parent thread ${task} is root`);
  const tasks = readdirSync(`/proc/${child}/task`);
  assert.ok(tasks.length > 1, 'the SMTP side has threads');
  for (const task of tasks) assert.deepEqual(uids(readFileSync(`/proc/${child}/task/${task}/status`, 'utf8')), [p, p, p, p], `SMTP side thread ${task} runs as ${PRIVSEP_USER}`);
  assert.match(readFileSync(`/proc/${child}/status`, 'utf8'), new RegExp(`^PPid:\\s*${parent}$`, 'm'), 'the SMTP side is the parent’s child');
  const children = readdirSync(`/proc/${parent}/task`).flatMap((tk) => readFileSync(`/proc/${parent}/task/${tk}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  assert.ok(children.includes(child));
  assert.equal(statSync(spool).uid, p, `the spool is ${PRIVSEP_USER}'s`);

  // A root-only file stays shut to the SMTP side's uid.
  const secret = join(s.dir, 'secret');
  writeFileSync(secret, 'x\n', { mode: 0o600 });
  const cat = spawnSync('setpriv', [`--reuid=${p}`, `--regid=${p}`, '--clear-groups', 'cat', secret], { encoding: 'utf8' });
  assert.notEqual(cat.status, 0);

  // Mail for a real user, over TCP to the SMTP side, delivered by the parent as the user.
  const replies = await smtpSend(port, `${u.name}@test.example`, { host: HOST, localAddress: HOST });
  assert.match(replies, /^250 2\.0\.0 \S+ Message accepted/m, replies);
  const box = join(s.dir, 'mail', u.name);
  for (let i = 0; i < 100 && !(existsSync(box) && /over the wire/.test(readFileSync(box, 'utf8'))); i++) await new Promise((res) => setTimeout(res, 100));
  assert.match(readFileSync(box, 'utf8'), /Subject: over the wire/);
  assert.equal(statSync(box).uid, u.uid, 'the mbox belongs to its user');
});

test('smtpserver -l FILE: logrotate moves it (create, no copytruncate), SIGUSR1 to the pid file reopens it, nothing is lost', { skip: IS_ROOT ? false : 'needs root' }, async (t) => {
  const logrotate = existsSync('/usr/sbin/logrotate') ? '/usr/sbin/logrotate' : 'logrotate';
  const s = site(`PARAM BindAddress ${HOST}\n`);
  const { port, spool, logFile } = await startRoot(t, s);
  const lines = (f: string): string => (existsSync(f) ? readFileSync(f, 'utf8') : '');
  const count = (text: string, re: RegExp): number => (text.match(re) ?? []).length;
  const waitFor = async (f: string, re: RegExp, n = 1): Promise<void> => {
    for (let i = 0; i < 200 && count(lines(f), re) < n; i++) await new Promise((res) => setTimeout(res, 50));
  };
  assert.match(await smtpSend(port, 'postmaster@test.example', { host: HOST, localAddress: HOST }), /^250 2\.0\.0 /m);
  await waitFor(logFile, /smtp message /g);
  const conf = join(s.dir, 'logrotate.conf');
  writeFileSync(conf, `${logFile} {\n  rotate 2\n  nocopytruncate\n  create 0640 root root\n  missingok\n  postrotate\n    kill -USR1 $(cat ${join(spool, '.pid.smtpserver')})\n  endscript\n}\n`);
  const lr = spawnSync(logrotate, ['-f', '-s', join(s.dir, 'logrotate.state'), conf], { encoding: 'utf8' });
  assert.equal(lr.status, 0, lr.stderr);
  await waitFor(logFile, /reopened/g);
  assert.match(await smtpSend(port, 'postmaster@test.example', { host: HOST, localAddress: HOST }), /^250 2\.0\.0 /m);
  await waitFor(logFile, /smtp message /g);
  const old = lines(`${logFile}.1`);
  const now = lines(logFile);
  assert.equal(count(old, /smtp message /g), 1, old);
  assert.match(now, /log file .*smtpserver\.log reopened/);
  assert.equal(count(now, /smtp message /g), 1, now);
  // The session trace (-l records the conversation) goes on in the new file.
  assert.match(now, /<<< MAIL FROM:/);
});
