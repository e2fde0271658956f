/*
 * test/e2e/privsep.test.ts — privilege separation of a root-started smtpd
 * (docs/architecture.md, "Privilege separation"), with real processes and
 * real users, as root (skipped otherwise):
 *
 *   - the privileged parent runs as root, the SMTP side as _postern (real,
 *     effective, saved and file-system ids, read in /proc/PID/status), with no
 *     other group; the spool is _postern's and closed to others;
 *   - the SMTP side cannot open a root-only file: the uid alone cannot, and
 *     end to end, `smtpctl update table` of a table file made 0600 root fails
 *     with EACCES where the same file was read at start (as root, before the drop);
 *   - mail for two real users lands in their maildir / mbox with their
 *     ownership (written by the parent's delivery workers as each user);
 *   - a delivery request naming a command that no alias gives is refused by
 *     the parent (the SMTP side does not choose what runs);
 *   - kill -9 of the parent, and of the SMTP side, while deliveries are in
 *     flight (a slow mda, mbox, and maildir batches): the other exits, and a
 *     restart delivers every message (at most twice, none lost).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PRIVSEP_USER, type DaemonHandle } from '../helpers/daemon.js';
import { createUsers, removeUsers } from '../helpers/users.js';
import { HEAD, IS_ROOT, fileLines, message, queued, readMbox, sendOk, smtpctl, startSite, testDir, usersTable, waitFor, writeFiles } from './deliver-helpers.js';
import { run } from '../helpers/tools.js';
import { REPO } from '../helpers/daemon.js';

const skip = IS_ROOT ? false : 'privilege separation needs root';

/** Real, effective, saved and file-system ids, and the supplementary groups, of a process. */
function ids(pid: number): { uid: number[]; gid: number[]; groups: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = (k: string): number[] =>
    (new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '')
      .trim()
      .split(/\s+/)
      .filter((x) => x !== '')
      .map(Number);
  return { uid: line('Uid'), gid: line('Gid'), groups: line('Groups') };
}

function userIds(name: string): { uid: number; gid: number } {
  const uid = Number(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', name], { encoding: 'utf8' }).stdout.trim());
  return { uid, gid };
}

/** The SMTP side's pid, from the parent's first line. */
async function childPid(d: DaemonHandle): Promise<number> {
  const line = await d.waitForLog(/SMTP side pid=\d+ runs as/);
  return Number(/SMTP side pid=(\d+)/.exec(line)?.[1]);
}

describe('privilege separation (as root)', { skip }, () => {
  it('parent as root, SMTP side as _postern; root-only files stay shut; mail lands as each user', async (t) => {
    const dir = testDir(t, 'postern-privsep-');
    const users = createUsers(dir, 'psu', 2);
    t.after(() => removeUsers(users));
    const [a, b] = users as [(typeof users)[number], (typeof users)[number]];
    writeFiles(dir, { 'secret-table': 'key value\n', aliases: `listbox: |/bin/cat > ${dir}/never-written\n` });
    const config = `${HEAD}
table secret file:$DIR/secret-table
table aliases file:$DIR/aliases
action "md" maildir "~/Maildir"
action "mb" mbox alias <aliases>
match from any for domain "md.example" action "md"
match from any for domain "mb.example" action "mb"
`;
    const d = await startSite(dir, config);
    const child = await childPid(d);
    const parent = d.proc.pid as number;
    const p = userIds(PRIVSEP_USER);

    // The processes and their ids.
    assert.deepEqual(ids(parent).uid, [0, 0, 0, 0], 'the parent is root');
    const c = ids(child);
    assert.deepEqual(c.uid, [p.uid, p.uid, p.uid, p.uid], `the SMTP side runs as ${PRIVSEP_USER}`);
    assert.deepEqual(c.gid, [p.gid, p.gid, p.gid, p.gid]);
    assert.deepEqual(c.groups, [p.gid], 'no supplementary group but its own');
    // Every thread too (libuv's pool, the spool's I/O thread, the hash pool): the kernel keeps ids per thread.
    for (const task of readdirSync(`/proc/${child}/task`)) {
      const status = readFileSync(`/proc/${child}/task/${task}/status`, 'utf8');
      assert.match(status, new RegExp(`^Uid:\\s+${p.uid}\\s+${p.uid}\\s+${p.uid}\\s+${p.uid}$`, 'm'), `thread ${task}`);
    }
    const ppid = Number(/^PPid:\s*(\d+)/m.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1]);
    assert.equal(ppid, parent, 'the SMTP side is the parent’s child');

    // The spool is _postern's; its folders are closed to others.
    const spool = statSync(join(dir, 'spool'));
    assert.equal(spool.uid, p.uid);
    assert.equal(spool.mode & 0o777, 0o711);
    for (const n of readdirSync(join(dir, 'spool'))) {
      const st = statSync(join(dir, 'spool', n));
      if (n === 'smtpd.pid' || n === 'smtpd.sock') continue; // the parent's (root's): pid file and control socket
      if (n === 'offline') assert.equal(st.mode & 0o7777, 0o1733, 'offline/ takes files from anyone, lists to nobody');
      else if (st.isDirectory()) assert.equal(st.mode & 0o077, 0, `spool/${n} is closed to others`);
      assert.equal(st.uid, p.uid, `spool/${n} belongs to ${PRIVSEP_USER}`);
    }

    // A root-only file: the SMTP side's uid cannot open it ...
    chmodSync(join(dir, 'secret-table'), 0o600);
    const cat = spawnSync('setpriv', [`--reuid=${p.uid}`, `--regid=${p.gid}`, '--clear-groups', 'cat', join(dir, 'secret-table')], { encoding: 'utf8' });
    assert.notEqual(cat.status, 0);
    assert.match(cat.stderr, /Permission denied/);
    // ... and end to end: the table it read as root at start cannot be read again now.
    const upd = await run(process.execPath, [join(REPO, 'bin', 'postern.js'), 'smtpctl', '-f', join(dir, 'smtpd.conf'), 'update', 'table', 'secret'], { timeoutMs: 15_000 });
    assert.notEqual(upd.status, 0, 'a root-only table cannot be re-read by the SMTP side');
    assert.match(upd.stdout + upd.stderr, /EACCES|permission denied/i);

    // Mail for two real users lands as each of them.
    await sendOk(d.port, { from: 'x@remote.example', to: [`${a.name}@md.example`, `${b.name}@mb.example`], data: message({ Subject: 'privsep' }, 'hello\n') });
    const newDir = join(a.home, 'Maildir', 'new');
    const files = await waitFor('the maildir delivery', () => {
      try {
        const f = readdirSync(newDir);
        return f.length > 0 ? f : undefined;
      } catch {
        return undefined;
      }
    }, { daemon: d });
    const st = statSync(join(newDir, files[0] as string));
    assert.equal(st.uid, a.uid, 'the maildir file belongs to its user');
    assert.match(readFileSync(join(newDir, files[0] as string), 'utf8'), /Subject: privsep/);
    const box = join(dir, 'mail', b.name);
    await waitFor('the mbox delivery', () => (fileLines(box).some((l) => l === 'Subject: privsep') ? true : undefined), { daemon: d });
    assert.equal(statSync(box).uid, b.uid, 'the mbox belongs to its user');
    assert.equal(statSync(box).mode & 0o077, 0, 'the mbox is closed to others');

    // What the queue holds is readable by root and _postern only.
    const q = await queued(dir);
    assert.equal(q.length, 0);
    await d.stop();
  });

  it('the parent refuses a command no alias gives (the SMTP side does not choose what runs)', async (t) => {
    const dir = testDir(t, 'postern-privsep-');
    // An alias command, then the aliases file changed on disk behind the SMTP side's back: the queued
    // recipient still names the old command, which the parent's own expansion no longer gives.
    writeFiles(dir, { aliases: `list: |/bin/sh -c "cat > ${dir}/list-out"\n` });
    const config = `${HEAD}
table aliases file:$DIR/aliases
action "mb" mbox alias <aliases>
match from any for domain "mb.example" action "mb"
`;
    const d = await startSite(dir, config, ['-P', 'mda']);
    await sendOk(d.port, { from: 'x@remote.example', to: ['list@mb.example'], data: message({ Subject: 'list' }, 'hello\n') });
    writeFileSync(join(dir, 'aliases'), `list: |/bin/sh -c "cat > ${dir}/other-out"\n`);
    // A reload (SIGHUP to the parent, passed on) makes the parent read it again; the queued recipient keeps its command.
    process.kill(d.proc.pid as number, 'SIGHUP');
    await d.waitForLog(/configuration reloaded/);
    await smtpctl(dir, 'resume', 'mda');
    await d.waitForLog(/privsep: delivery of \S+ refused: command destination is not what list@mb\.example expands to/, 20_000);
    assert.deepEqual(fileLines(join(dir, 'list-out')), [], 'the command was not run');
    await d.stop();
  });

  for (const victim of ['parent', 'child'] as const) {
    it(`kill -9 of the ${victim} during deliveries: the other exits, a restart loses nothing`, async (t) => {
      const dir = testDir(t, 'postern-privsep-crash-');
      // Three waves of six (two tasks per user at once, three users): the mda commands in flight at the kill,
      // orphaned, still finish within a second, so the kill must land before the last wave.
      const N = 18;
      const USERS = ['v1', 'v2', 'v3'];
      const SLOW = `#!/bin/sh
msg=$(cat)
subject=$(printf '%s\\n' "$msg" | sed -n 's/^Subject: //p' | head -n 1)
echo "start $subject" >> "${dir}/started"
sleep 1
echo "$subject" >> "${dir}/delivered"
`;
      writeFiles(dir, { users: usersTable(dir, USERS), 'bin/slow.sh': [SLOW, 0o755] });
      const config = `${HEAD}
table users file:$DIR/users
action "slow" mda "$DIR/bin/slow.sh" userbase <users>
action "box" mbox userbase <users>
action "md" maildir userbase <users>
match from any for domain "slow.example" action "slow"
match from any for domain "box.example" action "box"
match from any for domain "md.example" action "md"
`;
      // Deliveries paused while the messages go in, so that the kill lands in the middle of them.
      const d1 = await startSite(dir, config, ['-P', 'mda']);
      const child = await childPid(d1);
      const subjects = Array.from({ length: N }, (_, i) => `crash-${String(i).padStart(2, '0')}`);
      for (const [i, s] of subjects.entries()) {
        const u = USERS[i % USERS.length] as string;
        await sendOk(d1.port, { from: 'sender@remote.example', to: [`${u}@slow.example`, `${u}@box.example`, `${u}@md.example`], data: message({ Subject: s }, `body of ${s}\n`) });
      }
      await smtpctl(dir, 'resume', 'mda');
      await waitFor('deliveries in flight', () => {
        const started = fileLines(join(dir, 'started')).length;
        const done = fileLines(join(dir, 'delivered')).length;
        return started > done && done >= 1 ? true : undefined;
      }, { daemon: d1, timeoutMs: 30_000 });
      if (victim === 'parent') {
        process.kill(d1.proc.pid as number, 'SIGKILL');
        // The SMTP side notices the channel close and exits on its own.
        await waitFor('the SMTP side to exit', () => (alive(child) ? undefined : true), { timeoutMs: 10_000 });
      } else {
        process.kill(child, 'SIGKILL');
        await d1.waitForLog(/privileged parent exiting/);
        assert.equal(await d1.stop(), 1, 'the parent exits with status 1 when the SMTP side was killed');
      }
      assert.ok(fileLines(join(dir, 'delivered')).length < N, 'killed too late');

      const d2 = await startSite(dir, config);
      await d2.waitForLog(/^scheduler: \d+ envelope\(s\) in \d+ message\(s\) loaded from the queue/);
      await smtpctl(dir, 'schedule', 'all');
      await waitFor('every message through the slow mda', () => {
        const got = new Set(fileLines(join(dir, 'delivered')));
        return subjects.every((s) => got.has(s)) ? true : undefined;
      }, { daemon: d2, timeoutMs: 60_000 });
      await waitFor('the queue to empty', async () => ((await queued(dir)).length === 0 ? true : undefined), { daemon: d2, timeoutMs: 30_000 });
      await d2.stop();
      const counts = new Map<string, number>();
      for (const s of fileLines(join(dir, 'delivered'))) counts.set(s, (counts.get(s) ?? 0) + 1);
      for (const s of subjects) assert.ok((counts.get(s) ?? 0) >= 1 && (counts.get(s) ?? 0) <= 2, `${s} through the mda ${counts.get(s) ?? 0} times`);
      const boxed = new Map<string, number>();
      for (const u of USERS) for (const m of await readMbox(join(dir, 'mail', u))) boxed.set(m.header('Subject') ?? '', (boxed.get(m.header('Subject') ?? '') ?? 0) + 1);
      for (const s of subjects) assert.ok((boxed.get(s) ?? 0) >= 1 && (boxed.get(s) ?? 0) <= 2, `${s} in the mbox ${boxed.get(s) ?? 0} times`);
      // Maildir deliveries go to the workers in batches (one fsync of new/ per batch): none lost either.
      const filed = new Map<string, number>();
      for (const u of USERS) {
        const nd = join(dir, 'home', u, 'Maildir', 'new');
        for (const f of readdirSync(nd)) {
          const subject = /^Subject: (.*)$/m.exec(readFileSync(join(nd, f), 'utf8'))?.[1] ?? '';
          filed.set(subject, (filed.get(subject) ?? 0) + 1);
        }
      }
      for (const s of subjects) assert.ok((filed.get(s) ?? 0) >= 1 && (filed.get(s) ?? 0) <= 2, `${s} in the maildir ${filed.get(s) ?? 0} times`);
    });
  }
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
