/*
 * antispam/greylist/store-pg.ts — greylisting state in the PostgreSQL of a
 * cluster's shared queue (docs/cluster.md, "Shared policy state"), so a
 * triplet first seen on one node passes on any other once retried.
 *
 * Every read and write is one statement on the pool (upserts, no
 * transaction), bounded by TIMEOUT_MS: a database that is away or slow
 * makes the call fail, and the greylisting check passes the mail (the
 * antispam phase catches the failure: greylisting fails open, never
 * refusing all mail). Two nodes that see the same new triplet at once both
 * write it; the later first-seen time wins, which delays that sender by at
 * most the time between the two.
 */
import type { Pool } from 'pg';
import { boundedQuery } from '../../cluster/pg.js';
import type { ClientRecord, GreylistStore, TripletRecord } from './store.js';

/** A query that takes longer fails (and greylisting passes the mail). */
const TIMEOUT_MS = 2000;

export class PgGreylistStore implements GreylistStore {
  constructor(private readonly pool: Pick<Pool, 'query'>) {}

  private q<R extends Record<string, unknown>>(sql: string, args: unknown[]): Promise<R[]> {
    return boundedQuery<R>(this.pool, TIMEOUT_MS, sql, args);
  }

  async triplet(key: string): Promise<TripletRecord | undefined> {
    const [r] = await this.q<{ first: string; last: string; passed: boolean }>('SELECT first, last, passed FROM postern_greylist WHERE key = $1', [key]);
    return r && { first: Number(r.first), last: Number(r.last), passed: r.passed };
  }

  async putTriplet(key: string, r: TripletRecord): Promise<void> {
    await this.q(
      `INSERT INTO postern_greylist (key, first, last, passed) VALUES ($1, $2, $3, $4)
       ON CONFLICT (key) DO UPDATE SET first = excluded.first, last = excluded.last, passed = excluded.passed`,
      [key, r.first, r.last, r.passed],
    );
  }

  async client(net: string): Promise<ClientRecord | undefined> {
    const [r] = await this.q<{ passes: number; last: string }>('SELECT passes, last FROM postern_greylist_client WHERE net = $1', [net]);
    return r && { passes: r.passes, last: Number(r.last) };
  }

  async putClient(net: string, r: ClientRecord): Promise<void> {
    await this.q(
      `INSERT INTO postern_greylist_client (net, passes, last) VALUES ($1, $2, $3)
       ON CONFLICT (net) DO UPDATE SET passes = greatest(postern_greylist_client.passes, excluded.passes), last = excluded.last`,
      [net, r.passes, r.last],
    );
  }

  async expire(before: { triplets: number; pending: number; clients: number }): Promise<void> {
    await this.q('DELETE FROM postern_greylist WHERE (passed AND last < $1) OR (NOT passed AND last < $2)', [before.triplets, before.pending]);
    await this.q('DELETE FROM postern_greylist_client WHERE last < $1', [before.clients]);
  }

  async close(): Promise<void> {
    /* the pool belongs to the spool */
  }
}
