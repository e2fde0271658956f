/*
 * test/e2e/deliver-crash.test.ts — `kill -9` of the daemon while it
 * delivers (chasquid's t-03, for local delivery): twenty messages, each to
 * a slow mda (1 s a message) and to an mbox, the daemon killed while mda
 * runs are in flight, then restarted on the same spool. Every message must
 * reach both destinations at least once and at most twice (a delivery
 * whose outcome was not yet recorded is repeated; none is lost), and the
 * queue must end empty.
 *
 * The mbox half runs as root only, where every mbox write happens in the
 * deliver-as helper, which outlives the daemon and fails a message cut
 * short by its death (helper-frame.ts). Unprivileged, the daemon appends
 * to the mbox itself: killed half-way through, it can neither truncate the
 * partial message nor remove its dot-lock, which then holds the mailbox
 * for 5 minutes (dotlock.ts STALE_MS).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { frameDecoder, frameEncoder } from '../../src/delivery/local/helper-frame.js';
import { HELPER_PATH } from '../../src/delivery/local/privsep.js';
import { spoolMessages } from '../helpers/inproc.js';
import { HEAD, IS_ROOT, fileLines, listDir, message, queued, readMbox, sendOk, smtpctl, startSite, testDir, usersTable, waitFor, writeFiles } from './deliver-helpers.js';

const N = 20;
const USERS = ['u1', 'u2', 'u3', 'u4'];

/** Logs "start SUBJECT" when it begins and "SUBJECT" once the message is safely written. */
const SLOW_SH = `#!/bin/sh
msg=$(cat)
subject=$(printf '%s\\n' "$msg" | sed -n 's/^Subject: //p' | head -n 1)
echo "start $subject" >> "$DIR/started"
sleep 1
printf '%s\\n' "$msg" > "$DIR/store/$subject.$$"
echo "$subject" >> "$DIR/delivered"
`;

const CONFIG = `${HEAD}
table users file:$DIR/users
action "slow" mda "$DIR/bin/slow.sh" userbase <users>
action "box" mbox userbase <users>
match from any for domain "slow.example" action "slow"
match from any for domain "box.example" action "box"
`;

describe('kill -9 during deliveries', () => {
  it('after a restart every message is delivered, at most twice, and the queue is empty', async (t) => {
    const dir = testDir(t);
    writeFiles(dir, { users: usersTable(dir, USERS), 'bin/slow.sh': [SLOW_SH, 0o755], 'store/.keep': '' });
    const d1 = await startSite(dir, CONFIG);
    const subjects = Array.from({ length: N }, (_, i) => `crash-${String(i).padStart(2, '0')}`);
    for (const [i, s] of subjects.entries()) {
      const u = USERS[i % USERS.length] as string;
      await sendOk(d1.port, { from: 'sender@remote.example', to: [`${u}@slow.example`, ...(IS_ROOT ? [`${u}@box.example`] : [])], data: message({ Subject: s }, `body of ${s}\n`) });
    }
    // Kill while mda runs are in flight: some started, not all finished.
    await waitFor('deliveries in flight', () => {
      const started = fileLines(join(dir, 'started')).length;
      const done = fileLines(join(dir, 'delivered')).length;
      return started > done && done >= 2 ? true : undefined;
    }, { daemon: d1 });
    await d1.kill();
    const doneAtKill = fileLines(join(dir, 'delivered')).length;
    assert.ok(doneAtKill < N, `killed too late: ${doneAtKill} of ${N} already delivered`);

    const d2 = await startSite(dir, CONFIG);
    await d2.waitForLog(/^scheduler: \d+ envelope\(s\) in \d+ message\(s\) loaded from the queue/);
    // Envelopes deferred before the crash (a busy mailbox) keep their next try, a minute away: try them now.
    await smtpctl(dir, 'schedule', 'all');
    await waitFor('every message through the slow mda', () => {
      const got = new Set(fileLines(join(dir, 'delivered')));
      return subjects.every((s) => got.has(s)) ? true : undefined;
    }, { daemon: d2, timeoutMs: 30_000 });
    // The queue empties: every recipient recorded as delivered, the spool files removed.
    await waitFor('the queue to empty', async () => ((await queued(dir)).length === 0 ? true : undefined), { daemon: d2, timeoutMs: 30_000 });
    await d2.stop();
    assert.deepEqual(await spoolMessages(join(dir, 'spool')), [], 'nothing left in the spool');

    const counts = new Map<string, number>();
    for (const s of fileLines(join(dir, 'delivered'))) counts.set(s, (counts.get(s) ?? 0) + 1);
    for (const s of subjects) {
      const n = counts.get(s) ?? 0;
      assert.ok(n >= 1 && n <= 2, `${s} through the mda ${n} times`);
    }
    assert.deepEqual([...counts.keys()].sort(), subjects);
    if (!IS_ROOT) {
      t.diagnostic('not root: the mbox half of this test is skipped (see the file header)');
      return;
    }
    const boxed = new Map<string, number>();
    for (const u of USERS) {
      for (const m of await readMbox(join(dir, 'mail', u))) {
        const s = m.header('Subject') ?? '';
        assert.equal(m.text, `body of ${s}\n`);
        boxed.set(s, (boxed.get(s) ?? 0) + 1);
      }
    }
    for (const s of subjects) {
      const n = boxed.get(s) ?? 0;
      assert.ok(n >= 1 && n <= 2, `${s} in the mbox ${n} times`);
    }
    assert.deepEqual([...boxed.keys()].sort(), subjects);
  });
});

/* The protection the mbox half relies on, tested on its own. */

async function collect(chunks: readonly Buffer[]): Promise<{ out: Buffer; error?: string }> {
  const dec = frameDecoder();
  const parts: Buffer[] = [];
  dec.on('data', (b: Buffer) => parts.push(b));
  const done = new Promise<string | undefined>((resolve) => {
    dec.once('error', (e) => resolve(e.message));
    dec.once('end', () => resolve(undefined));
  });
  for (const c of chunks) dec.write(c);
  dec.end();
  const error = await done;
  return { out: Buffer.concat(parts), ...(error !== undefined ? { error } : {}) };
}

async function encode(message: Buffer, chunk: number): Promise<Buffer> {
  const enc = frameEncoder();
  const parts: Buffer[] = [];
  enc.on('data', (b: Buffer) => parts.push(b));
  for (let i = 0; i < message.length; i += chunk) enc.write(message.subarray(i, i + chunk));
  enc.end();
  await new Promise((r) => enc.once('end', r));
  return Buffer.concat(parts);
}

/** Run the deliver-as helper on this input, closing its standard input `endAfterMs` later; its outcome. */
async function helper(input: Buffer, endAfterMs: number): Promise<{ status: string; detail: string }> {
  const p = spawn(process.execPath, [HELPER_PATH], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  p.stdin.on('error', () => undefined);
  p.stdin.write(input);
  const timer = setTimeout(() => p.stdin.end(), endAfterMs);
  const code = await new Promise<number | null>((resolve) => p.once('close', resolve));
  clearTimeout(timer);
  assert.equal(code, 0, err);
  return JSON.parse(out) as { status: string; detail: string };
}

describe("the deliver-as helper's message frame", () => {
  it('gives the message back at every split point, and fails when it is cut anywhere', async () => {
    const message = Buffer.from('Subject: framed\r\n\r\n0\n1a\nnot a length\r\n'.repeat(3));
    const framed = await encode(message, 7);
    for (let cut = 0; cut <= framed.length; cut++) {
      const r = await collect([framed.subarray(0, cut), framed.subarray(cut)]);
      assert.equal(r.error, undefined, `split at ${cut}`);
      assert.ok(r.out.equals(message), `split at ${cut}`);
      if (cut < framed.length) {
        const short = await collect([framed.subarray(0, cut)]);
        assert.match(short.error ?? '', /cut short|bad chunk length/, `cut at ${cut}`);
      }
    }
    assert.match((await collect([Buffer.from('zz\nab')])).error ?? '', /bad chunk length/);
    assert.match((await collect([Buffer.concat([framed, Buffer.from('1\nx')])])).error ?? '', /after the end/);
  });

  it('as root, a message cut short by the daemon\'s death is not delivered (mbox, maildir, mda)', { skip: IS_ROOT ? false : 'needs root: the helper changes user' }, async (t) => {
    const dir = testDir(t);
    const mbox = join(dir, 'mbox');
    writeFiles(dir, { mbox: 'From old@example.org Mon Jan  1 00:00:00 2024\nSubject: old\n\nkept\n\n' });
    const creds = { user: 'root', uid: 0, gid: 0, home: dir, initgroups: false, mode: 'user' };
    const prefix = 'Delivered-To: bob@example.org\n';
    const jobs = {
      mbox: { kind: 'mbox', path: mbox, fromLine: 'From alice@example.net Mon Jan  1 00:00:00 2024', prefix, lock: 'required' },
      maildir: { kind: 'maildir', dir: join(dir, 'Maildir'), junk: false, spam: false, prefix },
      mda: { kind: 'mda', label: 'mda', command: `cat > ${dir}/mda.out && touch ${dir}/mda.completed`, env: { PATH: '/usr/bin:/bin' }, cwd: dir, timeoutMs: 10_000, prefix },
    };
    const framed = await encode(Buffer.from(`Subject: cut\r\n\r\n${'line\r\n'.repeat(5000)}`), 4096);
    for (const [name, job] of Object.entries(jobs)) {
      for (const whole of [false, true]) {
        const before = { mbox: readFileSync(mbox, 'latin1'), new: listDir(join(dir, 'Maildir', 'new')), mda: existsSync(join(dir, 'mda.completed')) };
        const input = Buffer.concat([Buffer.from(`${JSON.stringify({ v: 1, creds, job })}\n`), whole ? framed : framed.subarray(0, 10_000)]);
        // The end comes a moment later, as when the daemon dies: the job (the mda) is under way by then.
        const o = await helper(input, 500);
        if (!whole) {
          assert.equal(o.status, 'tempfail', `${name}: ${o.detail}`);
          if (name !== 'mda') assert.match(o.detail, /cut short/, name);
          assert.equal(readFileSync(mbox, 'latin1'), before.mbox, `${name}: the mbox is untouched`);
          assert.deepEqual(listDir(join(dir, 'Maildir', 'new')), before.new, `${name}: nothing new in new/`);
          assert.deepEqual(listDir(join(dir, 'Maildir', 'tmp')), [], `${name}: nothing left in tmp/`);
          assert.equal(existsSync(join(dir, 'mda.completed')), before.mda, `${name}: the mda was killed before it saw the end of its input`);
          assert.equal(existsSync(`${mbox}.lock`), false);
        } else {
          assert.equal(o.status, 'ok', `${name}: ${o.detail}`);
        }
      }
    }
    assert.equal((await readMbox(mbox)).length, 2);
    assert.equal(listDir(join(dir, 'Maildir', 'new')).length, 1);
    assert.ok(existsSync(join(dir, 'mda.completed')));
  });
});
