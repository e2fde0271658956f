/*
 * cluster/rates.ts — the antispam rate limits (antispam/ratelimit/
 * counters.ts: connections, messages or recipients per client, user or
 * sender domain in a window) counted across the nodes of a cluster
 * (docs/cluster.md, "Shared policy state"). It has the RateCounters shape
 * (hit() answers at once: a session never waits for the database).
 *
 * Windows are aligned on the clock (window number = floor(now / window)),
 * so every node counts in the same window. hit() counts on this node and
 * answers the larger of this node's count and the cluster's count as last
 * read plus this node's events not yet shared. Once a second, sync() adds
 * this node's new events to postern_rate (an upsert that adds, one row per
 * key and window) and reads back the keys over their limit on all nodes
 * together: a client throttled on one node is throttled on every node
 * within about a second. Rows of past windows are pruned.
 *
 * When the database is away, each node counts alone (the limit holds per
 * node, as on a single machine); events wait in memory (bounded) and are
 * shared when it is back. Nothing is refused because it is away.
 */
import type { Pool } from 'pg';
import { Periodic } from './periodic.js';

/** Keys kept per node at most (an attacker cycling through addresses cannot grow memory without bound). */
const MAX_KEYS = 100_000;

interface Count {
  readonly window: number;
  readonly windowMs: number;
  readonly max: number;
  mine: number;
  pending: number;
}

export class ClusterRateCounters extends Periodic {
  private counts = new Map<string, Count>();
  private inFlight = new Map<string, Count & { sent: number }>();
  /** key → the cluster's count in the window that ends at `end` (only keys over their limit). */
  private over = new Map<string, { end: number; n: number }>();

  constructor(
    private readonly pool: Pick<Pool, 'query'>,
    log?: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {
    super('rate-limit counts', 'each node counts alone meanwhile', log);
  }

  hit(key: string, windowMs: number, now: number, max = Number.MAX_SAFE_INTEGER): number {
    const window = Math.floor(now / windowMs);
    let c = this.counts.get(key);
    if (c === undefined || c.window !== window) {
      if (c === undefined && this.counts.size >= MAX_KEYS) this.sweep(now);
      c = { window, windowMs, max, mine: 0, pending: 0 };
      this.counts.set(key, c);
    }
    c.mine++;
    c.pending++;
    const o = this.over.get(key);
    const cluster = o !== undefined && o.end === (window + 1) * windowMs ? o.n + c.pending : 0;
    return Math.max(c.mine, cluster);
  }

  protected async exchange(): Promise<void> {
    const keys: string[] = [];
    const ends: number[] = [];
    const maxes: number[] = [];
    const ns: number[] = [];
    for (const [k, c] of this.counts) {
      if (c.pending === 0) continue;
      this.inFlight.set(k, { ...c, sent: c.pending });
      keys.push(k);
      ends.push((c.window + 1) * c.windowMs);
      maxes.push(c.max);
      ns.push(c.pending);
      c.pending = 0;
    }
    if (keys.length > 0) {
      await this.pool.query(
        `INSERT INTO postern_rate (key, window_end, max, n) SELECT * FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::integer[])
         ON CONFLICT (key, window_end) DO UPDATE SET n = postern_rate.n + excluded.n`,
        [keys, ends, maxes, ns],
      );
    }
    this.inFlight.clear();
    const now = this.now();
    const r = await this.pool.query<{ key: string; window_end: string; n: number }>(`SELECT key, window_end, n FROM postern_rate WHERE window_end > $1 AND n > max LIMIT ${MAX_KEYS}`, [now]);
    this.over = new Map(r.rows.map((row) => [row.key, { end: Number(row.window_end), n: row.n }]));
    if (Math.floor(now / 1000) % 60 === 0) await this.pool.query('DELETE FROM postern_rate WHERE window_end <= $1', [now]);
  }

  /** Put back what could not be shared. */
  protected failed(): void {
    for (const [k, f] of this.inFlight) {
      const c = this.counts.get(k);
      if (c !== undefined && c.window === f.window) c.pending += f.sent;
    }
    this.inFlight.clear();
  }

  private sweep(now: number): void {
    for (const [k, c] of this.counts) if (Math.floor(now / c.windowMs) !== c.window && c.pending === 0) this.counts.delete(k);
  }
}
