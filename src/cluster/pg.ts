/*
 * cluster/pg.ts — small helpers over node-postgres for the PostgreSQL spool
 * (spool/pg/) and the cluster's shared state (cluster/, and the greylisting
 * and MTA-STS stores), kept here so that none of those names a spool
 * backend.
 *
 * asyncCommit: a transaction that does not wait for its WAL flush
 * (synchronous_commit off, for that transaction only). Used for what may
 * be lost in a crash without losing mail: msgid reservations, body chunks
 * of a message not yet committed (the commit's own flush covers them: WAL
 * is flushed in order), removals (the spool contract lets a removed
 * message come back after a crash).
 */
import type { Pool, PoolClient } from 'pg';

export function asyncCommit<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  return transaction(pool, fn, false);
}

/** One transaction on a connection of the pool; `durable` false: its commit does not wait for the WAL flush. */
export async function transaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>, durable = true): Promise<T> {
  const client = await checkout(pool);
  let broken = false;
  try {
    await client.query(durable ? 'BEGIN' : 'BEGIN; SET LOCAL synchronous_commit TO off');
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (e) {
    broken = true;
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.release(broken);
  }
}

/**
 * A connection of the pool for several statements. A connection that breaks
 * between two of them emits 'error' with no query to fail, and node-postgres
 * leaves a checked-out client without a listener: that would be an uncaught
 * exception. The listener here keeps it quiet (the next query fails, and
 * release(true) drops the connection); release() removes it.
 */
export async function checkout(pool: Pool): Promise<PoolClient> {
  const client = await pool.connect();
  const quiet = (): void => undefined;
  client.on('error', quiet);
  const release = client.release.bind(client);
  client.release = (err?: Error | boolean) => {
    client.removeListener('error', quiet);
    release(err);
  };
  return client;
}

/** A node name as the schema stores it: letters, digits, . _ - (1 to 64). */
export function isNodeName(s: string): boolean {
  return /^[A-Za-z0-9._-]{1,64}$/.test(s);
}

/**
 * One statement that fails after `ms` instead of waiting for a database
 * that is away (a partition, a stopped server): for the shared policy state
 * (greylisting, MTA-STS cache), whose callers fall back to working without
 * it rather than hold a session.
 */
export async function boundedQuery<R extends Record<string, unknown>>(pool: Pick<Pool, 'query'>, ms: number, sql: string, args: unknown[]): Promise<R[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the database did not answer in ${ms} ms`)), ms);
  });
  try {
    return (await Promise.race([pool.query<R>(sql, args), late])).rows;
  } finally {
    clearTimeout(timer);
  }
}
