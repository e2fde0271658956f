/*
 * cluster/connections.ts — simultaneous connections per client address
 * counted across the nodes of a cluster (docs/cluster.md, "Shared policy
 * state"), for the per-client connection limit (smtp/limits/
 * connections.ts: its `elsewhere` hook).
 *
 * Once a second each node replaces its rows of postern_connection (node,
 * client, n) with its current counts, in one transaction, and reads the
 * sums of the other live nodes' rows (nodes seen within a lease time, in
 * postern_node). elsewhere(client) answers from that last read, at once:
 * the limiter adds it to this node's own count. A node that dies leaves
 * rows that stop counting when its heartbeat is older than a lease time.
 *
 * When the database is away, elsewhere() answers 0: each node limits
 * alone (the per-node limit, as on one machine); nothing is refused for it.
 */
import type { Pool } from 'pg';
import { asyncCommit, boundedQuery } from './pg.js';
import { Periodic } from './periodic.js';

export interface ClusterConnectionsOptions {
  readonly pool: Pool;
  readonly node: string;
  /** This node's connections now, per client address. */
  readonly counts: () => ReadonlyMap<string, number>;
  /** A node whose heartbeat is older than this is dead (the lease time). */
  readonly aliveMs: number;
  readonly log?: (line: string) => void;
}

export class ClusterConnections extends Periodic {
  private others = new Map<string, number>();

  constructor(private readonly o: ClusterConnectionsOptions) {
    super('connection counts', 'each node limits alone meanwhile', o.log);
  }

  /** Connections from `client` on the other live nodes, at the last exchange (0 while the database is away). */
  elsewhere(client: string): number {
    return this.isDown ? 0 : (this.others.get(client) ?? 0);
  }

  protected async exchange(): Promise<void> {
    const mine = this.o.counts();
    await asyncCommit(this.o.pool, async (c) => {
      await c.query('DELETE FROM postern_connection WHERE node = $1', [this.o.node]);
      if (mine.size > 0) await c.query('INSERT INTO postern_connection (node, client, n) SELECT $1, * FROM unnest($2::text[], $3::integer[])', [this.o.node, [...mine.keys()], [...mine.values()]]);
    });
    const r = await this.o.pool.query<{ client: string; n: string }>(
      `SELECT client, sum(n) AS n FROM postern_connection c JOIN postern_node d ON d.name = c.node
        WHERE c.node <> $1 AND d.seen > now() - $2::bigint * interval '1 millisecond' GROUP BY client`,
      [this.o.node, this.o.aliveMs],
    );
    this.others = new Map(r.rows.map((x) => [x.client, Number(x.n)]));
  }

  protected failed(): void {
    /* the next exchange sends the counts of that moment */
  }

  /** A clean stop: this node's rows go (best effort; a dead node's stop counting anyway). */
  async close(): Promise<void> {
    this.stop();
    // Bounded: a stop never waits for a database that is away.
    await boundedQuery(this.o.pool, 2000, 'DELETE FROM postern_connection WHERE node = $1', [this.o.node]).catch(() => undefined);
  }
}
