/*
 * delivery/local/worker-pool.ts — the daemon's side of the delivery
 * workers (deliver-worker.ts): a few long-lived root processes that write
 * mailboxes as their users, so that a delivery costs no process start.
 *
 * Jobs wait in one queue (first come, first served) and go to a free
 * worker; a worker runs one job at a time (its ids are switched per job,
 * see effective-ids.ts). Workers start when a job needs one, up to `size`,
 * and live on. Per job: the request line, the message framed as it is read
 * (worker-protocol.ts), then the worker's answer, one JSON line: the
 * Outcome. Jobs are handed out once per turn of the event loop, so that
 * those asked for together (one read of the privsep channel) wait together;
 * maildir jobs waiting together go to one worker as a batch (up to
 * MAX_BATCH, in one write; a message given whole, as a Buffer, is framed
 * into that write at once): every request but the last says `more`, the
 * worker runs them one after another and answers them all at once, after
 * one fsync of each maildir's new/ (group commit; deliver-worker.ts). A
 * worker is free again once it has answered every job of its batch AND
 * every message has been written to it, so that batches never overlap on
 * its pipe.
 *
 * A worker that dies, answers nonsense or outlives the job's time limit
 * (SIGTERM, so that it undoes a partial write, then SIGKILL) is a temporary
 * failure for its job and is dropped; the next job starts a new one. The task's signal (the daemon stopping) sends SIGTERM:
 * the worker aborts the job, answers and exits. Idle workers hold no
 * reference on the event loop; they exit when the daemon's end of the pipe
 * closes (the daemon exited or was killed), and close() ends them.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { oneLine } from '../agent.js';
import type { Credentials, HelperRequest, Job } from './job.js';
import { describe, tempfail, type Outcome } from './outcome.js';
import { isOutcome } from './privsep.js';

export const WORKER_PATH = fileURLToPath(new URL('./deliver-worker.js', import.meta.url));
export const DEFAULT_WORKERS = 2;
const STDERR_MAX = 4096;
const TERM_GRACE_MS = 10_000;
const END = Buffer.from('0\n', 'latin1');
const ABANDON = Buffer.from('!\n', 'latin1');
/** The most jobs handed to a worker at once. */
const MAX_BATCH = 32;

export interface WorkerPoolOptions {
  /** How many workers at most. Default 2. */
  readonly size?: number;
  /** The worker script (tests). */
  readonly workerPath?: string;
  /** Where "started" and "died" lines go. */
  readonly log?: (line: string) => void;
}

export interface PoolJobOptions {
  readonly signal?: AbortSignal;
  /** Kill the worker after this long (ms) from the moment it takes the job. */
  readonly timeoutMs: number;
}

/** A job's message: a stream, or whole (a small message that came whole with its request: written at once). */
export type PoolBody = Readable | Buffer;

function drop(body: PoolBody): void {
  if (!Buffer.isBuffer(body)) body.destroy();
}

interface Waiting {
  readonly request: HelperRequest;
  readonly body: PoolBody;
  readonly opts: PoolJobOptions;
  readonly resolve: (o: Outcome) => void;
}

interface Worker {
  readonly child: ChildProcessWithoutNullStreams;
  readonly pid: number;
  busy: boolean;
  dead: boolean;
  stdout: string;
  stderr: Buffer;
  /** The answer to the job in hand (one line), or its death. */
  onLine?: (line: string) => void;
  onExit?: (why: string) => void;
}

type Unrefable = { ref?(): void; unref?(): void };

/** Keep (or stop keeping) the event loop alive for a worker: only while it has a job. */
function hold(w: Worker, on: boolean): void {
  for (const h of [w.child, w.child.stdin, w.child.stdout, w.child.stderr] as Unrefable[]) (on ? h.ref : h.unref)?.call(h);
}

/**
 * Node's options for a worker with few threads: one V8 helper, and no thread waiting for SIGUSR1 (the
 * inspector's, where this Node has the option: 22.14 and later). With libuv's pool never started (a maildir job
 * makes synchronous file calls, file-calls.ts), a worker runs 3 threads instead of 5.
 */
const FEW_THREADS = ['--v8-pool-size=1', ...(process.allowedNodeEnvironmentFlags.has('--disable-sigusr1') ? ['--disable-sigusr1'] : [])];

/** Corked writes are handed to the pipe once this much is buffered (and at the end). */
const FLUSH_AT = 64 * 1024;

/**
 * Write the request line and the message framed; "!" when it cannot be read
 * to its end. Resolves when all is handed to the pipe. The writes are corked
 * and leave in one writev per 64 KiB, and the jobs of a batch share it until
 * the `last` one (a batch of small jobs: one write and one wake-up of the
 * worker, instead of four a job).
 */
async function pump(head: string, body: PoolBody, to: Writable, last: boolean): Promise<void> {
  const cork = (): void => {
    if (to.writableCorked === 0) to.cork();
  };
  const flush = (): void => {
    while (to.writableCorked > 0) to.uncork();
  };
  if (Buffer.isBuffer(body)) {
    // Whole: the request, one frame and its end, added to the batch's write (no stream, nothing to wait for).
    cork();
    to.write(head);
    if (body.length > 0) {
      to.write(`${body.length.toString(16)}\n`, 'latin1');
      to.write(body);
    }
    to.write(END);
    if (last || to.writableLength >= FLUSH_AT) flush();
    return;
  }
  const drained = (): Promise<void> =>
    new Promise((r) => {
      const go = (): void => {
        to.off('drain', go);
        to.off('close', go);
        r();
      };
      to.on('drain', go);
      to.on('close', go);
    });
  // Bytes stay corked only while more follow at once: before waiting for a message still arriving (a large
  // one streamed over the channel), what is corked leaves, so that the jobs before it are not held up.
  const ready = (): boolean => body.readableLength > 0 || body.readableEnded || (body as unknown as Partial<Writable>).writableEnded === true;
  cork();
  to.write(head);
  const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  try {
    for (;;) {
      if (!ready()) flush();
      const next = await chunks.next();
      if (next.done) break;
      const chunk = next.value;
      if (to.destroyed) return;
      if (chunk.length === 0) continue;
      cork();
      to.write(`${chunk.length.toString(16)}\n`, 'latin1');
      const room = to.write(chunk);
      // Never wait for 'drain' while corked: it comes only after uncork.
      if (!room || to.writableLength >= FLUSH_AT) flush();
      if (!room) await drained();
    }
    if (!to.destroyed) to.write(END);
  } catch {
    if (!to.destroyed) to.write(ABANDON);
  } finally {
    if (last || to.writableLength >= FLUSH_AT) flush();
  }
}

export class WorkerPool {
  private readonly size: number;
  private readonly workerPath: string;
  private readonly log: (line: string) => void;
  private readonly workers = new Set<Worker>();
  private readonly queue: Waiting[] = [];
  private closed = false;
  private dispatching = false;
  /** Workers started so far (tests, logs). */
  started = 0;
  /** The most jobs one batch has held so far (tests). */
  largestBatch = 0;

  constructor(opts: WorkerPoolOptions = {}) {
    this.size = Math.max(1, opts.size ?? DEFAULT_WORKERS);
    this.workerPath = opts.workerPath ?? WORKER_PATH;
    this.log = opts.log ?? (() => undefined);
  }

  /** The pids of the live workers. */
  get pids(): number[] {
    return [...this.workers].filter((w) => !w.dead).map((w) => w.pid);
  }

  /** Run a job as `creds` in a worker; never throws. */
  run(creds: Credentials, job: Job, body: PoolBody, opts: PoolJobOptions): Promise<Outcome> {
    if (this.closed) {
      drop(body);
      return Promise.resolve(tempfail('4.3.0', 'delivery interrupted'));
    }
    return new Promise<Outcome>((resolve) => {
      const onAbort = (): void => {
        const i = this.queue.indexOf(waiting);
        if (i < 0) return;
        this.queue.splice(i, 1);
        drop(body);
        resolve(tempfail('4.3.0', 'delivery interrupted'));
      };
      const waiting: Waiting = {
        request: { v: 1, creds, job },
        body,
        opts,
        resolve: (o) => {
          opts.signal?.removeEventListener('abort', onAbort);
          resolve(o);
        },
      };
      if (opts.signal?.aborted) {
        drop(body);
        return resolve(tempfail('4.3.0', 'delivery interrupted'));
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiting);
      this.dispatchSoon();
    });
  }

  /**
   * Hand out the waiting jobs at the end of this turn of the event loop, not at once: the deliveries asked for
   * in one turn (the requests of one read of the channel) leave together, in one batch and one write.
   */
  private dispatchSoon(): void {
    if (this.dispatching) return;
    this.dispatching = true;
    setImmediate(() => {
      this.dispatching = false;
      this.dispatch();
    });
  }

  /** Stop: waiting jobs fail (temporary), workers get SIGTERM (a job in hand is aborted and answered), SIGKILL later. */
  close(): void {
    this.closed = true;
    for (const w of this.queue.splice(0)) {
      drop(w.body);
      w.resolve(tempfail('4.3.0', 'delivery interrupted'));
    }
    for (const w of this.workers) {
      w.child.stdin.end();
      w.child.kill('SIGTERM');
      setTimeout(() => w.child.kill('SIGKILL'), TERM_GRACE_MS).unref();
    }
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      let w = [...this.workers].find((x) => !x.busy && !x.dead);
      if (!w) {
        if (this.workers.size >= this.size) return;
        w = this.startWorker();
      }
      this.runOn(w, this.takeBatch());
    }
  }

  /**
   * The first waiting job and, when it is a maildir job, the maildir jobs waiting behind it (up to MAX_BATCH):
   * one round trip to the worker, one answer per job written at once, and one fsync of each new/ for all of
   * them. The worker still runs them one after another, each with its own user's ids.
   */
  private takeBatch(): Waiting[] {
    const first = this.queue.shift() as Waiting;
    if (first.request.job.kind !== 'maildir') return [first];
    const batch = [first];
    for (let i = 0; i < this.queue.length && batch.length < MAX_BATCH; ) {
      const j = this.queue[i] as Waiting;
      if (j.request.job.kind === 'maildir') {
        batch.push(j);
        this.queue.splice(i, 1);
      } else i++;
    }
    // One user's jobs one after another: the worker keeps a user's ids between its jobs instead of switching.
    const keyOf = (w: Waiting): string => `${w.request.creds.uid}:${w.request.creds.gid}:${w.request.creds.user}`;
    return batch.sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
  }

  private startWorker(): Worker {
    // An empty environment (no NODE_OPTIONS from the daemon's), in "/", but for one variable: libuv must not use
    // io_uring, whose requests carry the credentials the ring was set up with, not the ids switched per job
    // (CVE-2024-22017; off by default since Node 20.11.1, said explicitly here for older builds).
    // Few threads (FEW_THREADS; one libuv file thread if an mbox job starts the pool: a worker runs one job, its file
    // calls one after another): glibc signals every set*id call to each thread, so each thread makes every switch dearer.
    // A daemon run under `node --cpu-prof` (npm run bench -- --profile) profiles its workers too.
    const prof = process.execArgv.filter((a) => a.startsWith('--cpu-prof'));
    const child = spawn(process.execPath, [...prof, ...FEW_THREADS, this.workerPath], { cwd: '/', env: { UV_USE_IO_URING: '0', UV_THREADPOOL_SIZE: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
    const w: Worker = { child, pid: child.pid ?? -1, busy: false, dead: false, stdout: '', stderr: Buffer.alloc(0) };
    this.workers.add(w);
    this.started++;
    this.log(`mda: delivery worker started pid=${w.pid} workers=${this.workers.size}`);
    child.stdin.on('error', () => undefined); // EPIPE: the worker died; its exit tells the job
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      w.stdout += d;
      for (let nl = w.stdout.indexOf('\n'); nl >= 0; nl = w.stdout.indexOf('\n')) {
        const line = w.stdout.slice(0, nl);
        w.stdout = w.stdout.slice(nl + 1);
        if (w.onLine) w.onLine(line);
        else this.kill(w, 'answered without a job');
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      w.stderr = Buffer.concat([w.stderr, d]);
      if (w.stderr.length > STDERR_MAX) w.stderr = w.stderr.subarray(w.stderr.length - STDERR_MAX);
    });
    const gone = (why: string): void => {
      if (w.dead) return;
      w.dead = true;
      this.workers.delete(w);
      const lines = w.stderr.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
      const err = lines.find((l) => /^(\w*Error|error)\b|\bError:|^delivery worker:/.test(l)) ?? lines[lines.length - 1];
      const full = err ? `${why}: ${err}` : why;
      if (w.busy || why !== 'exit 0') this.log(`mda: delivery worker pid=${w.pid} ended (${full})`);
      w.onExit?.(full);
      hold(w, false);
      this.dispatch();
    };
    child.on('error', (e) => gone(`cannot start: ${describe(e)}`));
    child.on('close', (code, sig) => gone(sig ?? `exit ${code}`));
    hold(w, false);
    return w;
  }

  private kill(w: Worker, why: string): void {
    this.log(`mda: delivery worker pid=${w.pid}: ${why}; killed`);
    w.child.kill('SIGKILL');
  }

  private runOn(w: Worker, jobs: readonly Waiting[]): void {
    this.largestBatch = Math.max(this.largestBatch, jobs.length);
    w.busy = true;
    hold(w, true);
    const answers: (Outcome | undefined)[] = jobs.map(() => undefined);
    let answered = 0;
    let written = false;
    let why: 'timeout' | 'abort' | undefined;
    let termTimer: NodeJS.Timeout | undefined;
    // The jobs of a batch run one after another: the time limit is the sum of theirs.
    const timeoutMs = jobs.reduce((t, j) => t + j.opts.timeoutMs, 0);
    const timedOut = (): Outcome => tempfail('4.3.0', `delivery worker: timed out after ${Math.round(timeoutMs / 1000)} s`);
    // SIGTERM first: the worker undoes a partial write (mbox truncated back, maildir file removed) and answers; SIGKILL if it cannot.
    const stop = (): void => {
      w.child.kill('SIGTERM');
      termTimer ??= setTimeout(() => w.child.kill('SIGKILL'), TERM_GRACE_MS);
    };
    const timer = setTimeout(() => {
      why = 'timeout';
      this.log(`mda: delivery worker pid=${w.pid}: job timed out after ${Math.round(timeoutMs / 1000)} s; stopped`);
      stop();
    }, timeoutMs);
    const onAbort = (): void => {
      why ??= 'abort';
      stop();
    };
    for (const j of jobs) j.opts.signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (): void => {
      if (answered < jobs.length || (!written && !w.dead)) return;
      clearTimeout(timer);
      if (termTimer) clearTimeout(termTimer);
      w.onLine = undefined;
      w.onExit = undefined;
      jobs.forEach((j, i) => {
        j.opts.signal?.removeEventListener('abort', onAbort);
        drop(j.body);
        j.resolve(answers[i] as Outcome);
      });
      hold(w, false);
      if (w.dead) return;
      if (why !== undefined) {
        // It was told to stop and exits after its answer: no new job for it.
        w.dead = true;
        this.workers.delete(w);
      } else w.busy = false;
      this.dispatch();
    };
    w.onLine = (line) => {
      if (answered >= jobs.length) return this.kill(w, 'answered twice');
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (!isOutcome(parsed)) {
        // The rest of the batch gets the same answer: the worker is killed.
        while (answered < jobs.length) answers[answered++] = tempfail('4.3.0', 'delivery worker: unreadable answer');
        this.kill(w, 'unreadable answer');
      } else if (why === 'timeout' && parsed.status !== 'ok') answers[answered++] = timedOut();
      else answers[answered++] = { status: parsed.status, enhanced: parsed.enhanced, detail: oneLine(parsed.detail) };
      settle();
    };
    w.onExit = (died) => {
      while (answered < jobs.length)
        answers[answered++] = why === 'timeout' ? timedOut() : why === 'abort' ? tempfail('4.3.0', 'delivery interrupted') : tempfail('4.3.0', `delivery worker died (${died})`);
      settle();
    };
    void (async () => {
      for (const [i, j] of jobs.entries()) {
        const request: HelperRequest = i < jobs.length - 1 ? { ...j.request, more: true } : j.request;
        await pump(`${JSON.stringify(request)}\n`, j.body, w.child.stdin, i === jobs.length - 1);
      }
      written = true;
      settle();
    })();
  }
}
