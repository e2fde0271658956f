/*
 * spool/fs/fs-spool.ts — the filesystem spool (Spool backend "fs").
 *
 * One file per message, queue/<bb>/<msgid>: the body as received, then the
 * envelope as one JSON document, then a fixed 88-byte trailer with magic,
 * lengths and SHA-256 checksums (format in message-file.ts and
 * docs/spool-format.md). Per-recipient outcomes go to queue/<bb>/<msgid>.log,
 * one self-checking line per record (outcome-log.ts). Layout in layout.ts.
 *
 * Durability (see spool/spool.ts for the contract):
 *  - commit of a message that fits in memory (the usual case): the whole
 *    file is appended to the journal by the spool's I/O thread, in a batch
 *    with every other commit in flight and one fdatasync, then written to
 *    queue/<bb>/ (journal.ts, journal-worker.ts). Only then does commit()
 *    resolve. The journal keeps it until a checkpoint (syncfs, about once a
 *    second) has made the file itself durable; after a crash, open()
 *    replays what the journal holds (journal-replay.ts).
 *  - commit of a larger message, or with the journal off: body + envelope +
 *    trailer written to incoming/, fdatasync, close, rename to queue/<bb>/,
 *    fsync of queue/<bb>/ shared with every other commit in flight
 *    (dir-sync.ts).
 *  - appendOutcome: append, fdatasync (and a folder fsync for a new log);
 *    records for one message arriving together share the write and sync.
 *  - remove: unlink the log, then the message, then fsync the folder (in
 *    the I/O thread, batched, when there is a journal); a crash in between
 *    leaves the message with no outcomes, so at worst a recipient is tried
 *    twice, never forgotten.
 *
 * Several processes may read one spool: every read goes to disk (there is
 * no in-memory index); another process sees a journalled message once the
 * owner's I/O thread has written its file, a moment after its commit. Only one of them may run recovery (open() with
 * recover: true, the default) and write through a journal; the rest open
 * with recover: false (no journal). Msgids are drawn against the queue and
 * this process's writers, and every file is created with O_EXCL, so a
 * collision with another process fails a commit rather than replacing a
 * message.
 *
 * Diagnostics: opts.log gets one line per file removed or moved at open and
 * per damaged outcome record met by load(). Errors the spool raises on
 * purpose are SpoolError (NOT_FOUND, CORRUPT, VERSION, INVALID, STATE).
 */
import { existsSync } from 'node:fs';
import { lstat, readFile, readdir, statfs, unlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import type { RecipientOutcome } from '../../mail/envelope.js';
import type { MessageWriter, RecoveryReport, Spool, StoredMessage } from '../spool.js';
import { DirSyncer } from './dir-sync.js';
import { SpoolError, isErrno } from '../errors.js';
import { MsgidAllocator, isMsgid, msgidOf } from './ids.js';
import { Layout } from './layout.js';
import { bodyStream, readHeadAt } from './message-file.js';
import { BodyCache } from './body-cache.js';
import { wholeBodyStream } from '../whole-body.js';
import { Journal } from './journal.js';
import { replayJournal } from './journal-replay.js';
import { LogAppender, encodeRecord, parseLog } from './outcome-log.js';
import { moveToCorrupt, prepare, recover } from './recovery.js';
import { fsyncPath } from './sync-path.js';
import { createWriter, type FsMessageWriter } from './writer.js';

/** At most this many msgids in FsSpool.noLog (about 6 MB). */
const NO_LOG_MAX = 100_000;

export { SpoolError } from '../errors.js';
export type { SpoolErrorCode } from '../errors.js';
export { newEvpid } from './ids.js';

export interface FsSpoolOptions {
  /** Spool folder, created (mode 0700) if missing. */
  root: string;
  /**
   * Window to share folder fsyncs between concurrent commits. 0 (default):
   * share only among commits already waiting while an fsync runs; N > 0:
   * wait up to N ms after the first commit to gather more.
   */
  groupCommitMs?: number;
  /** Called for each journal batch: its number of commits and its fdatasync's duration (metrics). */
  onBatch?: (size: number, fsyncSeconds: number) => void;
  /**
   * Body bytes kept in memory before they go to the temp file (default
   * 256 KiB). A message no larger is committed through the journal.
   */
  memoryBufferBytes?: number;
  /**
   * Commit small messages through the journal (default: the same as
   * recover — only the process that owns the spool writes one). false:
   * every commit fsyncs its own file and folder.
   */
  journal?: boolean | { readonly checkpointMs?: number; readonly segmentBytes?: number; readonly syncCommand?: readonly string[] };
  /** One line per notable event (corrupt file moved, incomplete removed). */
  log?: (line: string) => void;
  /**
   * Clean incoming/ and validate queue/ at open() (default true). Exactly
   * one process sharing a spool may do this, before the others write.
   */
  recover?: boolean;
  /**
   * Validate every message file at open() (default true). false (the
   * daemon): open() only lists queue/ — a million messages open in
   * seconds — and each file is validated when load() first reads it; a
   * corrupt one is moved to corrupt/ then, and load() fails with CORRUPT.
   * list() then answers from the msgids this process keeps (it must be the
   * only one that writes to the queue, as the daemon is).
   */
  checkAtOpen?: boolean;
}

/** Counters for measurements and `smtpctl show stats`. */
export interface FsSpoolStats {
  readonly commits: number;
  readonly dirFsyncs: number;
  /** Journal batches written (each one fdatasync), and checkpoints done. */
  readonly journalBatches: number;
  readonly checkpoints: number;
  /** Bytes of commit buffers back from the I/O thread, held for reuse. */
  readonly pooledBytes: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/** Unlink `path`; false if it was not there. */
async function unlinkIfThere(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

export class FsSpool implements Spool {
  private readonly layout: Layout;
  private readonly syncer: DirSyncer;
  private readonly allocator = new MsgidAllocator();
  private readonly memoryBufferBytes: number;
  private readonly log: (line: string) => void;
  private readonly onBatch: ((size: number, fsyncSeconds: number) => void) | undefined;
  private readonly recover: boolean;
  private readonly checkAtOpen: boolean;
  private state: 'new' | 'open' | 'closed' = 'new';
  private commits = 0;
  /** Renamed into queue/ but folder fsync not done: not committed yet, so hidden. */
  private readonly publishing = new Set<string>();
  private readonly live = new Set<FsMessageWriter>();
  private readonly claimed = new Set<string>();
  private readonly appender = new LogAppender();
  private readonly journalOpts: Exclude<FsSpoolOptions['journal'], boolean> | undefined;
  private journal: Journal | undefined;
  /**
   * Msgids in queue/, kept by the process that owns the spool (recover:
   * true) so that drawing a msgid costs no system call; others ask the disk.
   */
  private known: Set<string> | undefined;
  /**
   * Messages this process committed and never started an outcome log for
   * (the owner only, at most NO_LOG_MAX): removing one unlinks no `.log`.
   * Past the bound, or for a message committed before the start, the unlink
   * is tried as before; an outcome log left without its message (written by
   * another process meanwhile) is removed by recovery at the next start.
   */
  private readonly noLog = new Set<string>();
  /** Bodies of messages committed lately (with the journal only). */
  private readonly bodies = new BodyCache(8 * 1024 * 1024);

  constructor(opts: FsSpoolOptions) {
    const groupCommitMs = opts.groupCommitMs ?? 0;
    const memoryBufferBytes = opts.memoryBufferBytes ?? 256 * 1024;
    if (!(groupCommitMs >= 0) || !Number.isFinite(groupCommitMs)) throw new RangeError('groupCommitMs must be >= 0');
    if (!Number.isSafeInteger(memoryBufferBytes) || memoryBufferBytes < 0) throw new RangeError('memoryBufferBytes must be an integer >= 0');
    this.layout = new Layout(opts.root);
    this.syncer = new DirSyncer(groupCommitMs);
    this.memoryBufferBytes = memoryBufferBytes;
    this.log = opts.log ?? (() => undefined);
    this.onBatch = opts.onBatch;
    this.recover = opts.recover ?? true;
    this.checkAtOpen = opts.checkAtOpen ?? true;
    const j = opts.journal ?? this.recover;
    this.journalOpts = j === false ? undefined : j === true ? {} : j;
  }

  async open(): Promise<RecoveryReport> {
    if (this.state !== 'new') throw new SpoolError('STATE', `open() of a ${this.state} spool`);
    prepare(this.layout, this.log);
    // The journal first: it may restore files that recovery then checks.
    if (this.recover) replayJournal(this.layout, this.log);
    let report: RecoveryReport = { messages: 0, removedIncomplete: 0, corrupt: [] };
    if (this.recover) {
      const { msgids, ...rest } = await recover(this.layout, this.log, this.checkAtOpen);
      report = rest;
      this.known = new Set(msgids);
    }
    if (this.journalOpts !== undefined) {
      this.journal = await Journal.start({ root: this.layout.root, journalDir: this.layout.journal, queueDir: this.layout.queue, log: this.log, ...(this.onBatch ? { onBatch: this.onBatch } : {}), ...this.journalOpts });
    }
    this.state = 'open';
    return report;
  }

  async createMessage(): Promise<MessageWriter> {
    this.ready();
    return createWriter({
      layout: this.layout,
      syncer: this.syncer,
      allocator: this.allocator,
      memoryBufferBytes: this.memoryBufferBytes,
      publishing: this.publishing,
      live: this.live,
      committed: (msgid) => {
        this.commits++;
        this.known?.add(msgid);
        if (this.known !== undefined && this.noLog.size < NO_LOG_MAX) this.noLog.add(msgid);
      },
      committedId: (msgid) => (this.known ? this.known.has(msgid) : existsSync(this.layout.messagePath(msgid))),
      claimed: this.claimed,
      journal: this.journal,
      ...(this.journal ? { cacheBody: (msgid: string, pieces: readonly Buffer[], bytes: number) => this.bodies.put(msgid, pieces, bytes) } : {}),
    });
  }

  async freeSpace(): Promise<number> {
    const s = await statfs(this.layout.root);
    return s.bavail * s.bsize;
  }

  async list(): Promise<string[]> {
    this.ready();
    // Every message committed so far is listed, including those whose files the I/O thread is writing.
    await this.journal?.allVisible();
    // The daemon (checkAtOpen false: it alone writes this queue) lists from the msgids it keeps, not a million names again.
    if (!this.checkAtOpen && this.known !== undefined) return [...this.known].filter((n) => !this.publishing.has(n));
    return this.scanQueue();
  }

  /** Msgids in queue/, but for those still hidden (renamed, folder fsync pending). */
  private async scanQueue(): Promise<string[]> {
    const names = await Promise.all(
      Layout.buckets().map((b) =>
        readdir(join(this.layout.queue, b)).catch((err: unknown) => {
          if (isErrno(err, 'ENOENT')) return [] as string[];
          throw err;
        }),
      ),
    );
    return names.flat().filter((n) => isMsgid(n) && !this.publishing.has(n));
  }

  async load(msgid: string): Promise<StoredMessage> {
    this.ready();
    this.checkMsgid(msgid);
    await this.journal?.whenVisible(msgid);
    if (this.publishing.has(msgid)) throw new SpoolError('NOT_FOUND', `no message ${msgid}`);
    const head = await readHeadAt(this.layout.messagePath(msgid), msgid).catch((err: unknown) => {
      if (!this.checkAtOpen && err instanceof SpoolError && err.code === 'CORRUPT') this.setAside(msgid, err.message);
      throw err;
    });
    let data: Buffer;
    try {
      data = await readFile(this.layout.logPath(msgid));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      data = Buffer.alloc(0);
    }
    const parsed = parseLog(data);
    if (parsed.bad > 0) this.log(`spool: ${msgid}.log: skipped ${parsed.bad} unreadable outcome record(s) (torn by a crash, or damaged)`);
    const outcomes = new Map<string, RecipientOutcome[]>();
    for (const r of head.envelope.recipients) outcomes.set(r.evpid, []);
    let stray = 0;
    for (const rec of parsed.records) {
      const list = outcomes.get(rec.evpid);
      if (list === undefined) stray++;
      else list.push(rec.outcome);
    }
    if (stray > 0) this.log(`spool: ${msgid}.log: ignored ${stray} record(s) for unknown evpids`);
    for (const [evpid, list] of outcomes) if (list.length === 0) outcomes.delete(evpid);
    return { envelope: head.envelope, outcomes };
  }

  openBody(msgid: string): Readable {
    const cached = this.state === 'open' ? this.bodies.get(msgid) : undefined;
    if (cached !== undefined) return wholeBodyStream(cached);
    const writing = this.journal?.whenVisible(msgid);
    if (writing !== undefined) {
      // Committed a moment ago; its file is being written by the I/O thread.
      return Readable.from(
        (async function* (spool: FsSpool) {
          await writing;
          yield* spool.openBody(msgid);
        })(this),
        { objectMode: false },
      );
    }
    if (this.state !== 'open' || !isMsgid(msgid) || this.publishing.has(msgid)) {
      const err =
        this.state !== 'open'
          ? new SpoolError('STATE', `spool is ${this.state}`)
          : isMsgid(msgid)
            ? new SpoolError('NOT_FOUND', `no message ${msgid}`)
            : new SpoolError('INVALID', `not a msgid: ${JSON.stringify(msgid)}`);
      return new Readable({ read() { this.destroy(err); } });
    }
    return bodyStream(this.layout.messagePath(msgid), msgid);
  }

  async appendOutcome(evpid: string, outcome: RecipientOutcome): Promise<void> {
    this.ready();
    const line = encodeRecord(evpid, outcome);
    const msgid = msgidOf(evpid);
    this.noLog.delete(msgid);
    await this.journal?.whenVisible(msgid);
    const logPath = this.layout.logPath(msgid);
    await this.appender.append(logPath, line, async () => {
      // A new log: make sure its message exists, then make its name durable.
      if (this.publishing.has(msgid) || !(await exists(this.layout.messagePath(msgid)))) {
        await unlink(logPath).catch(() => undefined);
        throw new SpoolError('NOT_FOUND', `no message ${msgid}`);
      }
      await this.syncer.sync(this.layout.bucketDir(msgid));
    });
  }

  async remove(msgid: string): Promise<void> {
    this.ready();
    this.checkMsgid(msgid);
    if (this.publishing.has(msgid)) throw new SpoolError('NOT_FOUND', `no message ${msgid}`);
    let found: boolean;
    const hasLog = !this.noLog.delete(msgid);
    if (this.journal !== undefined) {
      found = await this.journal.remove(msgid, hasLog);
    } else {
      if (hasLog) await unlinkIfThere(this.layout.logPath(msgid));
      found = await unlinkIfThere(this.layout.messagePath(msgid));
      await this.syncer.sync(this.layout.bucketDir(msgid));
    }
    this.known?.delete(msgid);
    this.bodies.delete(msgid);
    if (!found) throw new SpoolError('NOT_FOUND', `no message ${msgid}`);
  }

  /**
   * Refuse new work, let commits in flight finish, abort writers that had
   * not started to commit, then close the folder handles.
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    await Promise.all([...this.live].map((w) => w.abort().catch(() => undefined)));
    await this.journal?.close();
    await this.syncer.close();
  }

  stats(): FsSpoolStats {
    return { commits: this.commits, dirFsyncs: this.syncer.fsyncs, journalBatches: this.journal?.batches ?? 0, checkpoints: this.journal?.checkpoints ?? 0, pooledBytes: this.journal?.buffers.size ?? 0 };
  }

  /** A message found corrupt at its first load (checkAtOpen false): it and its log go to corrupt/, as open() would have done. */
  private setAside(msgid: string, reason: string): void {
    const path = this.layout.messagePath(msgid);
    try {
      const target = moveToCorrupt(this.layout, path);
      if (existsSync(this.layout.logPath(msgid))) moveToCorrupt(this.layout, this.layout.logPath(msgid));
      fsyncPath(this.layout.bucketDir(msgid));
      fsyncPath(this.layout.corrupt);
      this.known?.delete(msgid);
      this.log(`spool: moved ${relative(this.layout.root, path)} to ${relative(this.layout.root, target)}: ${reason}`);
    } catch (err) {
      this.log(`spool: warning: cannot move corrupt ${relative(this.layout.root, path)} aside: ${(err as Error).message}`);
    }
  }

  private ready(): void {
    if (this.state !== 'open') throw new SpoolError('STATE', `spool is ${this.state === 'new' ? 'not open' : 'closed'}`);
  }

  private checkMsgid(msgid: string): void {
    if (!isMsgid(msgid)) throw new SpoolError('INVALID', `not a msgid: ${JSON.stringify(msgid)}`);
  }
}
