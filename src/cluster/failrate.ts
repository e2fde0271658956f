/*
 * cluster/failrate.ts — failed AUTH attempts counted across the nodes of a
 * cluster (docs/cluster.md, "Shared policy state"), behind the same small
 * interface the session uses on one node (auth/failrate.ts: allowed,
 * fail), so the session never knows which it has.
 *
 * Each node keeps its own FailRate (the limit always holds per node), and
 * once a second adds its new failures to postern_counter (one row per
 * address and minute: an upsert that adds) and reads back the addresses
 * whose failures over the window, on all nodes together, reached the
 * limit. allowed() is false for those too. A client throttled on one node
 * is throttled on all within about a second.
 *
 * When the database is away: failures wait in memory (at most MAX_PENDING
 * addresses; more are counted locally only) and the last list of
 * throttled addresses stays in force; the per-node limit holds as on a
 * single node. Nothing is ever refused because the database is away.
 */
import type { Pool } from 'pg';
import { FailRate } from '../auth/failrate.js';
import { Periodic } from './periodic.js';

const MAX_PENDING = 10_000;

export interface ClusterFailRateOptions {
  readonly pool: Pool;
  readonly limit: number;
  /** Window in ms (default one hour, as FailRate's). */
  readonly windowMs?: number;
  /** How often to share, ms (default 1 s). */
  readonly syncMs?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
}

/** Add `n` to `key` in a bounded map of counts (past `max` keys, new keys are not kept). */
export function addBounded(m: Map<string, number>, key: string, n: number, max = MAX_PENDING): void {
  if (m.has(key) || m.size < max) m.set(key, (m.get(key) ?? 0) + n);
}

export class ClusterFailRate extends Periodic {
  private readonly local: FailRate;
  private pending = new Map<string, number>();
  private batch = new Map<string, number>();
  private throttled = new Set<string>();
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(private readonly o: ClusterFailRateOptions) {
    super('AUTH failure counts', 'per-node limits hold meanwhile', o.log);
    this.windowMs = o.windowMs ?? 3_600_000;
    this.now = o.now ?? Date.now;
    this.local = new FailRate(o.limit, this.windowMs, this.now);
  }

  override start(): void {
    super.start(this.o.syncMs ?? 1000);
  }

  allowed(ip: string): boolean {
    return this.local.allowed(ip) && !this.throttled.has(ip);
  }

  fail(ip: string): number {
    addBounded(this.pending, ip, 1);
    return this.local.fail(ip);
  }

  /** Share this node's new failures and read the cluster's throttled addresses. */
  protected async exchange(): Promise<void> {
    this.batch = this.pending;
    this.pending = new Map();
    const minute = Math.floor(this.now() / 60_000);
    const since = Math.floor((this.now() - this.windowMs) / 60_000);
    if (this.batch.size > 0) {
      await this.o.pool.query(
        `INSERT INTO postern_counter (kind, key, minute, n) SELECT 'authfail', k, $1, n FROM unnest($2::text[], $3::integer[]) AS v(k, n)
         ON CONFLICT (kind, key, minute) DO UPDATE SET n = postern_counter.n + excluded.n`,
        [minute, [...this.batch.keys()], [...this.batch.values()]],
      );
    }
    this.batch = new Map();
    const r = await this.o.pool.query<{ key: string }>(`SELECT key FROM postern_counter WHERE kind = 'authfail' AND minute > $1 GROUP BY key HAVING sum(n) >= $2`, [since, this.o.limit]);
    this.throttled = new Set(r.rows.map((x) => x.key));
    if (minute % 10 === 0) await this.o.pool.query(`DELETE FROM postern_counter WHERE kind = 'authfail' AND minute <= $1`, [since]);
  }

  /** Keep what was not shared (bounded); the per-node limit still holds. */
  protected failed(): void {
    for (const [ip, n] of this.batch) addBounded(this.pending, ip, n);
    this.batch = new Map();
  }
}
