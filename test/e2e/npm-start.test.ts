/*
 * test/e2e/npm-start.test.ts — the README's first step as a newcomer takes
 * it as root: a clone in root's 0700 home (/root/postern), `npm start`'s
 * script (scripts/start.mjs, after the build `npm start` runs first).
 * _postern cannot pass the 0700 folder, so the script runs Postern from
 * $POSTERN_START_DIR (by default /var/spool/postern-start): the spool, the
 * mailboxes, a copy of the configuration and of the code; it says so.
 * swaks then delivers to a real user (made by the test, 0700 home), whose
 * mbox belongs to that user. `postern install` from that clone is refused
 * with one line (its unit could not run). Root only.
 *
 * The clone is the worktree's files hard-linked (cp -al: the same bytes,
 * at a path under the 0700 folder); its etc/smtpd.conf.default is a new
 * file that listens on this test's loopback address.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO, tempDir } from '../helpers/daemon.js';
import { freePort } from '../helpers/smtpserver.js';
import { requireTool } from '../helpers/tools.js';
import { createUsers, removeUsers } from '../helpers/users.js';

const HOST = '127.0.21.9';

test('npm start as root in a clone under a 0700 folder: runs from a place _postern reaches, says so, delivers to a real user', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async (t) => {
  requireTool('swaks');
  const base = mkdtempSync(join(tmpdir(), 'postern-rootclone-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  chmodSync(base, 0o700); // as /root
  const clone = join(base, 'postern');
  mkdirSync(clone);
  for (const part of ['package.json', 'bin', 'dist', 'etc', 'scripts', 'node_modules']) {
    const r = spawnSync('cp', ['-al', join(REPO, part), join(clone, part)]);
    if (r.status !== 0) cpSync(join(REPO, part), join(clone, part), { recursive: true });
  }
  const port = await freePort(HOST);
  const conf = join(clone, 'etc', 'smtpd.conf.default');
  const text = readFileSync(conf, 'utf8');
  unlinkSync(conf); // a hard link: never write through it into the worktree
  writeFileSync(conf, text.replace('listen on 127.0.0.1 port 2525', `listen on ${HOST} port ${port}`));

  const homes = tempDir('postern-startusers-');
  const [u] = createUsers(homes, 'pns', 1);
  assert.ok(u);
  t.after(() => removeUsers([u]));
  chmodSync(u.home, 0o700);

  const place = join(tempDir('postern-startdir-'), 'place');
  const proc = spawn(process.execPath, [join(clone, 'scripts', 'start.mjs')], { env: { ...process.env, POSTERN_START_DIR: place }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  t.after(async () => {
    proc.kill('SIGTERM');
    await exited;
  });
  for (let i = 0; i < 300 && !/smtpd ready/.test(out) && proc.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(out, /smtpd ready/, out);
  assert.match(out, new RegExp(`npm start: ${base} does not let _postern \\(the SMTP side's user\\) through, so Postern runs from ${place}`), 'the start says where and why');
  assert.match(out, /SMTP side pid=\d+ runs as _postern/);
  assert.equal(statSync(join(place, 'app')).uid, 0, 'the copy of the code is root’s');

  const swaks = spawnSync('swaks', ['--server', HOST, '--port', String(port), '--to', `${u.name}@localhost`, '--from', 'newcomer@localhost', '--header', 'Subject: first mail'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(swaks.status, 0, swaks.stdout + swaks.stderr);
  const box = join(place, 'mail', u.name);
  for (let i = 0; i < 100 && !(existsSync(box) && /Subject: first mail/.test(readFileSync(box, 'utf8'))); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(existsSync(box) ? readFileSync(box, 'utf8') : '', /Subject: first mail/, out);
  assert.equal(statSync(box).uid, u.uid, 'the mbox belongs to its user');
  // A second start while the first runs does not replace the code under it.
  const second = spawnSync(process.execPath, [join(clone, 'scripts', 'start.mjs')], { env: { ...process.env, POSTERN_START_DIR: place }, encoding: 'utf8', timeout: 30_000 });
  assert.equal(second.status, 1, second.stderr);
  assert.match(second.stderr, /npm start: smtpd is already running from .* \(pid \d+\)/);
  proc.kill('SIGTERM');
  await exited;
  assert.match(out, /privileged parent exiting/);

  // `postern install` from such a clone would write a unit whose SMTP side cannot load the code: refused, saying why.
  const staging = tempDir('postern-startinstall-');
  const inst = spawnSync(process.execPath, [join(clone, 'bin', 'postern.js'), 'install', '--root', staging, '--no-start'], { encoding: 'utf8' });
  assert.equal(inst.status, 1, inst.stdout + inst.stderr);
  assert.match(inst.stderr, new RegExp(`the folder ${base} does not let _postern through`));
  assert.equal(inst.stderr.trim().split('\n').length, 1, 'one line');
});
