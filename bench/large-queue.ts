/*
 * bench/large-queue.ts — a large queue for a destination that is down:
 * how soon the server serves, how soon its scheduler knows every message,
 * its peak memory, how soon the queue listing answers, and how fast it
 * delivers once the destination comes back — Postern, then Postfix
 * (bench/large-queue-postfix.ts) on the same count.
 *
 * Usage: node dist/bench/large-queue.js [--count 1000000] [--server postern,postfix]
 *          [--spool DIR] [--postfix-queue DIR] [--drain-s 120] [--seen-cap-s 180] [--keep]
 * (`npm run bench`: 30 s of deliveries and a 60 s cap on Postfix's first
 * pass; --quick: 20,000 messages, 15 s and 15 s.) Both queues are written first, side by side
 * (Postern's here, Postfix's in a child process: a core each, nothing
 * measured meanwhile), then `sync`, then each server is measured alone,
 * Postern first; both queues are deleted side by side at the end.
 * Postern:
 * 1. COUNT 1 KB messages to user@down.test are written into a fresh spool
 *    by bench/spool-fill.ts (the spool's own writer; as root, then given to
 *    the privsep user as smtpd's parent gives it), or --spool names one
 *    filled before (it is used as is: a second run sees the deferral
 *    records of the first).
 * 2. smtpd -d starts on 127.0.13.1 with a relay action to 127.0.13.2:PORT,
 *    where nothing listens (connection refused). The harness measures from
 *    the spawn: the first 220 (a connection every 50 ms until one is
 *    greeted), the first line of `smtpctl show queue`, and the end of the
 *    load (`smtpctl show status` stops saying QUEUE loading); the process
 *    tree's peak RSS and PSS are sampled every 200 ms throughout, its CPU
 *    time read when the load ends.
 * 3. smtp-sink starts at 127.0.13.2:PORT, `smtpctl schedule all`, and the
 *    messages arriving at the sink are counted for --drain-s seconds (or
 *    until all arrived): the delivery rate once the destination is back.
 * Postfix: the same count, its queue written by its own means (one message
 * deferred by a private instance, copied, each copy named after its inode
 * as `postsuper -s` names a queue file), see
 * large-queue-postfix.ts; --postfix-queue measures a folder prepared by
 * `node dist/bench/large-queue-postfix.js --prepare DIR --count N`. Its
 * "every message known" is qmgr's first pass over the whole queue, cut at
 * --seen-cap-s (the figure then says how many it had seen).
 * Prints one JSON object (and a readable table on standard error).
 * Timings are wall clock on a machine that may be shared: indicative.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ExtraScenario } from './extra-scenarios.js';
import { measurePostfixQueue, preparePostfixQueueApart, preparedPostfixQueue, type LargeQueueResult } from './large-queue-postfix.js';
import { PeakSampler, treeCpuSeconds } from './proc.js';
import { postfix } from './servers/postfix.js';
import { drainToSink } from './servers/sink.js';
import { fillSpool } from './spool-fill.js';
import { stopwatch } from './timings.js';
import { REPO_ROOT, freePort, greeted, isRoot, removeTree, run, sleep, spawnWithLimits, workFolder } from './util.js';
import { DEFAULT_PRIVSEP_USER } from '../src/daemon/privsep/parent.js';

const HOST = '127.0.13.1';
const DOWN_HOST = '127.0.13.2';
const POSTERN = join(REPO_ROOT, 'bin', 'postern.js');

/** Runs `postern smtpctl ARGS`; resolves with the time (ms, performance.now()) its first output line arrived and the whole output. */
function smtpctl(conf: string, args: string[]): Promise<{ firstLineAt: number; out: string; status: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [POSTERN, 'smtpctl', '-f', conf, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let firstLineAt = 0;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (firstLineAt === 0 && (out + d).includes('\n')) firstLineAt = performance.now();
      if (out.length < 1_000_000) out += d;
    });
    child.on('close', (status) => resolve({ firstLineAt, out, status }));
  });
}

/** Postern's queue: `count` messages written by spool-fill into `spool` (as root, then given to the privsep user); the seconds it took. */
async function fillPosternQueue(spool: string, count: number, say: (line: string) => void): Promise<number> {
  const t = performance.now();
  say(`large-queue: writing ${count} messages into ${spool}`);
  // As root, the daemon's SMTP side (the privsep user) owns the spool it writes: so does this one.
  await fillSpool({ spool, count, to: 'user@down.test', action: 'bench', ...(isRoot() ? { owner: DEFAULT_PRIVSEP_USER } : {}), progress: (n) => n % 100_000 === 0 && say(`large-queue: ${n} written`) });
  return Math.round((performance.now() - t) / 100) / 10;
}

/** Postern's measurement on a filled spool (`work` holds its configuration and log). */
async function measurePosternQueue(o: { count: number; spool: string; work: string; fillSeconds?: number; drainMs: number; progress?: (line: string) => void }): Promise<LargeQueueResult> {
  const say = o.progress ?? (() => undefined);
  const { spool, work, fillSeconds } = o;
  const port = await freePort(HOST);
  const sinkPort = await freePort(DOWN_HOST);
  const conf = join(work, 'smtpd.conf');
  writeFileSync(
    conf,
    [
      '# Generated by bench/large-queue.ts.',
      `queue path "${spool}"`,
      'hostname postern.bench.localhost',
      `listen on ${HOST} port ${port}`,
      `action "bench" relay host smtp+notls://${DOWN_HOST}:${sinkPort}`,
      'match from any for domain "down.test" action "bench"',
      '',
    ].join('\n'),
  );
  const t0 = performance.now();
  const child = spawnWithLimits(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'cli', 'smtpd.js'), '-d', '-f', conf], { cwd: work, logFile: join(work, 'postern.log') });
  const sampler = new PeakSampler(child.pid as number).start();
  const secs = (at: number): number => Math.round((at - t0) / 10) / 100;
  try {
    while (!(await greeted(HOST, port))) {
      if (child.exitCode !== null) throw new Error(`smtpd exited (${child.exitCode}); see ${work}/postern.log`);
      await sleep(50);
    }
    const first220 = performance.now();
    say(`large-queue: first 220 after ${secs(first220)} s`);
    let firstLine = 0;
    for (;;) {
      const q = await smtpctl(conf, ['show', 'queue']);
      if (q.firstLineAt > 0 && q.out.includes('|')) {
        firstLine = q.firstLineAt;
        break;
      }
      await sleep(100);
    }
    say(`large-queue: first line of smtpctl show queue after ${secs(firstLine)} s`);
    for (;;) {
      const s = await smtpctl(conf, ['show', 'status']);
      if (s.status === 0 && !s.out.includes('QUEUE')) break;
      await sleep(200);
    }
    const loaded = performance.now();
    const cpuToLoadedSeconds = Math.round(treeCpuSeconds(child.pid as number) * 10) / 10;
    say(`large-queue: queue loaded (every message known to the scheduler) after ${secs(loaded)} s`);
    // The destination comes back.
    const drain = await drainToSink(DOWN_HOST, sinkPort, o.count, o.drainMs, () => smtpctl(conf, ['schedule', 'all']));
    const peak = sampler.stop();
    const r: LargeQueueResult = {
      server: 'postern',
      count: o.count,
      ...(fillSeconds !== undefined ? { fillSeconds } : {}),
      first220Seconds: secs(first220),
      firstQueueLineSeconds: secs(firstLine),
      loadedSeconds: secs(loaded),
      loadedCount: o.count,
      cpuToLoadedSeconds,
      peak,
      delivered: drain.delivered,
      deliverSeconds: drain.seconds,
      deliveryRate: drain.rate,
      secondHalfRate: drain.secondHalfRate,
    };
    say(`large-queue: ${r.delivered} delivered in ${r.deliverSeconds} s (${r.deliveryRate}/s); peak RSS ${Math.round(peak.peakRssKb / 1024)} MB, PSS ${Math.round(peak.peakPssKb / 1024)} MB`);
    return r;
  } finally {
    sampler.stop();
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
  }
}

/**
 * How long `npm run bench` waits for Postfix's qmgr to have seen every
 * message, at most (the figure then says how many it had seen, and so its
 * rate): its first pass over a million deferred messages takes some 9
 * minutes here, which `npm run bench` (under 25 minutes in all) cannot give
 * it; 60 s is enough for a rate (422,208 in 180 s on 2026-12-07). --quick: 15 s.
 */
const SEEN_CAP_MS = { full: 60_000, quick: 15_000 };
/** How long `npm run bench` counts deliveries once the destination is back (each server): long enough for a rate. */
const DRAIN_MS = { full: 30_000, quick: 15_000 };

/** The report: one column per server, one row per figure. */
export function largeQueueLines(rs: readonly LargeQueueResult[]): string[] {
  const mb = (kb: number): number => Math.round(kb / 1024);
  const row = (label: string, f: (r: LargeQueueResult) => string): string => `| ${label} | ${rs.map(f).join(' | ')} |`;
  return [
    `| 1 KB messages queued, destination down | ${rs.map((r) => `${r.server}: ${r.count.toLocaleString('en-US')}`).join(' | ')} |`,
    `| --- |${rs.map(() => ' --- |').join('')}`,
    row('written, both side by side (Postern: spool-fill; Postfix: copies named after their inodes)', (r) => `${r.fillSeconds ?? '—'} s`),
    row('first 220', (r) => `${r.first220Seconds} s`),
    row('first line of the queue listing (smtpctl show queue / postqueue -j)', (r) => `${r.firstQueueLineSeconds} s`),
    row('every message known (Postern: load done; Postfix: each taken by qmgr once)', (r) => `${r.loadedSeconds} s${r.loadedCount < r.count ? ` (only ${r.loadedCount} by then)` : ''}`),
    row('CPU of the process tree until then', (r) => `${r.cpuToLoadedSeconds} s`),
    row('peak RSS / PSS', (r) => `${mb(r.peak.peakRssKb)} MB / ${mb(r.peak.peakPssKb)} MB`),
    row('delivery once the destination is back (to smtp-sink; in the second half of the wait alone)', (r) => `${r.deliveryRate} msgs/s (${r.delivered} in ${r.deliverSeconds} s; ${r.secondHalfRate ?? '—'} msgs/s)`),
  ];
}

export interface LargeQueueOptions {
  readonly servers: readonly string[];
  readonly count: number;
  readonly drainMs: number;
  readonly seenCapMs: number;
  /** A Postern spool filled before (used as is, kept). */
  readonly spool?: string;
  /** A Postfix folder prepared before (large-queue-postfix.js --prepare; used up, kept). */
  readonly postfixQueue?: string;
  readonly keep?: boolean;
  readonly progress?: (line: string) => void;
}

/**
 * Both servers on the same count: first both queues are written side by
 * side (Postern's spool-fill here, Postfix's copies in a child process: a
 * core each; nothing is measured meanwhile), then Postern is measured, then
 * Postfix, one after the other, then both queues are deleted side by side.
 * `timings`: the wall time of each of those steps, seconds.
 */
export async function runLargeQueues(o: LargeQueueOptions): Promise<{ results: LargeQueueResult[]; timings: Record<string, number> }> {
  const say = o.progress ?? (() => undefined);
  const want = (n: string): boolean => o.servers.length === 0 || o.servers.includes(n);
  const why = want('postfix') ? postfix.unavailable() : undefined;
  if (why) say(`large-queue: postfix left out: ${why}`);
  const withPostfix = want('postfix') && why === undefined;
  const results: LargeQueueResult[] = [];
  const timings: Record<string, number> = {};
  const watch = stopwatch();
  const work = want('postern') ? workFolder('postern-large-queue-') : undefined;
  const postfixDir = withPostfix && o.postfixQueue === undefined ? workFolder('postfix-large-queue-') : undefined;
  try {
    const spool = o.spool ?? (work ? join(work, 'spool') : '');
    const [fillSeconds, prepared] = await Promise.all([
      work && o.spool === undefined ? fillPosternQueue(spool, o.count, say) : undefined,
      postfixDir ? preparePostfixQueueApart({ count: o.count, downHost: DOWN_HOST, dir: postfixDir, progress: say }) : o.postfixQueue !== undefined && withPostfix ? preparedPostfixQueue(o.postfixQueue) : undefined,
    ]);
    if (withPostfix && prepared === undefined) throw new Error(`${o.postfixQueue}: no prepared.json (node dist/bench/large-queue-postfix.js --prepare DIR)`);
    timings['both queues written'] = watch.lap();
    // What the fills left for the disk to write is written now, not during the first measurement.
    run('sync', []);
    timings['sync'] = watch.lap();
    if (work) {
      results.push(await measurePosternQueue({ count: o.count, spool, work, ...(fillSeconds !== undefined ? { fillSeconds } : {}), drainMs: o.drainMs, progress: say }));
      timings['postern measured'] = watch.lap();
    }
    if (prepared) {
      results.push(await measurePostfixQueue(prepared, { downHost: DOWN_HOST, drainMs: o.drainMs, seenCapMs: o.seenCapMs, progress: say }));
      timings['postfix measured'] = watch.lap();
    }
  } finally {
    if (!o.keep) await Promise.all([work, postfixDir].flatMap((d) => (d ? [removeTree(d)] : [])));
    else say(`large-queue: kept ${[work, postfixDir].filter(Boolean).join(', ')}`);
    timings['queues deleted'] = watch.lap();
  }
  return { results, timings };
}

/** 1,000,000 messages queued for a destination that is down, 20,000 with --quick; Postern, then Postfix, on the same count. */
export const largeQueueScenario: ExtraScenario = {
  name: 'large-queue',
  title: 'a large queue for a destination that is down, then back',
  quick: true,
  servers: ['postern', 'postfix'],
  async run(ctx) {
    const size = ctx.params.quick ? 'quick' : 'full';
    const { results, timings } = await runLargeQueues({ servers: ctx.servers, count: ctx.params.quick ? 20_000 : 1_000_000, drainMs: DRAIN_MS[size], seenCapMs: SEEN_CAP_MS[size], keep: ctx.keep, progress: ctx.progress });
    return { lines: largeQueueLines(results), data: results, timings };
  },
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { count: { type: 'string', default: '1000000' }, spool: { type: 'string' }, 'drain-s': { type: 'string', default: '120' }, server: { type: 'string', default: 'postern,postfix' }, 'postfix-queue': { type: 'string' }, 'seen-cap-s': { type: 'string', default: '180' }, keep: { type: 'boolean', default: false } },
  });
  const { results: rs } = await runLargeQueues({
    servers: (values.server ?? '').split(',').filter(Boolean),
    count: Number(values.count),
    drainMs: Number(values['drain-s']) * 1000,
    keep: values.keep,
    ...(values.spool ? { spool: values.spool } : {}),
    ...(values['postfix-queue'] ? { postfixQueue: values['postfix-queue'] } : {}),
    seenCapMs: Number(values['seen-cap-s']) * 1000,
    progress: (l) => process.stderr.write(`${l}\n`),
  });
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGb: Math.round(totalmem() / 2 ** 30), kernel: release(), node: process.version, postfix: postfix.unavailable() ? undefined : postfix.version(), date: new Date().toISOString() };
  process.stderr.write(`${largeQueueLines(rs).join('\n')}\n`);
  process.stdout.write(`${JSON.stringify({ results: rs, machine })}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
