/*
 * spool/fs/writer.ts — writing one message into the filesystem spool.
 *
 * createWriter() draws a msgid that no message in queue/ and no other
 * writer of this process holds (in-memory claims and index). Body
 * bytes stay in memory up to memoryBufferBytes, and a message that fits
 * is committed through the journal (journal.ts): the whole message file
 * goes to the spool's I/O thread as one buffer, which makes it durable in a
 * shared batch (then commit() resolves) and writes queue/<bb>/<msgid> with
 * O_EXCL. No file is created in this thread at all.
 *
 * A larger message goes to incoming/<msgid> (created with O_EXCL when the
 * first bytes overflow) in batches, and drain() holds the caller back until
 * the buffered bytes are at most memoryBufferBytes again; its commit writes
 * envelope and trailer, fdatasyncs, renames into queue/ and fsyncs the
 * folder (shared with other commits in flight). So does every commit of a
 * spool opened without a journal.
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open, rename, unlink } from 'node:fs/promises';
import { relative } from 'node:path';
import type { Envelope } from '../../mail/envelope.js';
import type { BodyFile, EnvelopeDraft, MessageWriter } from '../spool.js';
import type { DirSyncer } from './dir-sync.js';
import { storedEnvelope } from '../stored-envelope.js';
import { IovCursor } from './iov.js';
import { SpoolError, isErrno } from '../errors.js';
import type { MsgidAllocator } from './ids.js';
import type { Journal } from './journal.js';
import type { Layout } from './layout.js';
import { TRAILER_SIZE, encodeTrailer } from './message-file.js';

export interface WriterContext {
  readonly layout: Layout;
  readonly syncer: DirSyncer;
  readonly allocator: MsgidAllocator;
  readonly memoryBufferBytes: number;
  /** Msgids renamed into queue/ whose folder fsync has not finished (hidden from readers). */
  readonly publishing: Set<string>;
  /** Writers neither committed nor aborted (close() aborts them). */
  readonly live: Set<FsMessageWriter>;
  /** Called once per successful commit (statistics, index). */
  readonly committed: (msgid: string) => void;
  /** Msgids held by writers of this process (not yet committed or aborted). */
  readonly claimed: Set<string>;
  /** Is there a committed message with this msgid? */
  readonly committedId: (msgid: string) => boolean;
  /** Where small messages are committed; undefined: every commit writes its own file. */
  readonly journal: Journal | undefined;
  /** Keeps each journalled body (its pieces, `bytes` in all) for deliveries soon after (body-cache.ts). */
  readonly cacheBody?: (msgid: string, pieces: readonly Buffer[], bytes: number) => void;
}

/** Write all of `bufs` at `position`, resuming after short writes. */
async function writeAll(fh: FileHandle, bufs: readonly Buffer[], position: number): Promise<void> {
  const c = new IovCursor(bufs);
  while (!c.done) {
    const { bytesWritten } = await fh.writev(c.batch(), position);
    c.advance(bytesWritten);
    position += bytesWritten;
  }
}

async function unlinkIfThere(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}

/** Claim a fresh msgid and return a writer for it. */
export function createWriter(ctx: WriterContext): FsMessageWriter {
  for (let attempt = 0; attempt < 64; attempt++) {
    const msgid = ctx.allocator.next();
    // The O_EXCL creates that follow catch any race with another process.
    if (ctx.claimed.has(msgid) || ctx.committedId(msgid)) continue;
    ctx.claimed.add(msgid);
    const w = new FsMessageWriter(ctx, msgid);
    ctx.live.add(w);
    return w;
  }
  throw new SpoolError('STATE', 'could not allocate a free msgid in 64 attempts');
}

type State = 'open' | 'committing' | 'committed' | 'failed' | 'aborted';

export class FsMessageWriter implements MessageWriter {
  private state: State = 'open';
  private fh: FileHandle | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inflightBytes = 0;
  /** Bytes already in the temp file. */
  private fileBytes = 0;
  private bytes = 0;
  /** SHA-256 of the body bytes written to the temp file (the journal path hashes in the I/O thread). */
  private hash: Hash | undefined;
  private flushing: Promise<void> | undefined;
  private error: unknown;
  private drainWaiters: { resolve(): void; reject(err: unknown): void }[] = [];
  private committing: Promise<Envelope> | undefined;
  private aborting: Promise<void> | undefined;
  /** The rename happened (a failed commit must then remove the final file). */
  private published = false;

  constructor(
    private readonly ctx: WriterContext,
    readonly msgid: string,
  ) {}

  /** incoming/<msgid>, created on first use. */
  private async file(): Promise<FileHandle> {
    this.fh ??= await open(this.ctx.layout.incomingPath(this.msgid), 'wx', 0o600);
    return this.fh;
  }

  get size(): number {
    return this.bytes;
  }

  /** Body bytes held in memory (queued or being written). */
  get buffered(): number {
    return this.pendingBytes + this.inflightBytes;
  }

  /** Keeps a reference to `chunk`: do not modify it afterwards. */
  write(chunk: Buffer): void {
    if (this.state !== 'open') throw new SpoolError('STATE', `write to ${this.state} message ${this.msgid}`);
    if (chunk.length === 0) return;
    this.bytes += chunk.length;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes > this.ctx.memoryBufferBytes && this.flushing === undefined && this.error === undefined) {
      this.flushing = this.flush();
    }
  }

  drain(): Promise<void> {
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.buffered <= this.ctx.memoryBufferBytes) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /**
   * The body so far in incoming/<msgid> (relative to the spool root), for
   * an outside program such as ZMailer's content filter. The message then
   * commits by the file path, not through the journal.
   */
  async bodyFile(): Promise<BodyFile> {
    if (this.state !== 'open') throw new SpoolError('STATE', `body of ${this.state} message ${this.msgid}`);
    if (this.flushing !== undefined) await this.flushing;
    if (this.error !== undefined) throw this.error;
    const bufs = this.pending;
    const n = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.hashChunks(bufs);
    await writeAll(await this.file(), bufs, this.fileBytes);
    this.fileBytes += n;
    const root = this.ctx.layout.root;
    return { dir: root, name: relative(root, this.ctx.layout.incomingPath(this.msgid)) };
  }

  commit(envelope: EnvelopeDraft): Promise<Envelope> {
    if (this.state !== 'open') return Promise.reject(new SpoolError('STATE', `commit of ${this.state} message ${this.msgid}`));
    this.state = 'committing';
    this.committing = this.doCommit(envelope).then(
      (env) => {
        this.state = 'committed';
        this.ctx.live.delete(this);
        this.ctx.claimed.delete(this.msgid);
        this.ctx.committed(this.msgid);
        return env;
      },
      (err: unknown) => {
        this.state = 'failed';
        throw err;
      },
    );
    return this.committing;
  }

  abort(): Promise<void> {
    this.aborting ??= this.doAbort();
    return this.aborting;
  }

  /** Write queued bytes while more than memoryBufferBytes are queued. */
  private async flush(): Promise<void> {
    try {
      while (this.pendingBytes > this.ctx.memoryBufferBytes && this.state !== 'aborted') {
        const bufs = this.pending;
        const n = this.pendingBytes;
        this.pending = [];
        this.pendingBytes = 0;
        this.inflightBytes = n;
        this.hashChunks(bufs);
        await writeAll(await this.file(), bufs, this.fileBytes);
        this.fileBytes += n;
        this.inflightBytes = 0;
        this.wakeDrain();
      }
    } catch (err) {
      this.error = err;
      this.pending = [];
      this.pendingBytes = 0;
      this.inflightBytes = 0;
      this.wakeDrain();
    } finally {
      this.flushing = undefined;
    }
  }

  private hashChunks(bufs: readonly Buffer[]): void {
    this.hash ??= createHash('sha256');
    for (const b of bufs) this.hash.update(b);
  }

  private wakeDrain(): void {
    if (this.error === undefined && this.buffered > this.ctx.memoryBufferBytes) return;
    for (const w of this.drainWaiters.splice(0)) {
      if (this.error !== undefined) w.reject(this.error);
      else w.resolve();
    }
  }

  private async doCommit(fields: EnvelopeDraft): Promise<Envelope> {
    if (this.flushing !== undefined) await this.flushing;
    if (this.error !== undefined) throw this.error;
    const { layout, syncer } = this.ctx;
    const { json, envelope } = storedEnvelope(this.msgid, fields, this.bytes);
    const envBytes = Buffer.from(json, 'utf8');
    const bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const journal = this.ctx.journal;
    if (journal !== undefined && this.fh === undefined && this.fileBytes === 0) {
      // Body and envelope in one buffer of its own (from the journal's pool),
      // moved (not copied) to the I/O thread, which hashes the body and fills
      // in the trailer.
      const file = journal.buffers.take(this.bytes + envBytes.length + TRAILER_SIZE);
      let at = 0;
      for (const b of bufs) at += b.copy(file, at);
      envBytes.copy(file, at);
      // Durable when this resolves; readers wait for the file itself (Journal.whenVisible).
      await journal.commit(this.msgid, file, this.bytes, envBytes.length);
      // The body's own pieces stay for deliveries soon after (never written to: see write()).
      this.ctx.cacheBody?.(this.msgid, bufs, this.bytes);
      return envelope as Envelope;
    }
    this.hashChunks(bufs);
    const trailer = encodeTrailer(this.bytes, (this.hash ?? createHash('sha256')).digest(), envBytes);
    const fh = await this.file();
    await writeAll(fh, [...bufs, envBytes, trailer], this.fileBytes);
    await fh.datasync();
    this.fh = undefined;
    await fh.close();
    // Hidden from list()/load() until the folder fsync is done; if that
    // fails it stays hidden until abort() removes the file.
    this.ctx.publishing.add(this.msgid);
    try {
      await rename(layout.incomingPath(this.msgid), layout.messagePath(this.msgid));
    } catch (err) {
      this.ctx.publishing.delete(this.msgid);
      throw err;
    }
    this.published = true;
    await syncer.sync(layout.bucketDir(this.msgid));
    this.ctx.publishing.delete(this.msgid);
    return envelope as Envelope;
  }

  private async doAbort(): Promise<void> {
    if (this.committing !== undefined) await this.committing.catch(() => undefined);
    if (this.state === 'committed') return; // accepted already; remove() is the way out
    this.state = 'aborted';
    this.pending = [];
    this.pendingBytes = 0;
    if (this.flushing !== undefined) await this.flushing;
    const fh = this.fh;
    this.fh = undefined;
    if (fh !== undefined) await fh.close().catch(() => undefined);
    const { layout, syncer } = this.ctx;
    // A leftover in incoming/ is harmless (removed at the next open).
    await unlinkIfThere(layout.incomingPath(this.msgid)).catch(() => undefined);
    if (this.published) {
      // Renamed but not made durable: the client was told to try again, so
      // this copy must not be delivered as well.
      try {
        await unlinkIfThere(layout.messagePath(this.msgid));
        await syncer.sync(layout.bucketDir(this.msgid));
      } finally {
        this.ctx.publishing.delete(this.msgid);
      }
    }
    for (const w of this.drainWaiters.splice(0)) w.reject(new SpoolError('STATE', `message ${this.msgid} aborted`));
    this.ctx.live.delete(this);
    this.ctx.claimed.delete(this.msgid);
  }
}
