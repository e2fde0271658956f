/*
 * spool/pg/writer.ts — one message being written to the PostgreSQL spool.
 *
 * The msgid is reserved at creation (a 'writing' row, committed without
 * waiting for the WAL flush: losing it in a crash loses nothing), so no
 * other node can take it. Body bytes stay in memory up to spillBytes; past
 * that, whole chunks (CHUNK_BYTES) go to postern_body_chunk in the
 * background, also without waiting for a flush — the commit's synchronous
 * WAL flush covers every earlier record, so they are durable when the
 * message is. commit() hands the rest to the group committer
 * (committer.ts). abort() deletes the reservation (and its chunks, by
 * cascade) unless the message was committed.
 *
 * bodyFile() writes the body so far to a file in the spool's tmpDir (for
 * ZMailer's content filter); the file goes with commit or abort.
 */
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool } from 'pg';
import type { Envelope } from '../../mail/envelope.js';
import type { BodyFile, EnvelopeDraft, MessageWriter } from '../spool.js';
import { SpoolError } from '../errors.js';
import { storedEnvelope } from '../stored-envelope.js';
import type { Committer } from './committer.js';
import { insertChunks } from './committer.js';
import { asyncCommit } from '../../cluster/pg.js';

/** Size of one body chunk row. */
export const CHUNK_BYTES = 256 * 1024;

export interface WriterContext {
  readonly pool: Pool;
  readonly committer: Committer;
  readonly tmpDir: string;
  readonly spillBytes: number;
  /** Writers neither committed nor aborted (close() aborts them). */
  readonly live: Set<PgMessageWriter>;
}

type State = 'open' | 'committing' | 'committed' | 'failed' | 'aborted';

export class PgMessageWriter implements MessageWriter {
  size = 0;
  private state: State = 'open';
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Chunks already in the database. */
  private seq = 0;
  private flushing: Promise<void> | undefined;
  private error: unknown;
  private file: { fh: FileHandle; path: string } | undefined;
  private committing: Promise<Envelope> | undefined;

  constructor(
    readonly msgid: string,
    private readonly ctx: WriterContext,
  ) {
    ctx.live.add(this);
  }

  write(chunk: Buffer): void {
    if (this.state !== 'open') throw new SpoolError('STATE', `write to ${this.state} message ${this.msgid}`);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.size += chunk.length;
    if (this.file !== undefined) {
      const { fh } = this.file;
      this.chain(async () => void (await fh.write(chunk)));
    }
    if (this.pendingBytes >= this.ctx.spillBytes) {
      const whole = this.cut(false);
      if (whole.length > 0) {
        const first = this.seq;
        this.seq += whole.length;
        this.chain(() => asyncCommit(this.ctx.pool, (c) => insertChunks(c, whole.map((data, i) => ({ msgid: this.msgid, seq: first + i, data })))));
      }
    }
  }

  async drain(): Promise<void> {
    if (this.flushing !== undefined) await this.flushing;
    if (this.error !== undefined) throw this.error;
  }

  async bodyFile(): Promise<BodyFile> {
    if (this.state !== 'open') throw new SpoolError('STATE', `bodyFile of ${this.state} message ${this.msgid}`);
    await this.drain();
    if (this.file === undefined) {
      await mkdir(this.ctx.tmpDir, { recursive: true, mode: 0o700 });
      const path = join(this.ctx.tmpDir, this.msgid);
      const fh = await open(path, 'wx', 0o600);
      this.file = { fh, path };
      // What is in the database already, then what is in memory.
      const r = await this.ctx.pool.query<{ data: Buffer }>('SELECT data FROM postern_body_chunk WHERE msgid = $1 ORDER BY seq', [this.msgid]);
      for (const row of r.rows) await fh.write(row.data);
      for (const b of this.pending) await fh.write(b);
    }
    await this.drain();
    await this.file.fh.datasync();
    return { dir: this.ctx.tmpDir, name: this.msgid };
  }

  commit(draft: EnvelopeDraft): Promise<Envelope> {
    if (this.state !== 'open') return Promise.reject(new SpoolError('STATE', `commit of ${this.state} message ${this.msgid}`));
    this.state = 'committing';
    this.committing = this.doCommit(draft).then(
      (env) => {
        this.state = 'committed';
        this.ctx.live.delete(this);
        void this.dropFile();
        return env;
      },
      (e: unknown) => {
        this.state = 'failed';
        throw e;
      },
    );
    return this.committing;
  }

  private async doCommit(fields: EnvelopeDraft): Promise<Envelope> {
    await this.drain();
    const { json, envelope } = storedEnvelope(this.msgid, fields, this.size);
    const chunks = this.cut(true);
    await this.ctx.committer.commit({ msgid: this.msgid, envelope: json, size: this.size, chunks, firstSeq: this.seq });
    this.seq += chunks.length;
    return envelope;
  }

  async abort(): Promise<void> {
    if (this.committing !== undefined) await this.committing.catch(() => undefined);
    if (this.state === 'committed' || this.state === 'aborted') return;
    this.state = 'aborted';
    this.ctx.live.delete(this);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.flushing !== undefined) await this.flushing.catch(() => undefined);
    await this.dropFile();
    // Only a reservation: a commit whose answer was lost (connection gone) may have made it 'queued'; that one stays.
    await this.ctx.pool.query(`DELETE FROM postern_message WHERE msgid = $1 AND state = 'writing'`, [this.msgid]);
  }

  /** Whole chunks out of the pending bytes; with `all`, the remainder too. */
  private cut(all: boolean): Buffer[] {
    const out: Buffer[] = [];
    if (this.pendingBytes === 0) return out;
    let buf = Buffer.concat(this.pending, this.pendingBytes);
    while (buf.length >= CHUNK_BYTES) {
      out.push(buf.subarray(0, CHUNK_BYTES));
      buf = buf.subarray(CHUNK_BYTES);
    }
    if (all && buf.length > 0) {
      out.push(buf);
      buf = Buffer.alloc(0);
    }
    this.pending = buf.length > 0 ? [buf] : [];
    this.pendingBytes = buf.length;
    return out;
  }

  private chain(step: () => Promise<void>): void {
    const prev = this.flushing ?? Promise.resolve();
    this.flushing = prev.then(() => (this.error === undefined ? step() : undefined)).catch((e: unknown) => {
      this.error ??= e;
    });
  }

  private async dropFile(): Promise<void> {
    const f = this.file;
    if (f === undefined) return;
    this.file = undefined;
    await f.fh.close().catch(() => undefined);
    await rm(f.path, { force: true });
  }
}
