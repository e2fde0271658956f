/*
 * smtpctl against the real daemon: a message to a destination that defers,
 * inspected with show queue (pipe, --human, --json), schedule, pause/resume,
 * show stats, monitor, remove; reload with a broken configuration (the daemon
 * keeps running); SIGHUP with a changed aliases file; stop.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon, basicConfig, REPO, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { run } from '../helpers/tools.js';

const POSTERN = join(REPO, 'bin/postern.js');
let d: DaemonHandle;
/** The daemon's own configuration file (reload re-reads it). */
let conf: string;
/** A copy smtpctl reads to find the control socket, so that breaking `conf` does not break smtpctl. */
let ctlConf: string;

/** The main listener's port now: `port 0` gets a new one from the kernel at each reload. */
const currentPort = (): number => Number(d.logs.map((l) => /listening on 127\.0\.0\.1 port (\d+)$/.exec(l)?.[1]).filter((x) => x).at(-1));

const ctl = (...args: string[]) => run(process.execPath, [POSTERN, 'smtpctl', '-f', ctlConf, ...args]);

const CONFIG = (aliases: string) =>
  basicConfig(`table aliases file:${aliases}
action "far" relay host smtp://127.0.0.1:1
action "aliased" mbox alias <aliases>
match from any for domain "far.example" action "far"
match from any for domain "alias.example" action "aliased"`);

before(async () => {
  const { tempDir } = await import('../helpers/daemon.js');
  const dir = tempDir();
  writeFileSync(join(dir, 'aliases'), 'team: root\n');
  d = await startDaemon(CONFIG(join(dir, 'aliases')), { dir, deliver: true });
  conf = join(dir, 'smtpd.conf');
  ctlConf = join(dir, 'ctl.conf');
  writeFileSync(ctlConf, readFileSync(conf));
});
after(async () => {
  await d.stop();
  d.cleanup();
});

async function queueJson(): Promise<Record<string, unknown>[]> {
  const r = await ctl('show', 'queue', '--json');
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>[];
}

test('a deferred message: show queue in its three formats, schedule, pause/resume, stats, remove', async () => {
  const c = await RawClient.open(d.port);
  const r = await dialogue(c, 'S: 220\nC: EHLO ctl.test\nS: 250\nC: MAIL FROM:<root@test.example>\nS: 250\nC: RCPT TO:<someone@far.example>\nS: 250\nC: DATA\nS: 354\nC: Subject: deferred\nC:\nC: x\nC: .\nS: 250 2.0.0\nC: QUIT\nS: 221');
  c.close();
  const msgid = /2\.0\.0 ([0-9a-f]{8})/.exec(r[r.length - 2]?.text ?? '')?.[1] ?? '';
  let entries: Record<string, unknown>[] = [];
  for (let i = 0; i < 100; i++) {
    entries = await queueJson();
    if (entries.some((e) => e['msgid'] === msgid && Number(e['retry'] ?? e['attempts'] ?? 0) > 0)) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const mine = entries.filter((e) => e['msgid'] === msgid);
  assert.equal(mine.length, 1, JSON.stringify(entries));

  const pipe = await ctl('sh', 'q');
  assert.equal(pipe.status, 0, pipe.stderr);
  const line = pipe.stdout.split('\n').find((l) => l.includes(msgid)) ?? '';
  assert.ok(line.split('|').length >= 10, line);
  assert.ok(line.includes('root@test.example') && line.includes('someone@far.example'), line);

  const human = await ctl('show', 'queue', '--human');
  assert.match(human.stdout, /someone@far\.example/);

  assert.equal((await ctl('pause', 'mta')).status, 0);
  assert.match((await ctl('show', 'status')).stdout, /mta[^\n]*paused/i);
  assert.equal((await ctl('resume', 'mta')).status, 0);
  assert.equal((await ctl('schedule', msgid)).status, 0);

  const stats = await ctl('show', 'stats');
  assert.match(stats.stdout, /^smtp\.session=\d+$/m);
  assert.match(stats.stdout, /^scheduler\.delivery\.tempfail=[1-9]\d*$/m);
  assert.match(stats.stdout, /^uptime=\d+$/m);

  const rm = await ctl('remove', msgid);
  assert.equal(rm.status, 0, rm.stderr);
  assert.ok(!(await queueJson()).some((e) => e['msgid'] === msgid));
  const unknown = await ctl('remove', '0123abcd');
  assert.equal(unknown.status, 1);
  assert.equal(unknown.stderr.trim().split('\n').length, 1);
});

test('monitor prints a header and one line a second', async () => {
  const p = spawn(process.execPath, [POSTERN, 'smtpctl', '-f', conf, 'monitor']);
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await new Promise((r) => setTimeout(r, 2600));
  p.kill();
  await new Promise((r) => p.on('exit', r));
  const lines = out.trim().split('\n');
  assert.ok(lines.length >= 3, out);
});

test('reload with a broken configuration: refused, the daemon keeps running on the old one', async () => {
  const good = readFileSync(conf, 'utf8');
  writeFileSync(conf, `${good}\nlisen on nowhere\n`);
  const r = await ctl('reload');
  writeFileSync(conf, good);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /smtpd\.conf:\d+:\d+: .*lisen/);
  await d.waitForLog(/reload refused, keeping the running configuration/);
  const c = await RawClient.open(d.port);
  await dialogue(c, 'S: 220\nC: QUIT\nS: 221');
  c.close();
});

test('reload with a changed listener: the new port is bound, a session in progress goes on', async () => {
  const inProgress = await RawClient.open(d.port);
  await dialogue(inProgress, 'S: 220\nC: EHLO before.reload\nS: 250\nC: MAIL FROM:<root@test.example>\nS: 250');
  const good = readFileSync(conf, 'utf8');
  writeFileSync(conf, good.replace('listen on 127.0.0.1 port 0', 'listen on 127.0.0.1 port 0\nlisten on 127.0.0.1 port 0 tag SECOND'));
  try {
    const r = await ctl('reload');
    assert.equal(r.status, 0, r.stderr);
    const line = await d.waitForLog(/configuration reloaded: 2 listener\(s\)/);
    assert.ok(line);
    await dialogue(inProgress, 'C: RCPT TO:<root@test.example>\nS: 250\nC: QUIT\nS: 221');
    inProgress.close();
    const ports = d.logs.map((l) => /listening on 127\.0\.0\.1 port (\d+) tag SECOND/.exec(l)?.[1]).filter((x) => x);
    assert.equal(ports.length, 1);
    const c = await RawClient.open(Number(ports[0]));
    await dialogue(c, 'S: 220\nC: QUIT\nS: 221');
    c.close();
  } finally {
    writeFileSync(conf, good);
  }
});

test('SIGHUP re-reads a changed aliases file without dropping sessions', async () => {
  const c = await RawClient.open(currentPort());
  await dialogue(c, 'S: 220\nC: EHLO a\nS: 250\nC: MAIL FROM:<x@far.example>\nS: 250\nC: RCPT TO:<team@alias.example>\nS: 250\nC: RCPT TO:<crew@alias.example>\nS: 550 5.1.1');
  writeFileSync(join(d.dir, 'aliases'), 'crew: root\n');
  const before = d.logs.length;
  d.proc.kill('SIGHUP');
  for (let i = 0; i < 100 && !d.logs.slice(before).some((l) => /configuration reloaded/.test(l)); i++) await new Promise((r) => setTimeout(r, 50));
  await dialogue(c, 'C: RCPT TO:<crew@alias.example>\nS: 250\nC: RCPT TO:<team@alias.example>\nS: 550 5.1.1\nC: QUIT\nS: 221');
  c.close();
});

test('errors: unknown command, ambiguous prefix', async () => {
  const bad = await ctl('frobnicate');
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  const amb = await ctl('s');
  assert.notEqual(amb.status, 0);
});
