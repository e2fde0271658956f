/*
 * spool/fs/journal-worker.ts — the spool's I/O thread (worker_threads).
 *
 * It owns the journal segment and does every file operation of a journalled
 * commit with plain synchronous system calls, one batch at a time:
 *
 *   1. append every record that arrived since the last batch (one writev)
 *      and fdatasync the segment: the batch is now durable, and the main
 *      thread is told so (it sends the 250s);
 *   2. write each message file into queue/<bb>/<msgid> (O_EXCL, no fsync:
 *      the journal holds it until the next checkpoint), and tell the main
 *      thread, where readers of those messages wait for it.
 *
 * While a batch is being written, further commits queue up in the message
 * port, so the next batch is larger: group commit without a timer. One
 * thread doing the calls in a row costs a fraction of the CPU that the
 * same calls cost spread over libuv's pool (each of those is a hand-off
 * between threads), and a single fdatasync covers the whole batch.
 *
 * Checkpoint: every checkpointMs (or segmentBytes) the segment is closed and
 * a new one started; `sync -f ROOT` (syncfs(2)) then makes every message
 * file written so far durable, and the old segments are deleted. Where that
 * command is missing or fails, each file is fdatasynced instead.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fdatasyncSync, fsyncSync, openSync, readdirSync, unlinkSync, writeSync, writevSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { SEGMENT_RE, encodeRecordHeader, segmentName } from './journal-format.js';
import { IovCursor } from './iov.js';
import { TRAILER_SIZE, encodeTrailer } from './message-file.js';
import { fsyncPath } from './sync-path.js';

export interface JournalWorkerData {
  readonly root: string;
  readonly journalDir: string;
  readonly queueDir: string;
  readonly segmentBytes: number;
  readonly checkpointMs: number;
  /** For tests: the syncfs command ([] to force the per-file fallback). */
  readonly syncCommand?: readonly string[];
}

/** A message file but for its trailer, which the thread computes into the last TRAILER_SIZE bytes. */
export interface CommitItem {
  readonly msgid: string;
  readonly bytes: Uint8Array;
  readonly bodyLength: number;
  readonly envLength: number;
}

/** main → worker */
export type ToWorker =
  | { readonly t: 'commit'; readonly id: number; readonly items: readonly CommitItem[] }
  /** Unlink each message and its outcome log; tombstone those flagged (durable at the next checkpoint). */
  | { readonly t: 'remove'; readonly id: number; readonly msgids: readonly string[]; readonly tombstone: readonly boolean[]; readonly hasLog: readonly boolean[] }
  | { readonly t: 'close' };

/** worker → main */
export type FromWorker =
  | { readonly t: 'ready' }
  /** The batch is durable (errors: why an item is not). */
  /** `batch`, on the first commit of a batch only: its number of messages and the fdatasync's duration (metrics). */
  | { readonly t: 'done'; readonly id: number; readonly seq: number; readonly errors: readonly (string | null)[]; readonly batch?: { readonly size: number; readonly syncMs: number } }
  /** Its message files are in queue/ (errors: why one is not); the items' buffers come back for reuse. */
  | { readonly t: 'materialized'; readonly id: number; readonly errors: readonly (string | null)[]; readonly buffers: readonly ArrayBuffer[] }
  | { readonly t: 'removed'; readonly id: number; readonly found: readonly boolean[]; readonly error?: string }
  | { readonly t: 'checkpoint'; readonly seq: number }
  | { readonly t: 'warning'; readonly message: string }
  | { readonly t: 'closed' };

function writeAllSync(fd: number, bufs: readonly Uint8Array[]): void {
  const c = new IovCursor(bufs);
  while (!c.done) {
    const batch = c.batch();
    c.advance(batch.length === 1 ? writeSync(fd, batch[0] as Uint8Array) : writevSync(fd, batch));
  }
}

/** Hash the body and write the trailer into the item's last TRAILER_SIZE bytes. */
function fillTrailer(it: CommitItem): void {
  const buf = Buffer.from(it.bytes.buffer, it.bytes.byteOffset, it.bytes.length);
  if (buf.length !== it.bodyLength + it.envLength + TRAILER_SIZE) throw new RangeError(`message ${it.msgid}: lengths do not add up`);
  const bodySum = createHash('sha256').update(buf.subarray(0, it.bodyLength)).digest();
  encodeTrailer(it.bodyLength, bodySum, buf.subarray(it.bodyLength, it.bodyLength + it.envLength)).copy(buf, it.bodyLength + it.envLength);
}

/** Unlink `path`; false if it was not there. */
function unlinkIfThere(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

function messagePath(queueDir: string, msgid: string): string {
  return join(queueDir, msgid.slice(0, 2), msgid);
}

class JournalThread {
  private seq = 0;
  private fd = -1;
  private segBytes = 0;
  private segStarted = 0;
  /** Message files written per open segment (the fallback fsyncs them). */
  private written = new Map<number, string[]>();
  /** Folders a message was removed from since the per-file fallback last ran (it fsyncs them; at most the 256 buckets). */
  private removedFrom = new Set<string>();
  /** Segments holding an acknowledged message whose file could not be written: kept for the next start's replay. */
  private readonly pinned = new Set<number>();
  private readonly dirFd: number;
  private pending: ToWorker[] = [];
  private scheduled = false;
  private checkpointing = false;
  private closing = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly d: JournalWorkerData,
    private readonly post: (m: FromWorker, transfer?: ArrayBuffer[]) => void,
  ) {
    this.dirFd = openSync(d.journalDir, 'r');
    // Continue after any segment this pid left (a pid reused after a crash replayed them already).
    for (const name of readdirSync(d.journalDir)) {
      if (!SEGMENT_RE.test(name) || !name.startsWith(`${process.pid}-`)) continue;
      this.seq = Math.max(this.seq, parseInt(name.slice(name.indexOf('-') + 1, -4), 16));
    }
    this.openSegment();
    this.timer = setInterval(() => this.maybeCheckpoint(), Math.max(50, Math.floor(d.checkpointMs / 2)));
  }

  receive(m: ToWorker): void {
    this.pending.push(m);
    if (!this.scheduled) {
      this.scheduled = true;
      // Let every message already in the port arrive first: they form one batch.
      setImmediate(() => this.runBatch());
    }
  }

  private openSegment(): void {
    this.seq++;
    this.fd = openSync(join(this.d.journalDir, segmentName(process.pid, this.seq)), 'wx', 0o600);
    // The segment's name must be durable before any record in it counts.
    fsyncSync(this.dirFd);
    this.segBytes = 0;
    this.segStarted = 0;
    this.written.set(this.seq, []);
  }

  private runBatch(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    const commits: Extract<ToWorker, { t: 'commit' }>[] = [];
    const removes: Extract<ToWorker, { t: 'remove' }>[] = [];
    const bufs: Uint8Array[] = [];
    let close = false;
    for (const m of batch) {
      if (m.t === 'commit') {
        commits.push(m);
        for (const it of m.items) {
          fillTrailer(it);
          bufs.push(encodeRecordHeader('M', it.msgid, it.bytes.length), it.bytes);
        }
      } else if (m.t === 'remove') {
        removes.push(m);
      } else close = true;
    }
    if (removes.length > 0) this.remove(removes);
    if (bufs.length > 0) {
      let failure: string | undefined;
      let syncMs = 0;
      try {
        syncMs = this.append(bufs);
      } catch (e) {
        failure = `journal: ${(e as Error).message}`;
        this.rotateAfterError();
      }
      const seq = this.seq;
      // Durable: the clients may have their 250s now, while the files are written.
      const size = commits.reduce((n, c) => n + c.items.length, 0);
      commits.forEach((c, i) => this.post({ t: 'done', id: c.id, seq, errors: c.items.map(() => failure ?? null), ...(i === 0 && failure === undefined ? { batch: { size, syncMs } } : {}) }));
      if (failure === undefined) {
        for (const c of commits) {
          const errors = c.items.map((it) => this.materialize(it.msgid, it.bytes));
          // Acknowledged but not in queue/: the journal keeps it, and the next start restores it.
          if (errors.some((e) => e !== null)) this.pinned.add(seq);
          const buffers = c.items.map((it) => it.bytes.buffer as ArrayBuffer);
          this.post({ t: 'materialized', id: c.id, errors, buffers }, buffers);
        }
      }
    }
    if (close) this.close();
    else this.maybeCheckpoint();
  }

  /**
   * Removals: unlink outcome logs and messages and answer; their tombstones
   * go to the segment. Neither gets an fsync of its own: the next batch's
   * fdatasync carries the tombstones, and the next checkpoint the folders
   * (as Postfix and OpenSMTPD unlink a delivered queue file, and nothing
   * more). A crash before then brings the message back: a duplicate
   * delivery, never a loss; and the commits in this thread do not wait
   * behind a folder fsync for every batch of deliveries.
   */
  private remove(removes: readonly Extract<ToWorker, { t: 'remove' }>[]): void {
    const dirs = this.removedFrom;
    const tombs: Uint8Array[] = [];
    const answers = removes.map((r) => {
      try {
        const found = r.msgids.map((msgid, i) => {
          const path = messagePath(this.d.queueDir, msgid);
          // An unlink that finds nothing still costs a path lookup: skipped where no log was ever started.
          if (r.hasLog[i] !== false) unlinkIfThere(`${path}.log`);
          const was = unlinkIfThere(path);
          dirs.add(dirname(path));
          if (r.tombstone[i] === true) tombs.push(encodeRecordHeader('T', msgid, 0));
          return was;
        });
        return { t: 'removed', id: r.id, found } as const;
      } catch (e) {
        return { t: 'removed', id: r.id, found: [], error: (e as Error).message } as const;
      }
    });
    for (const a of answers) this.post(a);
    // A checkpoint is due within checkpointMs, tombstones or not.
    if (this.segStarted === 0) this.segStarted = Date.now();
    if (tombs.length > 0) {
      try {
        writeAllSync(this.fd, tombs);
        for (const b of tombs) this.segBytes += b.length;
      } catch (e) {
        this.post({ t: 'warning', message: `journal: cannot record removals: ${(e as Error).message}` });
      }
    }
  }

  /**
   * After a failed append the segment may end in a torn record, and replay
   * stops at the first one: later records must go to a new segment. The old
   * one stays until a checkpoint covers it.
   */
  private rotateAfterError(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already unusable */
    }
    try {
      this.openSegment();
      this.segStarted = Date.now();
    } catch (e) {
      this.post({ t: 'warning', message: `journal: cannot start a new segment: ${(e as Error).message}` });
    }
  }

  /** Append and fdatasync; returns how long the fdatasync took, in ms. */
  private append(bufs: readonly Uint8Array[]): number {
    writeAllSync(this.fd, bufs);
    const t = performance.now();
    fdatasyncSync(this.fd);
    const syncMs = performance.now() - t;
    if (this.segStarted === 0) this.segStarted = Date.now();
    for (const b of bufs) this.segBytes += b.length;
    return syncMs;
  }

  /** Write the message file; null on success, else why not. */
  private materialize(msgid: string, bytes: Uint8Array): string | null {
    const path = messagePath(this.d.queueDir, msgid);
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (e) {
      return `cannot create ${msgid}: ${(e as Error).message}`;
    }
    try {
      writeAllSync(fd, [bytes]);
    } catch (e) {
      closeSync(fd);
      try {
        unlinkSync(path);
      } catch {
        /* leave it: recovery removes a file without a valid trailer */
      }
      return `cannot write ${msgid}: ${(e as Error).message}`;
    }
    closeSync(fd);
    this.written.get(this.seq)?.push(path);
    return null;
  }

  private maybeCheckpoint(): void {
    if (this.checkpointing || this.closing || this.segStarted === 0) return;
    if (this.segBytes < this.d.segmentBytes && Date.now() - this.segStarted < this.d.checkpointMs) return;
    const upTo = this.seq;
    closeSync(this.fd);
    this.openSegment();
    this.checkpointing = true;
    this.syncfs((ok) => {
      if (!ok) this.fsyncEach(upTo);
      this.dropSegments(upTo);
      this.checkpointing = false;
      this.post({ t: 'checkpoint', seq: upTo });
      this.maybeCheckpoint();
    });
  }

  /** Run syncfs on the spool's filesystem; ok=false when it could not. */
  private syncfs(done: (ok: boolean) => void): void {
    const cmd = this.syncCommand();
    if (cmd.length === 0) return done(false);
    let settled = false;
    const finish = (ok: boolean, why?: string): void => {
      if (settled) return;
      settled = true;
      if (!ok) this.post({ t: 'warning', message: `journal: ${cmd.join(' ')} failed (${why ?? '?'}); fsyncing each message file instead` });
      done(ok);
    };
    try {
      const child = spawn(cmd[0] as string, cmd.slice(1), { stdio: 'ignore' });
      child.on('error', (e) => finish(false, e.message));
      child.on('exit', (code, signal) => finish(code === 0, signal ?? `status ${code}`));
    } catch (e) {
      finish(false, (e as Error).message);
    }
  }

  /** The fallback checkpoint: fdatasync every file written in segments ≤ upTo, then their folders. */
  private fsyncEach(upTo: number): void {
    const dirs = this.removedFrom;
    this.removedFrom = new Set();
    for (const [seq, paths] of this.written) {
      if (seq > upTo) continue;
      for (const p of paths) {
        try {
          fsyncPath(p, true);
          dirs.add(dirname(p));
        } catch {
          /* removed since (delivered): nothing to keep */
        }
      }
    }
    for (const dir of dirs) fsyncPath(dir);
  }

  private dropSegments(upTo: number): void {
    for (const seq of [...this.written.keys()]) {
      if (seq > upTo) continue;
      this.written.delete(seq);
      if (this.pinned.has(seq)) continue;
      try {
        unlinkSync(join(this.d.journalDir, segmentName(process.pid, seq)));
      } catch {
        /* already gone */
      }
    }
    fsyncSync(this.dirFd);
  }

  private close(): void {
    this.closing = true;
    clearInterval(this.timer);
    const finish = (): void => {
      const upTo = this.seq;
      closeSync(this.fd);
      if (!this.syncfsNow()) this.fsyncEach(upTo);
      this.dropSegments(upTo);
      closeSync(this.dirFd);
      this.post({ t: 'closed' });
    };
    if (!this.checkpointing) return finish();
    // Let the checkpoint in flight end first.
    const wait = setInterval(() => {
      if (this.checkpointing) return;
      clearInterval(wait);
      finish();
    }, 5);
  }

  /** syncfs, waiting for it (at close); false when it could not run. */
  private syncfsNow(): boolean {
    const cmd = this.syncCommand();
    if (cmd.length === 0) return false;
    const r = spawnSync(cmd[0] as string, cmd.slice(1), { stdio: 'ignore', timeout: 60_000 });
    return r.status === 0;
  }

  private syncCommand(): readonly string[] {
    return this.d.syncCommand ?? [existsSync('/bin/sync') ? '/bin/sync' : 'sync', '-f', this.d.root];
  }
}

if (parentPort !== null) {
  const port = parentPort;
  const thread = new JournalThread(workerData as JournalWorkerData, (m, transfer) => port.postMessage(m, transfer));
  port.on('message', (m: ToWorker) => thread.receive(m));
  port.postMessage({ t: 'ready' } satisfies FromWorker);
}
