/*
 * The spool contract (spool-contract.ts) against the PostgreSQL backend,
 * on a real PostgreSQL made for this file (test/helpers/postgres.ts):
 * without leases (how the commands open it) and with (how the daemon does:
 * list() then returns what this node holds, which is everything here, as
 * the only node).
 */
import { after, before } from 'node:test';
import pg from 'pg';
import { PgSpool } from '../../src/spool/pg/pg-spool.js';
import { migrate } from '../../src/spool/pg/schema.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { spoolContract } from './spool-contract.js';

let server: PgServer | undefined;

before(async () => {
  server = await startPostgres();
  const pool = new pg.Pool({ connectionString: server.url });
  await migrate(pool);
  await pool.end();
});

after(() => server?.cleanup());

async function empty(): Promise<void> {
  const pool = new pg.Pool({ connectionString: server!.url });
  await pool.query('TRUNCATE postern_message CASCADE');
  await pool.end();
}

for (const leases of [false, true]) {
  const make = (): PgSpool => new PgSpool({ url: server!.url, node: 'n1', leases: leases ? { ttlMs: 5_000 } : false, spillBytes: 64 * 1024 });
  spoolContract(`postgresql spool, ${leases ? 'with' : 'without'} leases`, {
    async make() {
      await empty();
      return make();
    },
    reopen: make,
    cleanup() {},
  });
}
