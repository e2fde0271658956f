/*
 * bench/spool-commit.ts — commit rate of the filesystem spool.
 *
 * Usage: node dist/bench/spool-commit.js [--count 5000] [--concurrency 50]
 *          [--size 1024] [--group-ms 0] [--dir /path/on/the/disk/to/test]
 * Commits COUNT messages of SIZE bytes from CONCURRENCY concurrent writers
 * into a fresh spool and prints messages/s and the number of folder fsyncs
 * (group commit shares them). Set UV_THREADPOOL_SIZE to see how libuv's
 * thread pool (4 threads by default) limits the fdatasyncs in flight.
 * Not a test: numbers depend on the disk.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FsSpool, newEvpid } from '../src/spool/fs/fs-spool.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '50' },
    size: { type: 'string', default: '1024' },
    'group-ms': { type: 'string', default: '0' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const count = Number(values.count);
const concurrency = Number(values.concurrency);
const size = Number(values.size);
const groupCommitMs = Number(values['group-ms']);

const base = mkdtempSync(join(values.dir, 'postern-bench-'));
const spool = new FsSpool({ root: join(base, 'spool'), groupCommitMs });
await spool.open();
const body = Buffer.alloc(size, 'x');
let started = 0;
const latencies: number[] = [];

async function writer(): Promise<void> {
  while (started < count) {
    started++;
    const t0 = performance.now();
    const w = await spool.createMessage();
    w.write(body);
    await w.commit({
      sender: 'bench@example.net',
      recipients: [{ evpid: newEvpid(w.msgid), address: 'rcpt@example.org', action: 'relay' }],
      body: '8BITMIME',
      smtputf8: false,
      arrival: Date.now(),
      client: { address: '127.0.0.1', port: 1, proto: 'ESMTP', listener: '127.0.0.1:25' },
    });
    latencies.push(performance.now() - t0);
  }
}

const t0 = performance.now();
await Promise.all(Array.from({ length: concurrency }, writer));
const secs = (performance.now() - t0) / 1000;
const { commits, dirFsyncs } = spool.stats();
await spool.close();
rmSync(base, { recursive: true, force: true });
latencies.sort((a, b) => a - b);
const pct = (p: number): string => (latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0).toFixed(1);
console.log(
  `commits=${commits} concurrency=${concurrency} size=${size} groupCommitMs=${groupCommitMs} ` +
    `UV_THREADPOOL_SIZE=${process.env['UV_THREADPOOL_SIZE'] ?? '4 (default)'}: ` +
    `${(commits / secs).toFixed(0)} msgs/s, ${dirFsyncs} folder fsyncs (${(commits / Math.max(1, dirFsyncs)).toFixed(1)} commits each), ` +
    `latency p50 ${pct(0.5)} ms p99 ${pct(0.99)} ms`,
);
