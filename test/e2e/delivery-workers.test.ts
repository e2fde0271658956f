/*
 * test/e2e/delivery-workers.test.ts — the long-lived delivery workers
 * (worker-pool.ts, deliver-worker.ts), as root, with real users (useradd):
 * each user's files are written with that user's ids and groups, and a file
 * the user may not write stays unwritten (the job fails; nothing is written
 * as root); a supplementary group opens what it should; |command runs with
 * the user's real and effective uid (setpriv), and so does a plain mda
 * command started without the shell, with the shell's environment; fifty deliveries to five
 * users start no more Node.js processes than the pool's size; a worker
 * killed mid-job, or one whose job outlives its time limit, is a temporary
 * failure and is replaced. Skipped (with a message) when not root.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { WorkerPool } from '../../src/delivery/local/worker-pool.js';
import { SystemUsers } from '../../src/users/system-users.js';
import { IS_ROOT, actionOf, agent, config, message, readMboxWithPython, statuses, task } from '../unit/delivery-helpers.js';
import { requireTool } from '../helpers/tools.js';
import { createUsers, removeUsers, sh, type RealUser } from '../helpers/users.js';
import { nodeChildren } from '../helpers/node-children.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('delivery workers (as root, real users)', { skip: IS_ROOT ? false : 'needs root: run the tests as root (CI does) to create users and groups' }, () => {
  let base = '';
  const users: RealUser[] = [];
  let group = '';
  let gid = 0;

  before(() => {
    for (const tool of ['useradd', 'groupadd', 'usermod']) requireTool(tool);
    base = mkdtempSync(join(tmpdir(), 'postern-workers-'));
    chmodSync(base, 0o755);
    users.push(...createUsers(base, 'pstw', 5));
    group = `pstg${Math.random().toString(36).slice(2, 7)}`;
    sh('groupadd', [group]);
    gid = Number(sh('getent', ['group', group]).split(':')[2]);
    sh('usermod', ['-aG', group, (users[0] as RealUser).name]);
  });

  after(() => {
    removeUsers(users);
    if (group) spawnSync('groupdel', [group]);
    if (base) rmSync(base, { recursive: true, force: true });
  });

  const fileDest = (u: RealUser, path: string) => ({ address: `${u.name}@example.org`, dest: { kind: 'file' as const, path, user: u.name } });

  it('a file the user cannot write stays unwritten: the job fails, nothing is written as root', async () => {
    const [ua, ub] = users as [RealUser, RealUser];
    const c = config(`action "local" mbox\nmatch from any for local action "local"\n`);
    const a = agent({ config: c, users: new SystemUsers() });
    // B's mailbox, 0600, and A's alias pointing at it.
    const victim = join(base, 'b-mailbox');
    writeFileSync(victim, 'B only\n', { mode: 0o600 });
    chownSync(victim, ub.uid, ub.gid);
    const rs = await a.deliver(task({ action: actionOf(c, 'local'), recipients: [fileDest(ua, victim)], message: message({ Subject: 'x' }, 'x\r\n') }));
    assert.deepEqual(statuses(rs), ['tempfail 4.3.0'], rs[0]?.detail);
    assert.match(rs[0]?.detail ?? '', /permission denied/i);
    assert.equal(readFileSync(victim, 'utf8'), 'B only\n');
    // A maildir under a folder only B may enter.
    const closed = join(base, 'b-private');
    mkdirSync(closed, { mode: 0o700 });
    chownSync(closed, ub.uid, ub.gid);
    const c2 = config(`action "md" maildir "${closed}/Maildir"\nmatch from any for local action "md"\n`);
    const a2 = agent({ config: c2, users: new SystemUsers() });
    const r2 = await a2.deliver(task({ action: actionOf(c2, 'md'), recipients: [`${ua.name}@example.org`], message: message({ Subject: 'x' }, 'x\r\n') }));
    assert.deepEqual(statuses(r2), ['tempfail 4.3.0'], r2[0]?.detail);
    assert.equal(existsSync(join(closed, 'Maildir')), false);
    // The same worker then serves B, as B, and back to A, as A (its ids were switched back between the jobs).
    const r3 = await a2.deliver(task({ action: actionOf(c2, 'md'), recipients: [`${ub.name}@example.org`], message: message({ Subject: 'b' }, 'x\r\n') }));
    assert.deepEqual(statuses(r3), ['ok 2.0.0'], r3[0]?.detail);
    assert.equal(statSync(join(closed, 'Maildir', 'new')).uid, ub.uid);
    const r4 = await a2.deliver(task({ action: actionOf(c2, 'md'), recipients: [`${ua.name}@example.org`], message: message({ Subject: 'x' }, 'x\r\n') }));
    assert.deepEqual(statuses(r4), ['tempfail 4.3.0'], r4[0]?.detail);
    assert.equal(readdirSync(join(closed, 'Maildir', 'new')).length, 1);
    a.close();
    a2.close();
  });

  it('supplementary groups apply: a group-writable folder is open to members only', async () => {
    const [ua, ub] = users as [RealUser, RealUser];
    const shared = join(base, 'shared');
    mkdirSync(shared);
    chownSync(shared, 0, gid);
    chmodSync(shared, 0o2770);
    const c = config(`action "local" mbox\nmatch from any for local action "local"\n`);
    const a = agent({ config: c, users: new SystemUsers() });
    const path = join(shared, 'list-archive');
    const ra = await a.deliver(task({ action: actionOf(c, 'local'), recipients: [fileDest(ua, path)], message: message({ Subject: 'member' }, 'x\r\n') }));
    assert.deepEqual(statuses(ra), ['ok 2.0.0'], ra[0]?.detail);
    assert.equal(statSync(path).uid, ua.uid);
    assert.equal(statSync(path).gid, gid, 'setgid folder: the group of the folder');
    const rb = await a.deliver(task({ action: actionOf(c, 'local'), recipients: [fileDest(ub, path)], message: message({ Subject: 'outsider' }, 'x\r\n') }));
    assert.deepEqual(statuses(rb), ['tempfail 4.3.0'], rb[0]?.detail);
    // A again, after B: its groups come from the worker's cache of what initgroups gave (effective-ids.ts), still the member's.
    const ra2 = await a.deliver(task({ action: actionOf(c, 'local'), recipients: [fileDest(ua, path)], message: message({ Subject: 'member' }, 'x\r\n') }));
    assert.deepEqual(statuses(ra2), ['ok 2.0.0'], ra2[0]?.detail);
    const rb2 = await a.deliver(task({ action: actionOf(c, 'local'), recipients: [fileDest(ub, path)], message: message({ Subject: 'outsider' }, 'x\r\n') }));
    assert.deepEqual(statuses(rb2), ['tempfail 4.3.0'], rb2[0]?.detail);
    const msgs = await readMboxWithPython(path);
    assert.deepEqual(msgs.map((m) => m.headers.find(([k]) => k === 'Subject')?.[1]), ['member', 'member']);
    a.close();
  });

  it('|command runs with the real and effective uid and the groups of its user (setpriv)', async () => {
    const c = config(`action "local" mbox\nmatch from any for local action "local"\n`);
    const a = agent({ config: c, users: new SystemUsers() });
    for (const u of users.slice(0, 2)) {
      const rcpt = { address: `${u.name}@example.org`, dest: { kind: 'command' as const, command: '{ id -ru; id -u; id -rg; id -g; id -G; } > "$HOME/ids"; cat > "$HOME/msg"', user: u.name } };
      const rs = await a.deliver(task({ action: actionOf(c, 'local'), recipients: [rcpt], message: message({ Subject: 'ids' }, 'x\r\n') }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0'], rs[0]?.detail);
      const [ruid, euid, rgid, egid, groups] = readFileSync(join(u.home, 'ids'), 'utf8').trim().split('\n');
      assert.deepEqual([ruid, euid, rgid, egid], [String(u.uid), String(u.uid), String(u.gid), String(u.gid)]);
      const want = u === users[0] ? [u.gid, gid] : [u.gid];
      assert.deepEqual(groups?.split(' ').map(Number).sort(), want.sort());
      assert.equal(statSync(join(u.home, 'msg')).uid, u.uid);
    }
    assert.equal(a.pool?.started, 0, 'commands start no delivery worker');
    a.close();
  });

  it('a plain mda command (no shell) runs with the same uid, gid, groups and environment as through the shell', async () => {
    // One script, started directly (a plain command: setpriv execs it) and through /bin/sh -c (a quoted word).
    const rec = join(base, 'ids.sh');
    writeFileSync(rec, '#!/bin/sh\n{ id -ru; id -u; id -rg; id -g; id -G; env | LC_ALL=C sort; echo "$@"; } > "$HOME/ids-$1"; cat > /dev/null\n', { mode: 0o755 });
    const c = config(`action "plain" mda "${rec} plain x"\naction "shell" mda "${rec} 'shell' x"\nmatch from any for local action "plain"\n`);
    const a = agent({ config: c, users: new SystemUsers() });
    for (const u of users.slice(0, 2)) {
      const seen: string[] = [];
      for (const name of ['plain', 'shell']) {
        const rs = await a.deliver(task({ action: actionOf(c, name), recipients: [`${u.name}@example.org`], message: message({ Subject: 'ids' }, 'x\r\n') }));
        assert.deepEqual(statuses(rs), ['ok 2.0.0'], rs[0]?.detail);
        const out = join(u.home, `ids-${name}`);
        assert.equal(statSync(out).uid, u.uid);
        const [ruid, euid, rgid, egid, groups, ...rest] = readFileSync(out, 'utf8').trim().split('\n');
        assert.deepEqual([ruid, euid, rgid, egid], [String(u.uid), String(u.uid), String(u.gid), String(u.gid)]);
        assert.deepEqual(groups?.split(' ').map(Number).sort(), (u === users[0] ? [u.gid, gid] : [u.gid]).sort());
        seen.push(rest.join('\n').replace(name, 'NAME'));
      }
      assert.equal(seen[0], seen[1], 'the same environment and arguments');
      assert.match(seen[0] ?? '', new RegExp(`^PWD=${u.home}$`, 'm'));
    }
    a.close();
  });

  it('without setpriv, commands run through the one-shot helper, and say so once', async () => {
    const lines: string[] = [];
    const c = config(`action "local" mbox\nmatch from any for local action "local"\n`);
    const a = agent({ config: c, users: new SystemUsers(), setpriv: join(base, 'no-setpriv') }, lines);
    const u = users[1] as RealUser;
    for (let i = 0; i < 2; i++) {
      const rcpt = { address: `${u.name}@example.org`, dest: { kind: 'command' as const, command: 'id -ru > "$HOME/ids2"', user: u.name } };
      const rs = await a.deliver(task({ action: actionOf(c, 'local'), recipients: [rcpt], message: message({ Subject: 'ids' }, 'x\r\n') }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0'], rs[0]?.detail);
    }
    assert.equal(readFileSync(join(u.home, 'ids2'), 'utf8').trim(), String(u.uid));
    assert.equal(lines.filter((l) => /no-setpriv not found/.test(l)).length, 1, lines.join('\n'));
    a.close();
  });

  it('fifty deliveries to five users start no more Node.js processes than the pool has workers', async () => {
    const c = config(`action "md" maildir\nmatch from any for local action "md"\n`);
    const lines: string[] = [];
    const a = agent({ config: c, users: new SystemUsers() }, lines);
    const seen = new Set<number>();
    const sampler = setInterval(() => nodeChildren().forEach((p) => seen.add(p)), 5);
    try {
      // Each user's deliveries in order (one mailbox at a time, as the scheduler does), the five users at once.
      const rs = await Promise.all(
        users.map(async (u) => {
          const out: string[] = [];
          for (let i = 0; i < 10; i++) out.push(...statuses(await a.deliver(task({ action: actionOf(c, 'md'), recipients: [`${u.name}@example.org`], message: message({ Subject: `${i}` }, 'x\r\n') }))));
          return out;
        }),
      );
      assert.deepEqual(rs.flat(), Array(50).fill('ok 2.0.0'));
    } finally {
      clearInterval(sampler);
    }
    assert.ok((a.pool?.started ?? 0) <= 2, `started ${a.pool?.started} workers`);
    assert.ok(seen.size >= 1 && seen.size <= 2, `node children seen: ${[...seen].join(' ')}`);
    assert.equal(lines.filter((l) => l.includes('delivery worker started')).length, a.pool?.started);
    for (const u of users) {
      const files = readdirSync(join(u.home, 'Maildir', 'new'));
      assert.equal(files.length, 10, u.name);
      for (const f of files) assert.equal(statSync(join(u.home, 'Maildir', 'new', f)).uid, u.uid);
    }
    a.close();
  });

  it('a worker killed with SIGKILL mid-job: a temporary failure, retried, the pool whole again', async () => {
    const ua = users[2] as RealUser;
    const mail = join(base, 'spool-kill');
    mkdirSync(mail);
    chmodSync(mail, 0o1777);
    const c = config(`mbox path "${mail}"\naction "local" mbox\nmatch from any for local action "local"\n`);
    const a = agent({ config: c, users: new SystemUsers(), lockTimeoutMs: 60_000, workers: 1 });
    const mbox = join(mail, ua.name);
    writeFileSync(`${mbox}.lock`, `${process.pid}\n`); // held by a live process: the job waits
    const pending = a.deliver(task({ action: actionOf(c, 'local'), recipients: [`${ua.name}@example.org`], message: message({ Subject: 'kill' }, 'x\r\n') }));
    await sleep(500);
    const [pid] = a.pool?.pids ?? [];
    assert.ok(pid !== undefined, 'a worker runs the job');
    process.kill(pid, 'SIGKILL');
    const rs = await pending;
    assert.deepEqual(statuses(rs), ['tempfail 4.3.0']);
    assert.match(rs[0]?.detail ?? '', /delivery worker died \(SIGKILL\)/);
    rmSync(`${mbox}.lock`);
    const again = await a.deliver(task({ action: actionOf(c, 'local'), recipients: [`${ua.name}@example.org`], message: message({ Subject: 'kill' }, 'x\r\n') }));
    assert.deepEqual(statuses(again), ['ok 2.0.0'], again[0]?.detail);
    assert.equal((await readMboxWithPython(mbox)).length, 1);
    assert.equal(a.pool?.pids.length, 1);
    assert.notEqual(a.pool?.pids[0], pid);
    a.close();
  });

  it('a job past its time limit: the worker is killed and replaced', async () => {
    const ua = users[3] as RealUser;
    const hang = join(base, 'spool-hang');
    mkdirSync(hang);
    chmodSync(hang, 0o1777);
    const mbox = join(hang, ua.name);
    writeFileSync(`${mbox}.lock`, `${process.pid}\n`);
    const pool = new WorkerPool({ size: 1 });
    const creds = { user: ua.name, uid: ua.uid, gid: ua.gid, home: ua.home, initgroups: true, mode: 'user' as const };
    const job = (lockTimeoutMs: number) => ({ kind: 'mbox' as const, path: mbox, fromLine: 'From x Thu Jan  1 00:00:00 1970', prefix: '', lock: 'optional' as const, lockTimeoutMs });
    const t0 = Date.now();
    const o = await pool.run(creds, job(60_000), Readable.from([Buffer.from('Subject: x\r\n\r\nx\r\n')]), { timeoutMs: 1000 });
    assert.equal(o.status, 'tempfail');
    assert.match(o.detail, /timed out after 1 s/);
    assert.ok(Date.now() - t0 < 10_000);
    const first = pool.started;
    rmSync(`${mbox}.lock`);
    const o2 = await pool.run(creds, job(1000), Readable.from([Buffer.from('Subject: x\r\n\r\nx\r\n')]), { timeoutMs: 10_000 });
    assert.equal(o2.status, 'ok', o2.detail);
    assert.equal(pool.started, first + 1);
    assert.equal(pool.pids.length, 1);
    assert.equal(statSync(mbox).uid, ua.uid);
    pool.close();
  });
});
