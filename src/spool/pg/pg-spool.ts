/*
 * spool/pg/pg-spool.ts — the PostgreSQL spool (Spool backend "postgresql"),
 * shared by every node of a cluster (docs/cluster.md).
 *
 * Tables (schema.ts; docs/architecture.md, "The PostgreSQL spool"):
 * postern_message (one row per message: state, envelope as jsonb, size,
 * number of body chunks, lease), postern_body_chunk (the body, as bytea
 * rows of 256 KiB), postern_outcome (append-only per-recipient records).
 *
 * Durability (see spool/spool.ts for the contract):
 *  - createMessage: reserves the msgid (a 'writing' row; asynchronous
 *    commit — nothing to lose).
 *  - Asynchronous writes (reservations, removals) go through a second small
 *    pool whose connections have synchronous_commit off for the session:
 *    one round trip each instead of three (BEGIN + SET LOCAL, the
 *    statement, COMMIT) — each round trip costs the node and the database a
 *    wake-up, which is what a node's CPU per message is mostly made of.
 *  - commit: the last chunks and the 'queued' state in one transaction with
 *    synchronous commit, grouped with every other commit in flight on this
 *    node (committer.ts). Resolves after PostgreSQL's COMMIT returned: the
 *    WAL is flushed (and, with synchronous replication configured on the
 *    server, replicated).
 *  - appendOutcome: one INSERT, synchronous commit.
 *  - remove: DELETE (cascading to chunks and outcomes), asynchronous commit:
 *    after a crash of the database a removed message can come back — a
 *    recipient tried twice at worst.
 *
 * With leases (the daemon; `leases` option), list() claims work for this
 * node and returns only what it holds (lease-keeper.ts); without (the
 * commands, the contract tests), list() returns every committed message.
 *
 * Errors: SpoolError NOT_FOUND / INVALID / STATE / VERSION / CORRUPT; a lost
 * connection passes through as the driver's error (a temporary failure:
 * clients hear 451 4.3.0).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pg from 'pg';
import type { RecipientOutcome } from '../../mail/envelope.js';
import type { MessageWriter, RecoveryReport, Spool, StoredMessage } from '../spool.js';
import { SpoolError } from '../errors.js';
import { checkEnvelope, checkOutcome } from '../fs/envelope-check.js';
import { MsgidAllocator, isEvpid, isMsgid, msgidOf } from '../fs/ids.js';
import { Committer } from './committer.js';
import { LeaseKeeper } from './lease-keeper.js';
import { checkSchema } from './schema.js';
import { isNodeName } from '../../cluster/pg.js';
import { PgMessageWriter } from './writer.js';

export interface PgSpoolOptions {
  /** postgres://… connection string (libpq style; PG* environment variables fill in what it leaves out). */
  readonly url: string;
  /** This node's name in leases and in `smtpctl show cluster` (default: the host name). */
  readonly node: string;
  /** Take leases (a daemon delivering from the shared queue); false for the commands. */
  readonly leases?: { readonly ttlMs?: number; readonly batch?: number; readonly pollMs?: number } | false;
  /** Connections in this node's pool (default 8). */
  readonly poolSize?: number;
  /** Where bodyFile() puts files for outside programs (default: the system's temp folder). */
  readonly tmpDir?: string;
  /** Body bytes a writer keeps in memory before chunks go to the database (default 1 MiB). */
  readonly spillBytes?: number;
  readonly log?: (line: string) => void;
  /** Remove this node's stale reservations at open() (default true). */
  readonly recover?: boolean;
}

/** Counters for measurements. */
export interface PgSpoolStats {
  readonly commits: number;
  readonly batches: number;
  readonly renewals: number;
  readonly held: number;
}

/** Reservations older than this are from writers that died (SMTP's own timeouts are shorter). */
const STALE_RESERVATION = '6 hours';
const DEFAULT_TTL_MS = 30_000;
/** Body chunks read per round trip. */
const CHUNKS_PER_READ = 8;

export class PgSpool implements Spool {
  readonly pool: pg.Pool;
  /** Connections with synchronous_commit off: single statements that may be lost in a database crash (reservations, removals). */
  private readonly asyncPool: pg.Pool;
  readonly node: string;
  /** The leases seam for the scheduler, when this spool takes leases. */
  readonly leases: LeaseKeeper | undefined;
  private readonly committer: Committer;
  private readonly allocator = new MsgidAllocator();
  private readonly live = new Set<PgMessageWriter>();
  private readonly log: (line: string) => void;
  private state: 'new' | 'open' | 'closed' = 'new';

  constructor(private readonly opts: PgSpoolOptions) {
    if (!isNodeName(opts.node)) throw new SpoolError('INVALID', `node name ${JSON.stringify(opts.node)}: letters, digits, ".", "_" and "-" only (at most 64)`);
    this.node = opts.node;
    this.log = opts.log ?? (() => undefined);
    const poolOptions = (max: number, synchronousCommit: 'on' | 'off'): pg.PoolConfig => ({
      connectionString: opts.url,
      max,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      // A database cut off (not refusing: silent) must not hold a session or a lease renewal forever.
      query_timeout: 60_000,
      keepAlive: true,
      // Durable before 250, whatever the server's default (the main pool); the async pool says off.
      options: `-c synchronous_commit=${synchronousCommit}`,
      application_name: `postern ${opts.node}`,
    });
    this.pool = new pg.Pool(poolOptions(opts.poolSize ?? 8, 'on'));
    this.asyncPool = new pg.Pool(poolOptions(Math.max(1, Math.ceil((opts.poolSize ?? 8) / 2)), 'off'));
    // An idle connection dropped by the server (restart, crash) must not kill the process.
    this.pool.on('error', (e) => this.log(`database connection lost: ${e.message}`));
    this.asyncPool.on('error', (e) => this.log(`database connection lost: ${e.message}`));
    const l = opts.leases;
    if (l !== undefined && l !== false) {
      const ttlMs = l.ttlMs ?? DEFAULT_TTL_MS;
      this.leases = new LeaseKeeper(this.pool, { node: opts.node, ttlMs, batch: l.batch ?? 100, pollMs: l.pollMs ?? Math.ceil(ttlMs / 3) }, (line) => this.log(`leases: ${line}`));
    }
    const keeper = this.leases;
    this.committer = new Committer(this.pool, { holder: keeper ? opts.node : null, ttlMs: keeper?.opts.ttlMs ?? 0 }, (msgids) => keeper?.adopt(msgids, performance.now() - 1));
  }

  async open(): Promise<RecoveryReport> {
    if (this.state !== 'new') throw new SpoolError('STATE', `open() of a ${this.state} spool`);
    await checkSchema(this.pool);
    let removedIncomplete = 0;
    if (this.opts.recover ?? true) {
      const r = await this.pool.query(`DELETE FROM postern_message WHERE state = 'writing' AND (origin = $1 OR created < now() - interval '${STALE_RESERVATION}')`, [this.node]);
      removedIncomplete = r.rowCount ?? 0;
    }
    const n = await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM postern_message WHERE state = 'queued'`);
    this.leases?.start();
    this.state = 'open';
    return { messages: Number(n.rows[0]?.n ?? 0), removedIncomplete, corrupt: [] };
  }

  async createMessage(): Promise<MessageWriter> {
    this.ready();
    for (let i = 0; ; i++) {
      const msgid = this.allocator.next();
      const r = await this.asyncPool.query(`INSERT INTO postern_message (msgid, state, origin) VALUES ($1, 'writing', $2) ON CONFLICT DO NOTHING`, [msgid, this.node]);
      if (r.rowCount === 1) {
        return new PgMessageWriter(msgid, { pool: this.pool, committer: this.committer, tmpDir: this.opts.tmpDir ?? join(tmpdir(), `postern-pg-${process.pid}`), spillBytes: this.opts.spillBytes ?? 1024 * 1024, live: this.live });
      }
      if (i > 100) throw new SpoolError('FULL', 'no free msgid found');
    }
  }

  /** The database's disk is not this host's: no number to give (docs/cluster.md); min-free-space does not apply. */
  async freeSpace(): Promise<number> {
    return Number.MAX_SAFE_INTEGER;
  }

  async list(): Promise<string[]> {
    this.ready();
    if (this.leases !== undefined) return this.leases.claim();
    const r = await this.pool.query<{ msgid: string }>(`SELECT msgid FROM postern_message WHERE state = 'queued' ORDER BY created`);
    return r.rows.map((x) => x.msgid);
  }

  async load(msgid: string): Promise<StoredMessage> {
    this.ready();
    this.checkMsgid(msgid);
    // The envelope and its outcome records in one round trip.
    const m = await this.pool.query<{ envelope: unknown; outcomes: [string, unknown][] }>(
      `SELECT envelope, (SELECT coalesce(jsonb_agg(jsonb_build_array(o.evpid, o.outcome) ORDER BY o.id), '[]'::jsonb)
                           FROM postern_outcome o WHERE o.msgid = m.msgid) AS outcomes
         FROM postern_message m WHERE msgid = $1 AND state = 'queued'`,
      [msgid],
    );
    const row = m.rows[0];
    if (row === undefined) throw new SpoolError('NOT_FOUND', `no message ${msgid}`);
    const bad = checkEnvelope(row.envelope, msgid);
    if (bad !== null) throw new SpoolError('CORRUPT', `envelope of ${msgid}: ${bad}`);
    const envelope = row.envelope as StoredMessage['envelope'];
    const outcomes = new Map<string, RecipientOutcome[]>();
    const known = new Set(envelope.recipients.map((r) => r.evpid));
    for (const [evpid, outcome] of row.outcomes) {
      if (!known.has(evpid) || checkOutcome(outcome) !== null) {
        this.log(`spool: ${msgid}: ignored an unreadable outcome record for ${evpid}`);
        continue;
      }
      const list = outcomes.get(evpid) ?? [];
      list.push(outcome as RecipientOutcome);
      outcomes.set(evpid, list);
    }
    return { envelope, outcomes };
  }

  openBody(msgid: string): Readable {
    const pool = this.pool;
    const state = this.state;
    return Readable.from(
      (async function* () {
        if (state !== 'open') throw new SpoolError('STATE', `spool is ${state}`);
        if (!isMsgid(msgid)) throw new SpoolError('INVALID', `not a msgid: ${JSON.stringify(msgid)}`);
        // The head and the first chunks in one round trip (all of a message under 2 MiB).
        const first = await pool.query<{ chunks: number; size: string; seq: number | null; data: Buffer | null }>(
          `SELECT m.chunks, m.size, c.seq, c.data FROM postern_message m
             LEFT JOIN postern_body_chunk c ON c.msgid = m.msgid AND c.seq < $2
            WHERE m.msgid = $1 AND m.state = 'queued' ORDER BY c.seq`,
          [msgid, CHUNKS_PER_READ],
        );
        const head = first.rows[0];
        if (head === undefined) throw new SpoolError('NOT_FOUND', `no message ${msgid}`);
        let seq = 0;
        let bytes = 0;
        let rows: { seq: number | null; data: Buffer | null }[] = first.rows;
        for (;;) {
          for (const row of rows) {
            if (row.seq === null || row.data === null) continue;
            if (row.seq !== seq) throw new SpoolError('CORRUPT', `body of ${msgid}: chunk ${seq} is missing`);
            seq++;
            bytes += row.data.length;
            yield row.data;
          }
          if (seq >= head.chunks || seq % CHUNKS_PER_READ !== 0) break;
          rows = (await pool.query<{ seq: number; data: Buffer }>(`SELECT seq, data FROM postern_body_chunk WHERE msgid = $1 AND seq >= $2 ORDER BY seq LIMIT $3`, [msgid, seq, CHUNKS_PER_READ])).rows;
          if (rows.length === 0) break;
        }
        if (seq !== head.chunks || bytes !== Number(head.size)) throw new SpoolError('CORRUPT', `body of ${msgid}: ${bytes} bytes in ${seq} chunks, the envelope says ${head.size} in ${head.chunks}`);
      })(),
      { objectMode: false },
    );
  }

  async appendOutcome(evpid: string, outcome: RecipientOutcome): Promise<void> {
    this.ready();
    if (!isEvpid(evpid)) throw new SpoolError('INVALID', `not an evpid: ${JSON.stringify(evpid)}`);
    const bad = checkOutcome(outcome);
    if (bad !== null) throw new SpoolError('INVALID', `outcome for ${evpid}: ${bad}`);
    const msgid = msgidOf(evpid);
    const r = await this.pool.query(
      `INSERT INTO postern_outcome (msgid, evpid, outcome) SELECT $1, $2, $3::jsonb WHERE EXISTS (SELECT 1 FROM postern_message WHERE msgid = $1 AND state = 'queued')`,
      [msgid, evpid, JSON.stringify(outcome)],
    );
    if (r.rowCount !== 1) throw new SpoolError('NOT_FOUND', `no message ${msgid}`);
  }

  async remove(msgid: string): Promise<void> {
    this.ready();
    this.checkMsgid(msgid);
    this.leases?.forget(msgid);
    const r = await this.asyncPool.query(`DELETE FROM postern_message WHERE msgid = $1 AND state = 'queued'`, [msgid]);
    if (r.rowCount !== 1) throw new SpoolError('NOT_FOUND', `no message ${msgid}`);
  }

  /** Abort writers that had not started to commit, give the leases back, close the connections. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    await Promise.all([...this.live].map((w) => w.abort().catch(() => undefined)));
    if (wasOpen) await this.leases?.release();
    await Promise.all([this.pool.end().catch(() => undefined), this.asyncPool.end().catch(() => undefined)]);
  }

  stats(): PgSpoolStats {
    return { commits: this.committer.commits, batches: this.committer.batches, renewals: this.leases?.renewals ?? 0, held: this.leases?.holding().length ?? 0 };
  }

  private ready(): void {
    if (this.state !== 'open') throw new SpoolError('STATE', `spool is ${this.state === 'new' ? 'not open' : 'closed'}`);
  }

  private checkMsgid(msgid: string): void {
    if (!isMsgid(msgid)) throw new SpoolError('INVALID', `not a msgid: ${JSON.stringify(msgid)}`);
  }
}
