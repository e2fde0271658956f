/*
 * bench/cluster-pg.ts — `npm run bench:cluster`: what the shared
 * PostgreSQL spool costs per message, with 1, 2 and 3 nodes.
 *
 * A throwaway PostgreSQL (test/helpers/postgres.ts, fsync on), migrated;
 * then for N = 1, 2, 3 nodes (PgSpool instances with leases, each its own
 * connection pool, all in this process) each with WRITERS concurrent
 * writers that, for DURATION, accept a message (reserve, write BODY bytes,
 * commit) and deliver it (list — which claims —, read the body, remove):
 * the spool's whole work for one message that is delivered at the first
 * try. Reported per N: messages/s, and per message: round trips to the
 * database (counted at the driver), transactions, WAL bytes and WAL
 * fsyncs (pg_stat_wal, PostgreSQL 14+), and commit batches.
 *
 * What this measures is the database side of the cluster, not SMTP: on a
 * 2-core machine the nodes and PostgreSQL share the cores, so adding nodes
 * here adds contention, not capacity; docs/cluster.md turns the
 * per-message costs into a model for bigger machines.
 */
import pg from 'pg';
import { PgSpool } from '../src/spool/pg/pg-spool.js';
import { migrate } from '../src/spool/pg/schema.js';
import type { EnvelopeDraft } from '../src/spool/spool.js';
import { startPostgres } from '../test/helpers/postgres.js';

const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 5_000);
const WRITERS = Number(process.env['BENCH_WRITERS'] ?? 16);
const BODY = Buffer.alloc(Number(process.env['BENCH_BODY'] ?? 4096), 'x');

let roundTrips = 0;
const proto = pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown };
const realQuery = proto.query;
proto.query = function (this: unknown, ...a: unknown[]) {
  roundTrips++;
  return realQuery.apply(this, a);
};

const draft: EnvelopeDraft = {
  sender: 'bench@example.org',
  recipients: [{ address: 'rcpt@example.net', action: 'relay', dest: { kind: 'remote' } }],
  body: '8BITMIME',
  smtputf8: false,
  arrival: Date.now(),
  client: { address: '192.0.2.1', port: 1, proto: 'ESMTP', listener: 'bench' },
};

interface Counters {
  lsn: string;
  walSync: number;
  xact: number;
}

async function counters(pool: pg.Pool): Promise<Counters> {
  const r = await pool.query<{ lsn: string; sync: string; xact: string }>(
    `SELECT pg_current_wal_lsn()::text AS lsn, (SELECT wal_sync FROM pg_stat_wal) AS sync,
            (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS xact`,
  );
  const row = r.rows[0];
  return { lsn: row?.lsn ?? '0/0', walSync: Number(row?.sync ?? 0), xact: Number(row?.xact ?? 0) };
}

function lsnBytes(a: string, b: string): number {
  const n = (s: string): bigint => {
    const [hi, lo] = s.split('/');
    return (BigInt(`0x${hi ?? '0'}`) << 32n) + BigInt(`0x${lo ?? '0'}`);
  };
  return Number(n(b) - n(a));
}

async function round(url: string, admin: pg.Pool, nodes: number): Promise<Record<string, number>> {
  await admin.query('TRUNCATE postern_message CASCADE');
  const spools = Array.from({ length: nodes }, (_, i) => new PgSpool({ url, node: `bench${i + 1}`, leases: { ttlMs: 30_000, batch: 100 }, poolSize: 8 }));
  for (const s of spools) await s.open();
  const deadline = Date.now() + DURATION_MS;
  let messages = 0;
  await new Promise((r) => setTimeout(r, 200));
  const before = await counters(admin);
  const trips0 = roundTrips;
  const t0 = performance.now();
  await Promise.all(
    spools.flatMap((s) =>
      Array.from({ length: WRITERS }, async () => {
        while (Date.now() < deadline) {
          const w = await s.createMessage();
          w.write(BODY);
          const env = await w.commit(draft);
          for await (const _ of s.openBody(env.msgid)) void _;
          await s.remove(env.msgid);
          messages++;
        }
      }),
    ),
  );
  // One claim per node per poll, as the scheduler does.
  for (const s of spools) await s.list();
  const seconds = (performance.now() - t0) / 1000;
  const trips = roundTrips - trips0;
  const after = await counters(admin);
  const batches = spools.reduce((n, s) => n + s.stats().batches, 0);
  for (const s of spools) await s.close();
  return {
    nodes,
    messagesPerSecond: Math.round(messages / seconds),
    roundTripsPerMessage: +(trips / messages).toFixed(2),
    transactionsPerMessage: +((after.xact - before.xact) / messages).toFixed(2),
    walBytesPerMessage: Math.round(lsnBytes(before.lsn, after.lsn) / messages),
    walFsyncsPerMessage: +((after.walSync - before.walSync) / messages).toFixed(3),
    messagesPerCommitBatch: +(messages / Math.max(1, batches)).toFixed(1),
  };
}

async function main(): Promise<void> {
  const server = await startPostgres();
  const admin = new pg.Pool({ connectionString: server.url, max: 1 });
  try {
    await migrate(admin);
    const rows: Record<string, number>[] = [];
    for (const n of [1, 2, 3]) {
      const r = await round(server.url, admin, n);
      rows.push(r);
      process.stderr.write(`${JSON.stringify(r)}\n`);
    }
    const keys = Object.keys(rows[0] ?? {});
    process.stdout.write(`\nPostgreSQL spool, ${WRITERS} writers per node, ${BODY.length}-byte bodies, ${DURATION_MS / 1000} s per row (nodes in one process; PostgreSQL on the same cores)\n\n`);
    process.stdout.write(`| ${keys.join(' | ')} |\n| ${keys.map(() => '---').join(' | ')} |\n`);
    for (const r of rows) process.stdout.write(`| ${keys.map((k) => String(r[k])).join(' | ')} |\n`);
  } finally {
    await admin.end();
    server.cleanup();
  }
}

await main();
