/*
 * test/e2e/delivery-batches.test.ts — maildir jobs batched in the delivery
 * workers (worker-pool.ts takeBatch, deliver-worker.ts), as root, with real
 * users (useradd): one batch mixing two users writes each user's files with
 * that user's ids, a folder one of them may not enter stays unwritten (that
 * job alone fails) while the other jobs of the batch succeed; and a worker
 * killed with SIGKILL in the middle of a batch answers nothing, so every
 * job of the batch is a temporary failure — files already written are at
 * worst delivered twice, never reported delivered before their folder was
 * fsynced; a message given whole and one too large to be held whole by
 * the worker (streamed) both land intact. Skipped (with a message) when not root.
 */
import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { before, describe, it } from 'node:test';
import type { Credentials } from '../../src/delivery/local/job.js';
import { WorkerPool } from '../../src/delivery/local/worker-pool.js';
import { WHOLE_MAX } from '../../src/delivery/local/worker-body.js';
import { IS_ROOT } from '../unit/delivery-helpers.js';
import { usersForSuite, type RealUser } from '../helpers/users.js';

const creds = (u: RealUser): Credentials => ({ user: u.name, uid: u.uid, gid: u.gid, home: u.home, initgroups: true, mode: 'user' });
const maildir = (dir: string) => ({ kind: 'maildir' as const, dir, junk: false, spam: false, prefix: '' });
const body = (subject: string): Readable => Readable.from([Buffer.from(`Subject: ${subject}\r\n\r\nx\r\n`)]);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('batched maildir deliveries (as root, real users)', { skip: IS_ROOT ? false : 'needs root: run the tests as root (CI does) to create users' }, () => {
  const suite = usersForSuite('pstb');
  const users = suite.users;

  it('one batch, two users: each file as its user; a folder closed to one stays unwritten, the rest is delivered', async () => {
    const [ua, ub] = users as [RealUser, RealUser];
    const closed = join(suite.base, 'b-private');
    mkdirSync(closed, { mode: 0o700 });
    chownSync(closed, ub.uid, ub.gid);
    // One worker: while it starts, every job below waits in the queue, and they leave as one batch.
    const pool = new WorkerPool({ size: 1 });
    const jobs: Promise<{ who: string; status: string }>[] = [];
    for (let i = 0; i < 6; i++) {
      for (const u of [ua, ub]) jobs.push(pool.run(creds(u), maildir(join(u.home, 'Maildir')), body(`${u.name} ${i}`), { timeoutMs: 30_000 }).then((o) => ({ who: u.name, status: o.status })));
      // A into B's private folder, in the middle of the batch.
      if (i === 2) jobs.push(pool.run(creds(ua), maildir(join(closed, 'Maildir')), body('intruder'), { timeoutMs: 30_000 }).then((o) => ({ who: 'intruder', status: o.status })));
    }
    const rs = await Promise.all(jobs);
    assert.ok(pool.largestBatch > 1, `batched (largest batch ${pool.largestBatch})`);
    assert.deepEqual(rs.filter((r) => r.who === 'intruder').map((r) => r.status), ['tempfail']);
    assert.deepEqual(rs.filter((r) => r.who !== 'intruder').map((r) => r.status), Array(12).fill('ok'));
    assert.equal(existsSync(join(closed, 'Maildir')), false, 'nothing written in the closed folder');
    for (const u of [ua, ub]) {
      const files = readdirSync(join(u.home, 'Maildir', 'new'));
      assert.equal(files.length, 6, u.name);
      for (const f of files) assert.equal(statSync(join(u.home, 'Maildir', 'new', f)).uid, u.uid, `${u.name}/${f}`);
      assert.equal(readdirSync(join(u.home, 'Maildir', 'tmp')).length, 0);
    }
    pool.close();
  });

  it('a message given whole (a Buffer) and one larger than a worker holds whole (streamed) land intact', async () => {
    const [ua] = users as [RealUser];
    const dir = join(ua.home, 'Sizes');
    const pool = new WorkerPool({ size: 1 });
    const big = Buffer.alloc(3 * Math.ceil((WHOLE_MAX + 300_000) / 3), 'y\r\n');
    const rs = await Promise.all([
      pool.run(creds(ua), maildir(dir), Buffer.from('Subject: whole\r\n\r\nx\r\n'), { timeoutMs: 30_000 }),
      pool.run(creds(ua), maildir(dir), Readable.from([Buffer.from('Subject: big\r\n\r\n'), big.subarray(0, 500_000), big.subarray(500_000)]), { timeoutMs: 30_000 }),
    ]);
    assert.deepEqual(rs.map((o) => o.status), ['ok', 'ok'], rs.map((o) => o.detail).join('; '));
    const sizes = readdirSync(join(dir, 'new')).map((f) => statSync(join(dir, 'new', f)).size).sort((a, b) => a - b);
    // LF line ends: "y\r\n" becomes "y\n" (two bytes in three).
    assert.deepEqual(sizes, ['Subject: whole\n\nx\n'.length, 'Subject: big\n\n'.length + (big.length / 3) * 2]);
    pool.close();
  });

  it('kill -9 of the worker mid-batch: no job is reported delivered, the pool is whole again', async () => {
    const [ua, ub] = users as [RealUser, RealUser];
    const dirs = [join(ua.home, 'Kill'), join(ub.home, 'Kill')];
    const pool = new WorkerPool({ size: 1 });
    // The first job is answered alone; the three others are asked in one turn and go as one batch, ordered
    // by user: four (A), two (B), then the stuck one (B), whose message never ends — the worker has performed
    // four and two, and holds their answers until the end of the batch.
    const stuck = new PassThrough();
    stuck.write('Subject: stuck\r\n\r\n');
    const first = await pool.run(creds(ua), maildir(dirs[0] as string), body('one'), { timeoutMs: 30_000 });
    const all = [
      Promise.resolve(first),
      pool.run(creds(ub), maildir(dirs[1] as string), body('two'), { timeoutMs: 30_000 }),
      pool.run(creds(ub), maildir(dirs[1] as string), stuck, { timeoutMs: 30_000 }),
      pool.run(creds(ua), maildir(dirs[0] as string), body('four'), { timeoutMs: 30_000 }),
    ];
    // Wait until three files are in new/ (one answered; four and two written, their answers held), then kill.
    const inNew = (): number => dirs.reduce((n, d) => n + (existsSync(join(d, 'new')) ? readdirSync(join(d, 'new')).length : 0), 0);
    for (let t = 0; inNew() < 3 && t < 200; t++) await sleep(50);
    assert.equal(inNew(), 3, 'three jobs were performed');
    const [pid] = pool.pids;
    assert.ok(pid !== undefined);
    process.kill(pid, 'SIGKILL');
    const rs = await Promise.all(all);
    assert.deepEqual(rs.map((o) => o.status), ['ok', 'tempfail', 'tempfail', 'tempfail'], rs.map((o) => o.detail).join('; '));
    for (const o of rs.slice(1)) assert.match(o.detail, /delivery worker died \(SIGKILL\)/);
    assert.equal(pool.largestBatch, 3);
    // Tried again (as the scheduler would): delivered; the files of the first try make at most a duplicate.
    const again = await Promise.all([pool.run(creds(ua), maildir(dirs[0] as string), body('one'), { timeoutMs: 30_000 }), pool.run(creds(ub), maildir(dirs[1] as string), body('two'), { timeoutMs: 30_000 })]);
    assert.deepEqual(again.map((o) => o.status), ['ok', 'ok'], again.map((o) => o.detail).join('; '));
    assert.notEqual(pool.pids[0], pid);
    pool.close();
  });
});
