/*
 * test/unit/spool-crash.test.ts — kill -9 a process in the middle of commits.
 *
 * A child (test/helpers/spool-crash-writer.ts) commits messages in a loop
 * and prints each msgid once commit() resolved. We SIGKILL it at random
 * moments, several rounds over the same spool, and after each round reopen
 * the spool and check that every printed message loads with its exact body
 * and outcomes, that every listed message is whole, and that nothing was
 * found corrupt (a killed process must never leave a half-visible message).
 *
 * What this cannot prove: durability across power loss or a kernel crash.
 * A killed process's writes are already in the page cache, so they survive
 * with or without fsync. The fdatasync/fsync calls in the spool are what
 * make committed messages survive power loss; this test shows the ordering
 * and atomicity (temp file, rename, trailer last), not the flushing. Every
 * other round imitates what a power loss could take on top: each message
 * file the journal still covers (written after the last checkpoint, so
 * perhaps only in the page cache) is deleted before the spool reopens, and
 * the journal must bring every acknowledged one back.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { FsSpool } from '../../src/spool/fs/fs-spool.js';
import { parseSegment } from '../../src/spool/fs/journal-format.js';
import { crashBody, readAll, tmpSpoolRoot } from '../helpers/spool-fixtures.js';

const CHILD = fileURLToPath(new URL('../helpers/spool-crash-writer.js', import.meta.url));

interface Printed {
  readonly size: number;
  readonly seed: string;
}

/** Run the child until `killAfterMs` after it is ready, SIGKILL it, return its complete output lines. */
function runAndKill(root: string, killAfterMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, root, '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      if (timer === undefined && out.startsWith('ready\n')) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.stderr.on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') {
        reject(new Error(`child exited (${code ?? signal}) before it was killed: ${err}`));
        return;
      }
      // A line without its LF was cut by the kill: it does not count.
      const lines = out.split('\n');
      lines.pop();
      resolve(lines);
    });
  });
}

/** Delete every message file a journal segment still covers (what a power loss could take); returns how many. */
function loseUncheckpointed(root: string): number {
  const dir = join(root, 'journal');
  let n = 0;
  for (const name of readdirSync(dir)) {
    for (const r of parseSegment(readFileSync(join(dir, name))).records) {
      if (r.type !== 'M') continue;
      try {
        unlinkSync(join(root, 'queue', r.msgid.slice(0, 2), r.msgid));
        n++;
      } catch {
        /* not written yet, or removed */
      }
    }
  }
  return n;
}

describe('FsSpool crash safety', () => {
  it('keeps every committed message whole across SIGKILLs, and shows nothing partial', { timeout: 120_000 }, async (t) => {
    const tmp = tmpSpoolRoot(t);
    const root = tmp.root;
    const init = new FsSpool({ root });
    await init.open();
    await init.close();

    const printed = new Map<string, Printed>();
    const outcomes = new Set<string>();
    let removedTotal = 0;
    let lost = 0;
    const rounds = 6;
    for (let round = 0; round < rounds; round++) {
      const lines = await runAndKill(root, 50 + Math.floor(Math.random() * 500));
      for (const line of lines) {
        const f = line.split(' ');
        if (f[0] === 'm') printed.set(f[1] as string, { size: Number(f[2]), seed: f[3] as string });
        else if (f[0] === 'o') outcomes.add(f[1] as string);
      }

      if (round % 2 === 1) lost += loseUncheckpointed(root);
      const spool = new FsSpool({ root });
      const report = await spool.open();
      assert.deepEqual(report.corrupt, [], `round ${round}: corrupt files after a kill`);
      removedTotal += report.removedIncomplete;
      const listed = await spool.list();
      assert.equal(report.messages, listed.length);
      for (const msgid of printed.keys()) assert.ok(listed.includes(msgid), `round ${round}: committed ${msgid} is missing`);
      // Every visible message is complete: envelope, exact body (checked against the
      // seed kept in envid, and by openBody's own checksum), and printed outcomes.
      for (const msgid of listed) {
        const stored = await spool.load(msgid);
        const seed = stored.envelope.envid as string;
        const body = await readAll(spool.openBody(msgid));
        assert.equal(body.length, stored.envelope.size);
        assert.ok(body.equals(crashBody(seed, body.length)), `round ${round}: body of ${msgid} differs`);
        const p = printed.get(msgid);
        if (p !== undefined) {
          assert.equal(p.seed, seed);
          assert.equal(p.size, body.length);
        }
        for (const r of stored.envelope.recipients) {
          if (outcomes.has(r.evpid)) assert.equal(stored.outcomes.get(r.evpid)?.[0]?.kind, 'deferred', `outcome of ${r.evpid} lost`);
        }
      }
      await spool.close();
    }
    t.diagnostic(`${rounds} kills, ${printed.size} messages printed as committed, ${outcomes.size} outcomes, ${removedTotal} incomplete removed, ${lost} unsynced message files deleted and restored from the journal`);
    assert.ok(printed.size > 0, 'the child never committed anything');
    assert.ok(removedTotal > 0, 'no kill ever landed during a write (try again?)');
  });
});
