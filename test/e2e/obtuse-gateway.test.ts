/*
 * The Obtuse gateway of seed 001, end to end, in front of a real Postfix:
 *
 *   smtpd -c HOME -d /spool -u daemon -g daemon -D -L (-l/-p for loopback)
 *   smtpfwdd -d HOME/spool -u daemon -g daemon
 *
 * The receiver runs as daemon, confined to HOME (checked from outside in
 * /proc and by a probe that enters its namespace and root as daemon);
 * mail from the internal network reaches a real user's ~/Maildir through
 * Postfix's sendmail; `noto` refuses one recipient and goes on; `deny`
 * closes the session; a failing MTA keeps the message, and nothing is
 * lost when either program is killed with SIGKILL. Root only.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, tempDir } from '../helpers/daemon.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { createUsers, removeUsers, type RealUser } from '../helpers/users.js';
import { postfixUnavailable, startLocalPostfix, type LocalPostfix } from '../helpers/postfix-local.js';

const SMTPD = join(REPO, 'dist/src/cli/smtpd.js');
const POSTERN = join(REPO, 'bin/postern.js');
const DOMAIN = 'post.test';
const skip = postfixUnavailable() ?? (spawnSync('unshare', ['--version']).status !== 0 ? 'no unshare' : undefined);

const RULES = `# seed 001's listing on loopback: 127.0.0.1 is the internal network, 127.0.0.3 a spammer
deny:127.0.0.3:ALL:ALL:550 Mail from %I refused; your network is a known source of spam
allow:127.0.0.1:ALL:ALL
allow:ALL:ALL:*@${DOMAIN}
noto:ALL:ALL:ALL:550 Relaying to %T denied to %I
`;

interface Proc {
  readonly proc: ChildProcess;
  readonly out: string[];
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

function run(cmd: string, args: string[]): Proc {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  const onData = (d: Buffer): void => void out.push(...d.toString('utf8').split('\n').filter(Boolean));
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  return {
    proc,
    out,
    async waitFor(re, ms = 15_000) {
      const end = Date.now() + ms;
      for (;;) {
        for (const l of out) {
          const m = l.match(re);
          if (m) return m;
        }
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}; output:\n${out.join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

async function exited(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise((r) => p.once('exit', r));
}

let pf: LocalPostfix;
let user: RealUser;
let home: string;
let base: string;
let smtpd: Proc;
let receiverPid: number;
let port: number;
const daemonUid = Number(spawnSync('id', ['-u', 'daemon'], { encoding: 'utf8' }).stdout.trim());

function startSmtpd(): Promise<void> {
  smtpd = run(process.execPath, [SMTPD, '-c', home, '-d', '/spool', '-u', 'daemon', '-g', 'daemon', '-D', '-L', '-l', '127.0.0.1', '-p', '0']);
  return smtpd.waitFor(/receiver pid (\d+) uid \d+ listening on \S+ port (\d+)/).then((m) => {
    receiverPid = Number(m[1]);
    port = Number(m[2]);
  });
}

function startFwd(sendmail = '/usr/sbin/sendmail'): Proc {
  return run('nsenter', [`--mount=${pf.ns}`, '--', process.execPath, POSTERN, 'smtpfwdd', '-d', join(home, 'spool'), '-u', 'daemon', '-g', 'daemon', '-s', sendmail, '-r', '1']);
}

function spooled(): string[] {
  const q = join(home, 'spool', 'queue');
  return existsSync(q) ? readdirSync(q).flatMap((b) => readdirSync(join(q, b))).filter((n) => /^[0-9a-f]{8}$/.test(n)) : [];
}

async function mailbox(subject: string, ms = 20_000): Promise<string> {
  const dir = join(user.home, 'Maildir', 'new');
  const end = Date.now() + ms;
  for (;;) {
    if (existsSync(dir)) {
      for (const f of readdirSync(dir)) {
        const text = readFileSync(join(dir, f), 'utf8');
        if (text.includes(`Subject: ${subject}`)) return text;
      }
    }
    if (Date.now() > end) throw new Error(`no message "${subject}" in ${dir}; postfix log:\n${pf.log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function send(from: string, script: string): Promise<Awaited<ReturnType<typeof dialogue>>> {
  const c = await RawClient.open(port, '127.0.0.1', from);
  try {
    return await dialogue(c, script);
  } finally {
    c.close();
  }
}

function message(rcpts: string[], subject: string): string {
  return `S: 220\nC: EHLO inside.example\nS: 250\nC: MAIL FROM:<staff@inside.example>\nS: 250\n${rcpts.map((r) => `C: RCPT TO:<${r}>\nS: 250\n`).join('')}C: DATA\nS: 354\nC: Subject: ${subject}\nC:\nC: through the Obtuse gateway\nC: .\nS: 250\nC: QUIT\nS: 221`;
}

before(async () => {
  if (skip) return;
  base = tempDir('postern-obtuse-gw-');
  chmodSync(base, 0o755);
  user = createUsers(base, 'obt', 1)[0] as RealUser;
  mkdirSync(join(base, 'postfix'));
  pf = await startLocalPostfix(join(base, 'postfix'), DOMAIN);
  // Seed 001's set-up: mkdir /home/smtpd/{etc,spool}; chown -R daemon.daemon; chmod 700.
  home = join(base, 'smtpd');
  mkdirSync(join(home, 'etc'), { recursive: true });
  mkdirSync(join(home, 'spool'), { mode: 0o700 });
  writeFileSync(join(home, 'etc', 'smtpd_check_rules'), RULES);
  for (const p of [home, join(home, 'etc'), join(home, 'spool'), join(home, 'etc', 'smtpd_check_rules')]) chownSync(p, daemonUid, daemonUid);
  chmodSync(home, 0o700);
  await startSmtpd();
});

after(async () => {
  if (skip) return;
  smtpd?.proc.kill('SIGTERM');
  await exited(smtpd.proc);
  await pf.stop();
  removeUsers([user]);
});

test('the receiver runs as daemon, confined to its home', { skip }, () => {
  const status = readFileSync(`/proc/${receiverPid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Uid:\\s+${daemonUid}\\s+${daemonUid}\\s+${daemonUid}\\s+${daemonUid}$`, 'm'));
  assert.match(status, new RegExp(`^Gid:\\s+${daemonUid}\\s+${daemonUid}\\s+${daemonUid}\\s+${daemonUid}$`, 'm'));
  assert.match(status, /^CapEff:\s+0+$/m);
  // Its root is not the host's: the host's /etc/passwd, /root and the Postfix folder are not there.
  const root = `/proc/${receiverPid}/root`;
  assert.deepEqual(readdirSync(join(root, 'etc')).sort(), ['hosts', 'localtime', 'resolv.conf'].filter((f) => existsSync(`/etc/${f}`)));
  assert.ok(!existsSync(join(root, 'root')));
  assert.ok(!existsSync(join(root, pf.dir)));
  assert.ok(existsSync(join(root, home, 'etc', 'smtpd_check_rules')));
});

test('in the receiver\'s namespace and root, as daemon, nothing outside the home can be read or written', { skip }, () => {
  const probe = `
const fs = require('fs');
const out = {};
for (const p of ['/etc/passwd', '/etc/shadow', '/root', ${JSON.stringify(pf.dir)}, ${JSON.stringify(user.home)}, '/proc/1/environ']) {
  try { fs.readdirSync(p); out['read ' + p] = 'ok'; } catch (e) { try { fs.readFileSync(p); out['read ' + p] = 'ok'; } catch (e2) { out['read ' + p] = e2.code; } }
}
for (const p of ['/x', '/etc/x', '/tmp/x', '/usr/x', '/dev/x', ${JSON.stringify(join(REPO, 'x'))}, ${JSON.stringify(join(home, 'spool', 'probe'))}]) {
  try { fs.writeFileSync(p, 'x'); out['write ' + p] = 'ok'; fs.unlinkSync(p); } catch (e) { out['write ' + p] = e.code; }
}
console.log(JSON.stringify(out));`;
  const r = spawnSync('nsenter', [`--target=${receiverPid}`, '--mount', '--root', `--setuid=${daemonUid}`, `--setgid=${daemonUid}`, '--', process.execPath, '-e', probe], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as Record<string, string>;
  for (const [k, v] of Object.entries(got)) {
    if (k === `write ${join(home, 'spool', 'probe')}`) assert.equal(v, 'ok', k);
    else assert.notEqual(v, 'ok', `${k} should fail`);
  }
});

test('mail from the internal network reaches the user\'s mailbox through Postfix', { skip }, async () => {
  const fwd = startFwd();
  try {
    await send('127.0.0.1', message([`${user.name}@${DOMAIN}`], 'inside-1'));
    const text = await mailbox('inside-1');
    assert.match(text, /through the Obtuse gateway/);
    assert.match(text, /^Return-Path: <staff@inside\.example>/m);
    await fwd.waitFor(/handed to \/usr\/sbin\/sendmail from=<staff@inside\.example> rcpts=1/);
    assert.deepEqual(spooled(), []);
    // smtpfwdd runs as daemon too.
    const pid = fwd.proc.pid as number;
    assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), new RegExp(`^Uid:\\s+${daemonUid}\\s`, 'm'));
  } finally {
    fwd.proc.kill('SIGTERM');
    await exited(fwd.proc);
  }
});

test('noto refuses the recipient and the session goes on; deny refuses and closes', { skip }, async () => {
  const got = await send(
    '127.0.0.2',
    `S: 220\nC: EHLO outside.example\nS: 250\nC: MAIL FROM:<a@outside.example>\nS: 250\nC: RCPT TO:<victim@elsewhere.example>\nS: 550\nC: RCPT TO:<${user.name}@${DOMAIN}>\nS: 250\nC: QUIT\nS: 221`,
  );
  assert.equal(got[3]?.text, '550 5.7.1 Relaying to <victim@elsewhere.example> denied to 127.0.0.2');
  const denied = await send('127.0.0.3', `S: 220\nC: EHLO spam.example\nS: 250\nC: MAIL FROM:<offer@spam.example>\nS: 250\nC: RCPT TO:<${user.name}@${DOMAIN}>\nS: 550\nCLOSED`);
  assert.equal(denied[3]?.text, '550 5.7.1 Mail from 127.0.0.3 refused; your network is a known source of spam');
});

test('a failing MTA keeps the message; SIGKILL of smtpfwdd and of the receiver loses nothing', { skip }, async () => {
  const failing = startFwd('/bin/false');
  await send('127.0.0.1', message([`${user.name}@${DOMAIN}`], 'kept-2'));
  await failing.waitFor(/\/bin\/false exited 1; kept for a retry/);
  assert.equal(spooled().length, 1);
  failing.proc.kill('SIGKILL');
  await exited(failing.proc);
  // The receiver killed outright: the spooled message survives its restart.
  process.kill(receiverPid, 'SIGKILL');
  await exited(smtpd.proc);
  assert.equal(spooled().length, 1);
  await startSmtpd();
  const fwd = startFwd();
  try {
    await mailbox('kept-2');
    await fwd.waitFor(/handed to/);
    assert.deepEqual(spooled(), []);
  } finally {
    fwd.proc.kill('SIGTERM');
    await exited(fwd.proc);
  }
});

test('an edit of the rules file applies from the next session, as Obtuse read it for every check', { skip }, async () => {
  const file = join(home, 'etc', 'smtpd_check_rules');
  writeFileSync(file, `noto:ALL:ALL:*@blocked.example:550 5.7.1 %T is blocked now\n${RULES}`);
  await send('127.0.0.1', 'S: 220\nC: EHLO inside.example\nS: 250\nC: MAIL FROM:<staff@inside.example>\nS: 250\nC: RCPT TO:<x@blocked.example>\nS: 550 5.7.1 <x@blocked.example> is blocked now\nC: QUIT\nS: 221');
  await smtpd.waitFor(/smtpd_check_rules: changed, read again/);
  writeFileSync(file, RULES);
});

test('the launcher killed with SIGKILL: the receiver stops too and frees the port', { skip }, async () => {
  const pid = receiverPid;
  smtpd.proc.kill('SIGKILL');
  await exited(smtpd.proc);
  const end = Date.now() + 10_000;
  while (existsSync(`/proc/${pid}`) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!existsSync(`/proc/${pid}`), 'the receiver is still running');
  await startSmtpd();
});
