/*
 * spool/pg/lease-keeper.ts — this node's leases on messages of the shared
 * spool (the Leases seam of spool/leases.ts; docs/cluster.md).
 *
 * A lease is two columns of postern_message: lease_holder (a node name)
 * and lease_until (the database's clock, so the nodes' clocks never
 * matter). A node holds what it committed itself (the committer sets the
 * lease in the commit) and what claim() took: at most `batch` messages per
 * call whose lease is missing or expired, picked with FOR UPDATE SKIP
 * LOCKED so that nodes claiming at once never wait for, nor take, the same
 * rows. Every renewMs, renew() extends all of this node's leases in one
 * UPDATE; a message that is no longer this node's (another node took it
 * after it expired, or removed it) is reported lost.
 *
 * Each renewal is also a heartbeat (postern_node): nodes() counts the nodes
 * seen within a lease time, so that each takes its share of the
 * per-destination limits.
 *
 * fresh() is this node's own view, on its own monotonic clock: true until
 * ttl − margin after the start of the last renewal that succeeded. The
 * margin (a quarter of the ttl) covers the time a query takes to arrive;
 * so a node cut off from the database stops starting deliveries before any
 * other node can take its messages. Deliveries already running then
 * finish: those are the duplicates at-least-once allows.
 */
import type { Pool } from 'pg';
import type { Leases } from '../leases.js';

export interface LeaseOptions {
  readonly node: string;
  /** Lease lifetime, ms (default 30 s). */
  readonly ttlMs: number;
  /** Messages claimed per list() at most (default 100). */
  readonly batch: number;
  /** How often the scheduler claims more work, ms (default ttl / 3). */
  readonly pollMs: number;
}

export class LeaseKeeper implements Leases {
  readonly pollMs: number;
  /** Msgids this node holds, and when (its monotonic clock) it got each. */
  private readonly held = new Map<string, number>();
  private validUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private readonly lost: ((msgids: readonly string[]) => void)[] = [];
  /** Successful renewals and claims, for measurements. */
  renewals = 0;
  /** Nodes alive at the last heartbeat (this one included). */
  private alive = 1;

  constructor(
    private readonly pool: Pool,
    readonly opts: LeaseOptions,
    private readonly log: (line: string) => void,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.pollMs = opts.pollMs;
  }

  fresh(): boolean {
    return this.clock() < this.validUntil;
  }

  onLost(fn: (msgids: readonly string[]) => void): void {
    this.lost.push(fn);
  }

  nodes(): number {
    return this.alive;
  }

  /** Msgids this node holds now. */
  holding(): string[] {
    return [...this.held.keys()];
  }

  /** Renewals start; the first runs now. */
  start(): void {
    this.validUntil = this.clock() + this.opts.ttlMs * 0.75;
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.opts.ttlMs / 3)));
    this.timer.unref();
  }

  /** This node committed these (the commit took their leases). */
  adopt(msgids: readonly string[], since: number): void {
    for (const m of msgids) this.held.set(m, since);
  }

  forget(msgid: string): void {
    this.held.delete(msgid);
  }

  /** Take up to `batch` messages nobody holds (or whose lease expired); returns every msgid this node holds. */
  async claim(): Promise<string[]> {
    const t0 = this.clock();
    const { node, ttlMs, batch } = this.opts;
    const r = await this.pool.query<{ msgid: string }>(
      `UPDATE postern_message SET lease_holder = $1, lease_until = now() + $2::bigint * interval '1 millisecond'
        WHERE msgid IN (SELECT msgid FROM postern_message
                         WHERE state = 'queued' AND (lease_until IS NULL OR lease_until < now())
                         ORDER BY lease_until NULLS FIRST, created LIMIT $3 FOR UPDATE SKIP LOCKED)
        RETURNING msgid`,
      [node, ttlMs, batch],
    );
    for (const row of r.rows) this.held.set(row.msgid, t0);
    if (r.rows.length > 0) this.log(`claimed ${r.rows.length} message(s)`);
    return this.holding();
  }

  /** Extend every lease of this node; report those it no longer holds. */
  renew(): Promise<void> {
    this.renewing ??= this.doRenew().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  private async doRenew(): Promise<void> {
    const t0 = this.clock();
    const { node, ttlMs } = this.opts;
    let rows: { msgid: string }[];
    try {
      rows = (
        await this.pool.query<{ msgid: string }>(
          `UPDATE postern_message SET lease_until = now() + $2::bigint * interval '1 millisecond'
            WHERE lease_holder = $1 AND state = 'queued' RETURNING msgid`,
          [node, ttlMs],
        )
      ).rows;
    } catch (e) {
      if (this.fresh()) this.log(`cannot renew leases: ${(e as Error).message}`);
      else this.log(`leases not renewed for ${Math.round(this.clock() - this.validUntil + ttlMs * 0.75)} ms: no new deliveries start`);
      return;
    }
    this.renewals++;
    this.validUntil = t0 + ttlMs * 0.75;
    await this.heartbeat().catch((e: unknown) => this.log(`heartbeat: ${(e as Error).message}`));
    const still = new Set(rows.map((r) => r.msgid));
    const gone: string[] = [];
    for (const [m, since] of this.held) {
      if (!still.has(m) && since < t0) {
        gone.push(m);
        this.held.delete(m);
      }
    }
    for (const m of still) if (!this.held.has(m)) this.held.set(m, t0);
    if (gone.length > 0) {
      this.log(`${gone.length} lease(s) lost to another node`);
      for (const fn of this.lost) fn(gone);
    }
  }

  /** This node is alive; how many are (seen within a lease time). */
  private async heartbeat(): Promise<void> {
    const { node, ttlMs } = this.opts;
    await this.pool.query('INSERT INTO postern_node (name, seen) VALUES ($1, now()) ON CONFLICT (name) DO UPDATE SET seen = now()', [node]);
    const r = await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM postern_node WHERE seen > now() - $1::bigint * interval '1 millisecond'`, [ttlMs]);
    this.alive = Math.max(1, Number(r.rows[0]?.n ?? 1));
  }

  /** Give every lease back (a clean stop), so other nodes take over at once. */
  async release(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.renewing?.catch(() => undefined);
    this.validUntil = 0;
    await this.pool.query(`UPDATE postern_message SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = $1`, [this.opts.node]).catch((e: unknown) => this.log(`cannot release leases: ${(e as Error).message}`));
    await this.pool.query('DELETE FROM postern_node WHERE name = $1', [this.opts.node]).catch(() => undefined);
    this.held.clear();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
