/*
 * spool/pg/committer.ts — group commit for the PostgreSQL spool.
 *
 * Every message committed while a batch is being written waits for the
 * next batch; a batch is one transaction with synchronous commit: the last
 * body chunks of every message in it, then one UPDATE that turns their
 * reservations ('writing') into 'queued' rows with their envelopes (and,
 * with leases, this node's lease). So a loaded node pays one WAL flush for
 * many messages, as the file spool's journal pays one fdatasync. Across
 * nodes, PostgreSQL shares WAL flushes between concurrent commits itself.
 *
 * A batch that fails for a reason tied to one message (a reservation
 * removed meanwhile) is retried one message at a time, so one bad message
 * never fails the others. A lost connection fails the batch: its clients
 * hear 451 and send again; a commit that did reach the database is then
 * delivered twice at worst, never lost.
 */
import type { Pool, PoolClient } from 'pg';
import { SpoolError } from '../errors.js';
import { checkout } from '../../cluster/pg.js';

export interface CommitJob {
  readonly msgid: string;
  /** The envelope as JSON text (checked by the writer). */
  readonly envelope: string;
  readonly size: number;
  /** Body chunks not yet in the database, and the seq of the first. */
  readonly chunks: readonly Buffer[];
  readonly firstSeq: number;
}

interface Waiting {
  readonly job: CommitJob;
  resolve(): void;
  reject(e: unknown): void;
}

/** At most this many messages, and about this many body bytes, per batch. */
const MAX_BATCH = 256;
const MAX_BATCH_BYTES = 8 * 1024 * 1024;
/** Parameters per INSERT of chunk rows (PostgreSQL allows 65,535). */
const MAX_ROWS_PER_INSERT = 1000;

export interface Lease {
  /** This node's name, when it takes a lease on what it commits; null: no lease. */
  readonly holder: string | null;
  readonly ttlMs: number;
}

export class Committer {
  private queue: Waiting[] = [];
  private running = false;
  /** Counters for measurements. */
  batches = 0;
  commits = 0;

  constructor(
    private readonly pool: Pool,
    private readonly lease: Lease,
    /** Called once a batch is durable, with the msgids in it. */
    private readonly committed: (msgids: readonly string[]) => void,
  ) {}

  commit(job: CommitJob): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.take();
        try {
          await this.write(batch.map((w) => w.job));
          this.done(batch);
        } catch (e) {
          if (batch.length > 1 && isSpoolError(e)) {
            for (const w of batch) {
              try {
                await this.write([w.job]);
                this.done([w]);
              } catch (e1) {
                w.reject(e1);
              }
            }
          } else {
            for (const w of batch) w.reject(e);
          }
        }
      }
    } finally {
      this.running = false;
    }
  }

  private done(batch: readonly Waiting[]): void {
    this.batches++;
    this.commits += batch.length;
    this.committed(batch.map((w) => w.job.msgid));
    for (const w of batch) w.resolve();
  }

  private take(): Waiting[] {
    const out: Waiting[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && out.length < MAX_BATCH) {
      const next = this.queue[0] as Waiting;
      const b = next.job.chunks.reduce((n, c) => n + c.length, 0);
      if (out.length > 0 && bytes + b > MAX_BATCH_BYTES) break;
      out.push(next);
      this.queue.shift();
      bytes += b;
    }
    return out;
  }

  private async write(jobs: readonly CommitJob[]): Promise<void> {
    const client = await checkout(this.pool);
    let broken = false;
    try {
      await client.query('BEGIN');
      await insertChunks(client, jobs.flatMap((j) => j.chunks.map((data, i) => ({ msgid: j.msgid, seq: j.firstSeq + i, data }))));
      const r = await client.query<{ msgid: string }>(
        `UPDATE postern_message AS m
            SET state = 'queued', envelope = v.env::jsonb, size = v.size, chunks = v.chunks,
                lease_holder = $1::text,
                lease_until = CASE WHEN $1::text IS NULL THEN NULL ELSE now() + $2::bigint * interval '1 millisecond' END
           FROM unnest($3::text[], $4::text[], $5::bigint[], $6::integer[]) AS v(msgid, env, size, chunks)
          WHERE m.msgid = v.msgid AND m.state = 'writing'
      RETURNING m.msgid`,
        [this.lease.holder, this.lease.ttlMs, jobs.map((j) => j.msgid), jobs.map((j) => j.envelope), jobs.map((j) => j.size), jobs.map((j) => j.firstSeq + j.chunks.length)],
      );
      if (r.rows.length !== jobs.length) {
        await client.query('ROLLBACK');
        const got = new Set(r.rows.map((x) => x.msgid));
        const lost = jobs.filter((j) => !got.has(j.msgid)).map((j) => j.msgid);
        throw new SpoolError('STATE', `reservation of ${lost.join(', ')} is gone (removed as stale?)`);
      }
      await client.query('COMMIT');
    } catch (e) {
      if (!(e instanceof SpoolError)) {
        broken = true;
        await client.query('ROLLBACK').catch(() => undefined);
      }
      throw e;
    } finally {
      client.release(broken);
    }
  }
}

function isSpoolError(e: unknown): boolean {
  return e instanceof SpoolError || (typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string' && /^23/.test((e as { code: string }).code));
}

/** Insert body chunk rows, at most MAX_ROWS_PER_INSERT per statement (bytea sent as binary parameters). */
export async function insertChunks(client: PoolClient, rows: readonly { msgid: string; seq: number; data: Buffer }[]): Promise<void> {
  for (let i = 0; i < rows.length; i += MAX_ROWS_PER_INSERT) {
    const part = rows.slice(i, i + MAX_ROWS_PER_INSERT);
    const values: unknown[] = [];
    const tuples = part.map((r, k) => {
      values.push(r.msgid, r.seq, r.data);
      return `($${3 * k + 1}, $${3 * k + 2}, $${3 * k + 3})`;
    });
    await client.query(`INSERT INTO postern_body_chunk (msgid, seq, data) VALUES ${tuples.join(', ')}`, values);
  }
}
