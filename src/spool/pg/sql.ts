/*
 * spool/pg/sql.ts — small helpers over node-postgres for the spool.
 *
 * asyncCommit: a transaction that does not wait for its WAL flush
 * (synchronous_commit off, for that transaction only). Used for what may
 * be lost in a crash without losing mail: msgid reservations, body chunks
 * of a message not yet committed (the commit's own flush covers them: WAL
 * is flushed in order), removals (the spool contract lets a removed
 * message come back after a crash).
 */
import type { Pool, PoolClient } from 'pg';

export async function asyncCommit<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await checkout(pool);
  let broken = false;
  try {
    await client.query('BEGIN; SET LOCAL synchronous_commit TO off');
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
