/*
 * AUTH failures counted across nodes (cluster/failrate.ts) on a real
 * PostgreSQL: an address that fails on several nodes is throttled on all
 * once they have shared their counts; with the database gone, the
 * per-node limit still holds and nothing else is refused.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { ClusterFailRate } from '../../src/cluster/failrate.js';
import { migrate } from '../../src/spool/pg/schema.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';

let server: PgServer;
let pool: pg.Pool;

before(async () => {
  server = await startPostgres();
  pool = new pg.Pool({ connectionString: server.url, max: 2 });
  pool.on('error', () => undefined);
  await migrate(pool);
});

after(async () => {
  await pool?.end();
  server?.cleanup();
});

test('failures on two nodes add up: the address is throttled on both, others are not', async () => {
  const a = new ClusterFailRate({ pool, limit: 3 });
  const b = new ClusterFailRate({ pool, limit: 3 });
  a.fail('192.0.2.7');
  a.fail('192.0.2.7');
  b.fail('192.0.2.7');
  assert.ok(a.allowed('192.0.2.7') && b.allowed('192.0.2.7'), 'neither node alone has reached the limit');
  await a.sync();
  await b.sync();
  await a.sync();
  assert.equal(a.allowed('192.0.2.7'), false);
  assert.equal(b.allowed('192.0.2.7'), false);
  assert.equal(a.allowed('192.0.2.8'), true);
});

test('with the database away the per-node limit holds, and nothing else is refused', async () => {
  const a = new ClusterFailRate({ pool, limit: 2 });
  server.kill();
  try {
    a.fail('198.51.100.1');
    await a.sync();
    assert.equal(a.allowed('198.51.100.1'), true);
    a.fail('198.51.100.1');
    await a.sync();
    assert.equal(a.allowed('198.51.100.1'), false, 'the local limit');
    assert.equal(a.allowed('198.51.100.2'), true);
  } finally {
    server.start();
  }
  await a.sync();
  const r = await pool.query<{ n: string }>(`SELECT sum(n) AS n FROM postern_counter WHERE key = '198.51.100.1'`);
  assert.equal(Number(r.rows[0]?.n), 2, 'what waited is shared once the database is back');
});
