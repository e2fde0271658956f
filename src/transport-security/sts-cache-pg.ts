/*
 * transport-security/sts-cache-pg.ts — MTA-STS policies kept in the
 * PostgreSQL of a cluster's shared queue (docs/cluster.md, "Shared policy
 * state"): a policy one node fetched serves every node until it expires,
 * and a policy cached before the policy host went away keeps protecting
 * deliveries from all of them (RFC 8461 §5.1).
 *
 * Fallback: each node also keeps what it read or wrote in memory. When
 * the database is away (a query fails or takes longer than TIMEOUT_MS),
 * get() answers from memory and put() keeps the entry in memory only; so
 * a node never loses a policy it knew, and a node that knew none fetches
 * it as a single node would.
 */
import type { Pool } from 'pg';
import { boundedQuery } from '../cluster/pg.js';
import { MemoryStsCache, isStsEntry, type StsCache, type StsCacheEntry } from './sts-cache.js';

const TIMEOUT_MS = 2000;

export class PgStsCache implements StsCache {
  private readonly memory = new MemoryStsCache();

  constructor(
    private readonly pool: Pick<Pool, 'query'>,
    private readonly warn: (line: string) => void = () => undefined,
  ) {}

  async get(domain: string): Promise<StsCacheEntry | undefined> {
    const d = domain.toLowerCase();
    try {
      const [r] = await boundedQuery<{ entry: unknown }>(this.pool, TIMEOUT_MS, 'SELECT entry FROM postern_sts_policy WHERE domain = $1', [d]);
      const e = r?.entry;
      if (!isStsEntry(e)) return this.memory.get(d);
      await this.memory.put(d, e);
      return e;
    } catch (err) {
      this.warn(`mta-sts: shared cache unavailable, using this node's (${(err as Error).message})`);
      return this.memory.get(d);
    }
  }

  async put(domain: string, entry: StsCacheEntry): Promise<void> {
    const d = domain.toLowerCase();
    await this.memory.put(d, entry);
    try {
      await boundedQuery(this.pool, TIMEOUT_MS, `INSERT INTO postern_sts_policy (domain, entry) VALUES ($1, $2::jsonb) ON CONFLICT (domain) DO UPDATE SET entry = excluded.entry`, [d, JSON.stringify(entry)]);
    } catch (err) {
      this.warn(`mta-sts: shared cache unavailable, policy for ${d} kept on this node only (${(err as Error).message})`);
    }
  }
}
