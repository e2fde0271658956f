/*
 * bench/fsync-rate.ts — what one durable file write costs on this disk:
 * create a file, write 1 KB, fsync it, rename it into place (the cycle of
 * every queue that keeps its promise), one at a time; and, for
 * comparison, the same with the folder fsynced after the rename, as
 * Postern does. Synchronous calls on purpose: this measures the disk, not
 * the event loop. Each loop is bounded by a count and a time.
 */
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExtraScenario } from './extra-scenarios.js';
import { fsyncLines } from './report.js';
import { summarizeLatencies, Samples, type LatencySummary } from './stats.js';

export interface FsyncLoop {
  readonly ops: number;
  readonly perSecond: number;
  /** Microseconds per cycle. */
  readonly latencyUs: LatencySummary;
}

export interface FsyncResult {
  /** The folder the loops ran under (the queues' disk). */
  readonly dir: string;
  /** create + write + fsync + rename. */
  readonly file: FsyncLoop;
  /** The same, then fsync of the folder. */
  readonly fileAndDir: FsyncLoop;
}

function loop(base: string, dirFsync: boolean, maxOps: number, maxMs: number): FsyncLoop {
  const tmpDir = join(base, dirFsync ? 'tmp-d' : 'tmp');
  const qDir = join(base, dirFsync ? 'q-d' : 'q');
  mkdirSync(tmpDir);
  mkdirSync(qDir);
  const body = Buffer.alloc(1024, 'x');
  const samples = new Samples();
  const t0 = performance.now();
  const end = t0 + maxMs;
  let ops = 0;
  for (; ops < maxOps && performance.now() < end; ops++) {
    const t = performance.now();
    const tmp = join(tmpDir, `m${ops}`);
    const fd = openSync(tmp, 'wx', 0o600);
    writeSync(fd, body);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, join(qDir, `m${ops}`));
    if (dirFsync) {
      const dfd = openSync(qDir, 'r');
      fsyncSync(dfd);
      closeSync(dfd);
    }
    samples.push((performance.now() - t) * 1000);
  }
  const secs = (performance.now() - t0) / 1000;
  return { ops, perSecond: ops / Math.max(secs, 1e-9), latencyUs: summarizeLatencies(samples.values()) };
}

/** Runs both loops in a fresh folder under `parent`, then removes it. */
export function measureFsync(parent: string, maxOps = 5000, maxMs = 3000): FsyncResult {
  const base = mkdtempSync(join(parent, 'postern-bench-fsync-'));
  try {
    return { dir: parent, file: loop(base, false, maxOps, maxMs), fileAndDir: loop(base, true, maxOps, maxMs) };
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

export const fsyncScenario: ExtraScenario = {
  name: 'fsync',
  title: 'the disk: create + write + fsync + rename',
  quick: true,
  servers: [],
  run(ctx) {
    ctx.progress('disk: create + write + fsync + rename loop…');
    const r = measureFsync(tmpdir(), 20_000, ctx.params.fsyncMs);
    return Promise.resolve({ lines: fsyncLines(r), data: r });
  },
};
