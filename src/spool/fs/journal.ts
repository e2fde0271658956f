/*
 * spool/fs/journal.ts — the main thread's side of the spool journal.
 *
 * Journal.commit() hands a message file (all but its trailer) to the I/O
 * thread (journal-worker.ts) and resolves once its journal record is
 * fdatasynced: the SMTP server may say 250. The thread then writes the file
 * into queue/; until it has, whenVisible(msgid) gives a promise that
 * readers of the message (FsSpool.load, openBody, appendOutcome) wait for. Commits made in the same turn of
 * the event loop travel in one message to the thread, and the thread
 * writes everything that reached it meanwhile as one batch with one
 * fdatasync, so concurrent sessions share the cost of durability.
 *
 * The bytes are moved, not copied: each message is one Buffer with its own
 * ArrayBuffer, given to the thread in the transfer list; the thread hands
 * it back once the file is written, for a later commit (buffer-pool.ts).
 *
 * remove(msgid) unlinks a message in the I/O thread too, and records a
 * tombstone when its journal segment has not been checkpointed yet, so that
 * replaying the journal after a crash does not bring a delivered message
 * back. Neither the unlink nor the tombstone is fsynced on its own: the
 * tombstone rides with the next batch, the unlink with the next
 * checkpoint; if a crash comes first, the message may be delivered again
 * after the restart (a duplicate, never a loss).
 */
import { Worker } from 'node:worker_threads';
import { BufferPool } from './buffer-pool.js';
import type { FromWorker, JournalWorkerData, ToWorker } from './journal-worker.js';

export interface JournalOptions {
  readonly root: string;
  readonly journalDir: string;
  readonly queueDir: string;
  /** Start a new segment (and checkpoint the old ones) at this size. Default 64 MiB. */
  readonly segmentBytes?: number;
  /** …or when the open segment's first record is this old. Default 1000 ms. */
  readonly checkpointMs?: number;
  /** syncfs command (tests: [] forces the per-file fallback). */
  readonly syncCommand?: readonly string[];
  readonly log: (line: string) => void;
  /** A batch of `size` commits was made durable by an fdatasync of `fsyncSeconds` (metrics). */
  readonly onBatch?: (size: number, fsyncSeconds: number) => void;
}

/** The I/O thread's young generation (MB). */
const IO_THREAD_YOUNG_MB = 3;

interface Waiter {
  readonly msgids: readonly string[];
  readonly settle: readonly { resolve(): void; reject(e: Error): void }[];
  /** Still waiting for 'materialized'. */
  durable: boolean;
}

export class Journal {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private queue: { msgid: string; bytes: Buffer; bodyLength: number; envLength: number; resolve(): void; reject(e: Error): void }[] = [];
  private removals: { msgid: string; tombstone: boolean; hasLog: boolean; resolve(found: boolean): void; reject(e: Error): void }[] = [];
  private readonly removing = new Map<number, { resolve(found: boolean): void; reject(e: Error): void }[]>();
  private scheduled = false;
  /** Msgids durable but whose file is not in queue/ yet → resolved when it is (or cannot be). */
  private readonly writing = new Map<string, { promise: Promise<void>; resolve(): void }>();
  /** Acknowledged msgids whose segment is not checkpointed yet → segment number. */
  private readonly unchecked = new Map<string, number>();
  private broken: Error | undefined;
  private closed: Promise<void> | undefined;
  private onClosed: (() => void) | undefined;
  /** The thread said 'closed': its exit is expected. */
  private finished = false;
  batches = 0;
  checkpoints = 0;
  /** Buffers for commit(), handed back by the I/O thread once their file is written. */
  readonly buffers = new BufferPool();

  private constructor(private readonly o: JournalOptions) {
    const data: JournalWorkerData = {
      root: o.root,
      journalDir: o.journalDir,
      queueDir: o.queueDir,
      segmentBytes: o.segmentBytes ?? 64 * 1024 * 1024,
      checkpointMs: o.checkpointMs ?? 1000,
      ...(o.syncCommand ? { syncCommand: o.syncCommand } : {}),
    };
    // Its allocations are small and short-lived (message envelopes, record headers; the bytes are moved
    // ArrayBuffers): a young generation of a few MB is plenty, where V8's default grows to 16 MB or more.
    this.worker = new Worker(new URL('./journal-worker.js', import.meta.url), { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: IO_THREAD_YOUNG_MB } });
  }

  static start(o: JournalOptions): Promise<Journal> {
    const j = new Journal(o);
    return new Promise((resolve, reject) => {
      const early = (e: Error): void => reject(e);
      j.worker.once('error', early);
      j.worker.on('message', (m: FromWorker) => {
        if (m.t === 'ready') {
          j.worker.off('error', early);
          j.worker.on('error', (e) => j.fail(e));
          j.worker.on('exit', (code) => j.fail(new Error(`spool I/O thread exited (status ${code})`)));
          // Held only while commits wait for it (a spool never closed must not keep the process alive).
          j.worker.unref();
          resolve(j);
        } else j.receive(m);
      });
    });
  }

  /**
   * Make a message file durable and put it in queue/. `bytes`: body, then
   * envelope, then room for the trailer, which the I/O thread fills in; it
   * is moved to the thread (best taken from `buffers`), unusable here after.
   */
  commit(msgid: string, bytes: Buffer, bodyLength: number, envLength: number): Promise<void> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new Error('spool journal is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ msgid, bytes, bodyLength, envLength, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Remove a message and its outcome log in the I/O thread; resolves to
   * whether the message was there. The removal is durable at the next
   * checkpoint (a crash before it may bring the message back: a duplicate
   * delivery). A message whose journal record is not checkpointed yet gets
   * a tombstone, so a replay does not bring it back either. `hasLog`
   * false: the caller knows no outcome log was ever started (none is unlinked).
   */
  remove(msgid: string, hasLog = true): Promise<boolean> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new Error('spool journal is closed'));
    const tombstone = this.unchecked.delete(msgid);
    return new Promise((resolve, reject) => {
      this.removals.push({ msgid, tombstone, hasLog, resolve, reject });
      this.schedule();
    });
  }

  /** Flush, checkpoint everything, stop the thread. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      if (this.broken) return resolve();
      this.send();
      this.onClosed = resolve;
      this.worker.ref();
      this.worker.postMessage({ t: 'close' } satisfies ToWorker);
    }).then(() => this.worker.terminate().then(() => undefined));
    return this.closed;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.send();
    });
  }

  private send(): void {
    if (this.removals.length > 0) {
      const r = this.removals;
      this.removals = [];
      const id = this.nextId++;
      this.removing.set(id, r);
      this.worker.ref();
      this.worker.postMessage({ t: 'remove', id, msgids: r.map((x) => x.msgid), tombstone: r.map((x) => x.tombstone), hasLog: r.map((x) => x.hasLog) } satisfies ToWorker);
    }
    if (this.queue.length === 0) return;
    const q = this.queue;
    this.queue = [];
    const id = this.nextId++;
    this.waiting.set(id, { msgids: q.map((x) => x.msgid), settle: q, durable: false });
    for (const x of q) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.writing.set(x.msgid, { promise, resolve });
    }
    this.worker.ref();
    const items = q.map((x) => ({ msgid: x.msgid, bytes: x.bytes, bodyLength: x.bodyLength, envLength: x.envLength }));
    this.worker.postMessage({ t: 'commit', id, items } satisfies ToWorker, q.map((x) => x.bytes.buffer as ArrayBuffer));
  }

  private receive(m: FromWorker): void {
    switch (m.t) {
      case 'done': {
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.batches++;
        if (m.batch) this.o.onBatch?.(m.batch.size, m.batch.syncMs / 1000);
        w.durable = true;
        w.settle.forEach((s, i) => {
          const err = m.errors[i];
          const msgid = w.msgids[i] as string;
          if (err === null || err === undefined) {
            this.unchecked.set(msgid, m.seq);
            s.resolve();
          } else {
            this.visible(msgid);
            s.reject(new Error(err));
          }
        });
        if (m.errors.some((e) => e !== null)) this.waiting.delete(m.id);
        this.maybeUnref();
        return;
      }
      case 'materialized': {
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        for (const b of m.buffers) this.buffers.give(b);
        w.msgids.forEach((msgid, i) => {
          const err = m.errors[i];
          if (err !== null && err !== undefined) this.o.log(`spool: error: message ${msgid} was accepted and is in the journal, but its file could not be written (${err}); it is restored at the next start`);
          this.visible(msgid);
        });
        this.maybeUnref();
        return;
      }
      case 'removed': {
        const r = this.removing.get(m.id);
        if (!r) return;
        this.removing.delete(m.id);
        r.forEach((x, i) => (m.error !== undefined ? x.reject(new Error(m.error)) : x.resolve(m.found[i] === true)));
        this.maybeUnref();
        return;
      }
      case 'checkpoint':
        this.checkpoints++;
        for (const [id, seq] of this.unchecked) if (seq <= m.seq) this.unchecked.delete(id);
        return;
      case 'warning':
        this.o.log(`spool: ${m.message}`);
        return;
      case 'closed':
        this.finished = true;
        this.onClosed?.();
        return;
      case 'ready':
        return;
    }
  }

  /**
   * For a message whose commit resolved but whose file the I/O thread is
   * still writing: a promise that settles once it is in queue/ (readers
   * wait for it). undefined otherwise.
   */
  whenVisible(msgid: string): Promise<void> | undefined {
    return this.writing.get(msgid)?.promise;
  }

  /** Settles once every file of a commit resolved so far is in queue/. */
  allVisible(): Promise<void> {
    return this.writing.size === 0 ? Promise.resolve() : Promise.all([...this.writing.values()].map((w) => w.promise)).then(() => undefined);
  }

  private visible(msgid: string): void {
    const w = this.writing.get(msgid);
    if (!w) return;
    this.writing.delete(msgid);
    w.resolve();
  }

  private maybeUnref(): void {
    if (this.waiting.size === 0 && this.removing.size === 0 && !this.closed) this.worker.unref();
  }

  private fail(e: Error): void {
    if (this.finished) return;
    if (!this.broken) this.o.log(`spool: I/O thread failed: ${e.message}`);
    this.broken ??= e;
    for (const w of this.waiting.values()) if (!w.durable) for (const s of w.settle) s.reject(e);
    this.waiting.clear();
    for (const msgid of [...this.writing.keys()]) this.visible(msgid);
    for (const x of this.queue.splice(0)) x.reject(e);
    for (const r of this.removing.values()) for (const x of r) x.reject(e);
    this.removing.clear();
    for (const x of this.removals.splice(0)) x.reject(e);
    this.onClosed?.();
  }
}
