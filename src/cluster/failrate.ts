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

export class ClusterFailRate {
  private readonly local: FailRate;
  private pending = new Map<string, number>();
  private throttled = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private readonly windowMs: number;
  private readonly now: () => number;
  private wasDown = false;

  constructor(private readonly o: ClusterFailRateOptions) {
    this.windowMs = o.windowMs ?? 3_600_000;
    this.now = o.now ?? Date.now;
    this.local = new FailRate(o.limit, this.windowMs, this.now);
  }

  start(): void {
    this.timer = setInterval(() => void this.sync(), this.o.syncMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  allowed(ip: string): boolean {
    return this.local.allowed(ip) && !this.throttled.has(ip);
  }

  fail(ip: string): number {
    if (this.pending.has(ip) || this.pending.size < MAX_PENDING) this.pending.set(ip, (this.pending.get(ip) ?? 0) + 1);
    return this.local.fail(ip);
  }

  /** Share this node's new failures and read the cluster's throttled addresses. */
  sync(): Promise<void> {
    this.syncing ??= this.doSync().finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private async doSync(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    const minute = Math.floor(this.now() / 60_000);
    const since = Math.floor((this.now() - this.windowMs) / 60_000);
    try {
      if (batch.size > 0) {
        await this.o.pool.query(
          `INSERT INTO postern_counter (kind, key, minute, n) SELECT 'authfail', k, $1, n FROM unnest($2::text[], $3::integer[]) AS v(k, n)
           ON CONFLICT (kind, key, minute) DO UPDATE SET n = postern_counter.n + excluded.n`,
          [minute, [...batch.keys()], [...batch.values()]],
        );
      }
      const r = await this.o.pool.query<{ key: string }>(`SELECT key FROM postern_counter WHERE kind = 'authfail' AND minute > $1 GROUP BY key HAVING sum(n) >= $2`, [since, this.o.limit]);
      this.throttled = new Set(r.rows.map((x) => x.key));
      if (minute % 10 === 0) await this.o.pool.query(`DELETE FROM postern_counter WHERE kind = 'authfail' AND minute <= $1`, [since]);
      if (this.wasDown) this.o.log?.('cluster: AUTH failure counts shared again');
      this.wasDown = false;
    } catch (e) {
      // Keep what was not shared (bounded); the per-node limit still holds.
      for (const [ip, n] of batch) if (this.pending.has(ip) || this.pending.size < MAX_PENDING) this.pending.set(ip, (this.pending.get(ip) ?? 0) + n);
      if (!this.wasDown) this.o.log?.(`cluster: cannot share AUTH failure counts (per-node limits hold meanwhile): ${(e as Error).message}`);
      this.wasDown = true;
    }
  }
}
