/*
 * bench/large-queue-postfix.ts — the large-queue measurement for Postfix,
 * beside Postern's (bench/large-queue.ts): N 1 KB messages deferred for a
 * destination that is down, then the same figures — first 220, first line
 * of the queue listing, every message seen by the queue manager, peak
 * memory of the process tree, delivery rate once the destination is back.
 *
 * The queue is written by Postfix's own means, at the speed of a copy:
 * 1. a private instance (bench/servers/postfix.ts) receives ONE message
 *    over SMTP for user0@down.test, routed (transport_maps) to
 *    smtp:[DOWN_HOST]:PORT where nothing listens; qmgr tries it and moves
 *    it to deferred/: a queue file written by cleanup, deferred by qmgr.
 *    The instance stops.
 * 2. That file is copied N times into deferred/X/, each copy then renamed
 *    to its own queue id, as `postsuper -s` (Postfix's structure repair,
 *    as after restoring a queue from backup) would rename it: a short queue
 *    id is 5 hex digits (microseconds; here spread over the 16 hash
 *    folders) followed by the file's inode number in hex, and the first
 *    digit is its hash folder. Owner, group and mode (0700: "complete")
 *    are the original's, the modification time now (due: qmgr takes a
 *    deferred file only when its mtime, the next retry time, has passed).
 *    Until 2026-12-08 the copies were named at random and `postsuper -s`
 *    renamed them (89 s for a million here, against some 10 s for the
 *    renames done while copying); test/e2e/bench-large-queue-postfix.test.ts
 *    checks that `postsuper -s` finds nothing to rename in such a queue.
 *    Hard links cannot stand for copies: the queue id is the inode
 *    number, so every link would be one message. A queue file names its id
 *    only in its Received: header's text (no log_ident attribute without
 *    XFORWARD), so the copies are N messages to qmgr.
 * Then the instance starts again (its master in the foreground, not
 * `postfix start`: the harness's instances are never listed in the
 * system's main.cf) and the harness measures from just before the start:
 * the first 220, the first line of `postqueue -j` (showq reads the queue
 * folders), and the time until qmgr has taken every message into its active
 * queue once — each is deferred again (destination dead: "delivery
 * temporarily suspended"), so that is when N "status=deferred" lines are in
 * the log. Postfix never holds a list of the whole queue: it scans deferred/
 * again every queue_run_delay; "seen once" is its closest state to
 * "every message known". Then smtp-sink starts at DOWN_HOST:PORT,
 * `postqueue -f` (flush: dead destinations forgotten, every deferred file
 * due), and arrivals are counted.
 */
import { spawn } from 'node:child_process';
import { chownSync, closeSync, existsSync, fchownSync, fstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { runLoad } from './load.js';
import { PeakSampler, treeCpuSeconds, type Peak } from './proc.js';
import { LISTEN_HOST } from './servers/server.js';
import { LogCounter, startPostfix } from './servers/postfix.js';
import { drainToSink } from './servers/sink.js';
import { freePort, greeted, pollUntil, run, sleep, workFolder } from './util.js';

/** One server's figures in the large-queue measurement (Postern's or Postfix's). */
export interface LargeQueueResult {
  readonly server: 'postern' | 'postfix';
  readonly count: number;
  /** Writing the queue (Postern: spool-fill; Postfix: the copies, each named after its inode), seconds. */
  readonly fillSeconds?: number;
  readonly first220Seconds: number;
  readonly firstQueueLineSeconds: number;
  /** Postern: its scheduler's load finished; Postfix: every message taken by qmgr once (or the cap passed, see loadedCount). */
  readonly loadedSeconds: number;
  /** Messages known/seen when loadedSeconds was taken (== count unless a cap cut the wait). */
  readonly loadedCount: number;
  /** CPU seconds of the server's process tree from its start until loadedSeconds. */
  readonly cpuToLoadedSeconds: number;
  readonly peak: Peak;
  readonly delivered: number;
  readonly deliverSeconds: number;
  readonly deliveryRate: number;
  /** The rate over the second half of the drain alone (see drainToSink). */
  readonly secondHalfRate?: number;
}

export interface PostfixQueueOptions {
  readonly count: number;
  /** Where nothing listens during the start, and smtp-sink during the drain. */
  readonly downHost: string;
  readonly drainMs: number;
  /** Longest wait for qmgr to have seen every message (the figure says how many it had seen by then). */
  readonly seenCapMs: number;
  readonly keep?: boolean;
  readonly progress?: (line: string) => void;
}

const secsSince = (t0: number, at: number): number => Math.round((at - t0) / 10) / 100;

/** main.cf lines added to the instance: down.test goes to DOWN_HOST:PORT (relayed for mynetworks, not a relay domain: no fast-flush log). */
function routing(downHost: string, downPort: number): string[] {
  return [`transport_maps = inline:{down.test=smtp:[${downHost}]:${downPort}}`];
}

/** Queue files under queue/deferred (hashed one level deep). */
function deferredFiles(queue: string): string[] {
  const out: string[] = [];
  const top = join(queue, 'deferred');
  for (const sub of readdirSync(top)) for (const f of readdirSync(join(top, sub))) out.push(join(top, sub, f));
  return out;
}

/** Step 1: one message received and deferred by the instance itself; returns its queue file's bytes and owner. */
async function seedMessage(dir: string, port: number, downHost: string, downPort: number): Promise<{ content: Buffer; uid: number; gid: number }> {
  const queue = join(dir, 'queue');
  const server = await startPostfix({ mode: 'relay', port, workDir: dir }, { main: routing(downHost, downPort) });
  try {
    const r = await runLoad({ host: LISTEN_HOST, port, sessions: 1, maxMessages: 1, durationMs: 10_000, domain: 'down.test', localPart: 'user', pipelining: false });
    if (r.accepted !== 1) throw new Error(`postfix large-queue: the seed message was not accepted (${JSON.stringify(r.errors)} ${r.sampleReplies.join(' ')})`);
    const deferred = new LogCounter(join(dir, 'maillog'), 'status=deferred');
    if (!(await pollUntil(() => deferred.read() > 0 && deferredFiles(queue).length === 1, 60_000, 100))) throw new Error(`postfix large-queue: the seed message was not deferred; see ${dir}/maillog`);
  } finally {
    await server.stop();
  }
  const [file] = deferredFiles(queue);
  const st = statSync(file as string);
  const content = readFileSync(file as string);
  // Only the copies stay: the seed's queue file and its defer log go.
  rmSync(file as string);
  for (const sub of readdirSync(join(queue, 'defer'))) rmSync(join(queue, 'defer', sub), { recursive: true, force: true });
  return { content, uid: st.uid, gid: st.gid };
}

/** The short queue id of a copy: 5 hex digits (spread over the 16 hash folders, as the microseconds of real ids are), then its inode number in hex. */
export function shortQueueId(i: number, inode: number): string {
  return ((i * 40_503) % 0x100000).toString(16).toUpperCase().padStart(5, '0') + inode.toString(16).toUpperCase();
}

/** Step 2: `count` copies in deferred/X/, each named after its inode (what `postsuper -s` would name it). */
async function copyIntoDeferred(queue: string, seed: { content: Buffer; uid: number; gid: number }, count: number, say: (l: string) => void): Promise<void> {
  const made = new Set<string>();
  for (let i = 0; i < count; i++) {
    const prefix = shortQueueId(i, 0).slice(0, 5);
    const sub = join(queue, 'deferred', prefix[0] as string);
    if (!made.has(sub)) {
      mkdirSync(sub, { recursive: true, mode: 0o700 });
      chownSync(sub, seed.uid, seed.gid);
      made.add(sub);
    }
    // A name no queue id has (ids are hex digits), then the id once the inode is known.
    const tmp = join(sub, `copy.${i}`);
    const fd = openSync(tmp, 'wx', 0o700);
    let inode: number;
    try {
      writeSync(fd, seed.content);
      fchownSync(fd, seed.uid, seed.gid);
      inode = fstatSync(fd).ino;
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(sub, prefix + inode.toString(16).toUpperCase()));
    if ((i + 1) % 100_000 === 0) {
      say(`large-queue (postfix): ${i + 1} copies written`);
      await sleep(0);
    }
  }
}

/** `postqueue -j`: resolves with the time its first line (one message, JSON) arrived, then stops it (the whole listing is N lines). */
function firstListingLine(conf: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('postqueue', ['-c', conf, '-j'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    let at = 0;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      if (at === 0 && out.includes('"queue_id"') && out.includes('\n')) {
        at = performance.now();
        child.kill('SIGTERM');
      }
    });
    child.on('close', () => resolve(at));
  });
}

/** A Postfix instance folder with its queue written (steps 1–3), not started; `prepared.json` in it says so. */
export interface PreparedPostfixQueue {
  readonly dir: string;
  readonly count: number;
  readonly port: number;
  readonly downPort: number;
  readonly fillSeconds: number;
}

/** Steps 1–2 into `dir` (a fresh folder, or a new work folder). */
export async function preparePostfixQueue(o: { count: number; downHost: string; dir?: string; progress?: (line: string) => void }): Promise<PreparedPostfixQueue> {
  const say = o.progress ?? (() => undefined);
  const dir = o.dir ?? workFolder('postfix-large-queue-');
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  const queue = join(dir, 'queue');
  const port = await freePort(LISTEN_HOST);
  const downPort = await freePort(o.downHost);
  const seed = await seedMessage(dir, port, o.downHost, downPort);
  const t = performance.now();
  say(`large-queue (postfix): copying the deferred queue file ${o.count} times`);
  await copyIntoDeferred(queue, seed, o.count, say);
  const fillSeconds = Math.round((performance.now() - t) / 100) / 10;
  // postsuper (an administrator's, or the test's check) logs as the mail owner, straight into maillog_file.
  chownSync(join(dir, 'maillog'), seed.uid, seed.gid);
  say(`large-queue (postfix): ${o.count} copies written and named in ${fillSeconds} s`);
  const p: PreparedPostfixQueue = { dir, count: o.count, port, downPort, fillSeconds };
  writeFileSync(join(dir, 'prepared.json'), `${JSON.stringify(p)}\n`);
  return p;
}

/**
 * preparePostfixQueue() in a child process (this file as a program), so that
 * it runs beside Postern's spool-fill on the other core; its progress lines
 * go to `progress`.
 */
export function preparePostfixQueueApart(o: { count: number; downHost: string; dir: string; progress?: (line: string) => void }): Promise<PreparedPostfixQueue> {
  const script = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, '--prepare', o.dir, '--count', String(o.count), '--down-host', o.downHost], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    createInterface({ input: child.stderr }).on('line', (l) => {
      err = `${err}${l}\n`.slice(-2000);
      o.progress?.(l);
    });
    child.on('close', (status) => {
      const p = preparedPostfixQueue(o.dir);
      if (status === 0 && p) resolve(p);
      else reject(new Error(`postfix large-queue: preparing the queue failed (${status}): ${err.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

/** A folder preparePostfixQueue() filled, or undefined when it holds none. */
export function preparedPostfixQueue(dir: string): PreparedPostfixQueue | undefined {
  return existsSync(join(dir, 'prepared.json')) ? (JSON.parse(readFileSync(join(dir, 'prepared.json'), 'utf8')) as PreparedPostfixQueue) : undefined;
}

/** The measurement: the prepared instance started, watched, then its destination brought back. Its queue is used up (deferred again, partly delivered). */
export async function measurePostfixQueue(p: PreparedPostfixQueue, o: Omit<PostfixQueueOptions, 'count' | 'keep'>): Promise<LargeQueueResult> {
  const say = o.progress ?? (() => undefined);
  const { dir, port, downPort } = p;
  const conf = join(dir, 'conf');
  const deferred = new LogCounter(join(dir, 'maillog'), 'status=deferred');
  const before = deferred.read();
  const t0 = performance.now();
  const server = await startPostfix({ mode: 'relay', port, workDir: dir }, { main: routing(o.downHost, downPort) });
  const sampler = new PeakSampler(server.rootPid).start();
  try {
    while (!(await greeted(LISTEN_HOST, port))) {
      if (!server.alive()) throw new Error(`postfix exited; see ${dir}/maillog`);
      await sleep(50);
    }
    const first220 = performance.now();
    say(`large-queue (postfix): first 220 after ${secsSince(t0, first220)} s`);
    let firstLine = 0;
    while (firstLine === 0) firstLine = (await firstListingLine(conf)) || (await sleep(100), 0);
    say(`large-queue (postfix): first line of postqueue -j after ${secsSince(t0, firstLine)} s`);
    let seen = 0;
    await pollUntil(() => (seen = deferred.read() - before) >= p.count || !server.alive(), o.seenCapMs, 250);
    const loaded = performance.now();
    const cpuToLoadedSeconds = Math.round(treeCpuSeconds(server.rootPid) * 10) / 10;
    say(`large-queue (postfix): ${seen} of ${p.count} messages taken by qmgr and deferred again after ${secsSince(t0, loaded)} s`);
    const drain = await drainToSink(o.downHost, downPort, p.count, o.drainMs, () => run('postqueue', ['-c', conf, '-f'], { timeoutMs: 60_000 }));
    const peak = sampler.stop();
    const r: LargeQueueResult = {
      server: 'postfix',
      count: p.count,
      fillSeconds: p.fillSeconds,
      first220Seconds: secsSince(t0, first220),
      firstQueueLineSeconds: secsSince(t0, firstLine),
      loadedSeconds: secsSince(t0, loaded),
      loadedCount: seen,
      cpuToLoadedSeconds,
      peak,
      delivered: drain.delivered,
      deliverSeconds: drain.seconds,
      deliveryRate: drain.rate,
      secondHalfRate: drain.secondHalfRate,
    };
    say(`large-queue (postfix): ${r.delivered} delivered in ${r.deliverSeconds} s (${r.deliveryRate}/s); peak RSS ${Math.round(peak.peakRssKb / 1024)} MB, PSS ${Math.round(peak.peakPssKb / 1024)} MB`);
    return r;
  } finally {
    sampler.stop();
    await server.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { prepare: { type: 'string' }, count: { type: 'string', default: '1000000' }, 'down-host': { type: 'string', default: '127.0.13.2' } } });
  if (values.prepare === undefined) {
    process.stderr.write('usage: large-queue-postfix --prepare DIR [--count N] [--down-host ADDR]   (then: large-queue --postfix-queue DIR)\n');
    process.exit(2);
  }
  const p = await preparePostfixQueue({ count: Number(values.count), downHost: values['down-host'] ?? '127.0.13.2', dir: values.prepare, progress: (l) => process.stderr.write(`${l}\n`) });
  process.stdout.write(`${JSON.stringify(p)}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
