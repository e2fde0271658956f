/*
 * bench/cluster-pg.ts — the `cluster` scenario of `npm run bench` (alone:
 * `npm run bench:cluster`, or `npm run bench -- --scenario cluster`): what
 * the shared PostgreSQL spool costs per message, with 1, 2 and 3 nodes.
 *
 * A throwaway PostgreSQL (test/helpers/postgres.ts, fsync on, on
 * 127.0.24.1) pinned to one core (taskset; this process, the nodes, to the
 * other) — one core for the database is the limit here, and the figures
 * say so — migrated;
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
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import type { ExtraResult, ExtraScenario } from './extra-scenarios.js';
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

export interface Counters {
  lsn: string;
  walSync: number;
  xact: number;
}

export async function counters(pool: pg.Pool): Promise<Counters> {
  const r = await pool.query<{ lsn: string; sync: string; xact: string }>(
    `SELECT pg_current_wal_lsn()::text AS lsn, (SELECT wal_sync FROM pg_stat_wal) AS sync,
            (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS xact`,
  );
  const row = r.rows[0];
  return { lsn: row?.lsn ?? '0/0', walSync: Number(row?.sync ?? 0), xact: Number(row?.xact ?? 0) };
}

/** Each process: pid, parent, CPU clock ticks (user + system, 1/100 s) — /proc/PID/stat. */
export function processes(): { pid: number; ppid: number; ticks: number }[] {
  const out: { pid: number; ppid: number; ticks: number }[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(e), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

function childrenOf(pid: number): number[] {
  return processes().filter((p) => p.ppid === pid).map((p) => p.pid);
}

/** CPU seconds used so far by the postmaster and its children. */
export function pgCpuSeconds(postmaster: number): number {
  return processes().filter((p) => p.pid === postmaster || p.ppid === postmaster).reduce((n, p) => n + p.ticks, 0) / 100;
}

export function lsnBytes(a: string, b: string): number {
  const n = (s: string): bigint => {
    const [hi, lo] = s.split('/');
    return (BigInt(`0x${hi ?? '0'}`) << 32n) + BigInt(`0x${lo ?? '0'}`);
  };
  return Number(n(b) - n(a));
}

async function round(url: string, admin: pg.Pool, nodes: number, postmaster: number): Promise<Record<string, number>> {
  await admin.query('TRUNCATE postern_message CASCADE');
  const spools = Array.from({ length: nodes }, (_, i) => new PgSpool({ url, node: `bench${i + 1}`, leases: { ttlMs: 30_000, batch: 100 }, poolSize: 8 }));
  for (const s of spools) await s.open();
  const deadline = Date.now() + DURATION_MS;
  let messages = 0;
  await new Promise((r) => setTimeout(r, 200));
  const before = await counters(admin);
  const trips0 = roundTrips;
  const cpu0 = pgCpuSeconds(postmaster);
  const mine0 = process.cpuUsage();
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
  const pgCpu = pgCpuSeconds(postmaster) - cpu0;
  const mine = process.cpuUsage(mine0);
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
    // The database's CPU per message (the model's main input) and how busy its core was; the nodes' core likewise.
    pgCpuMsPerMessage: +((pgCpu * 1000) / messages).toFixed(3),
    pgCoreBusyPercent: Math.round((pgCpu / seconds) * 100),
    nodesCoreBusyPercent: Math.round(((mine.user + mine.system) / 1e6 / seconds) * 100),
  };
}

/** PostgreSQL on the last core, this process on the others (no-op on a one-core machine or without taskset). */
export function pin(dataDir: string): string {
  const n = cpus().length;
  if (n < 2) return 'not pinned (one core)';
  try {
    const postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    // The postmaster and the processes it already has (checkpointer, WAL writer, …); backends forked later inherit its affinity.
    for (const pid of [postmaster, ...childrenOf(postmaster)]) execFileSync('taskset', ['-a', '-p', '-c', String(n - 1), String(pid)], { stdio: 'ignore' });
    execFileSync('taskset', ['-a', '-p', '-c', `0-${n - 2}`, String(process.pid)], { stdio: 'ignore' });
    return `PostgreSQL pinned to core ${n - 1}, the nodes to ${n === 2 ? 'core 0' : `cores 0–${n - 2}`}`;
  } catch (e) {
    return `not pinned (${(e as Error).message.split('\n')[0]})`;
  }
}

/** Run the three rounds; the report lines and the raw rows. */
export async function measureCluster(progress: (line: string) => void = () => undefined): Promise<ExtraResult> {
  const server = await startPostgres({ host: '127.0.24.1' });
  const admin = new pg.Pool({ connectionString: server.url, max: 1 });
  try {
    await migrate(admin);
    const where = pin(join(server.dir, 'data'));
    const postmaster = Number(readFileSync(join(server.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const version = (await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? '?';
    const rows: Record<string, number>[] = [];
    for (const n of [1, 2, 3]) {
      const r = await round(server.url, admin, n, postmaster);
      rows.push(r);
      progress(`  ${JSON.stringify(r)}`);
    }
    const lines = [
      `PostgreSQL ${version} (fsync on, synchronous_commit on), ${where}; ${WRITERS} writers per node, ${BODY.length}-byte bodies, ${DURATION_MS / 1000} s per row; the nodes are spools with leases in one process (accept: reserve, write, commit; deliver: claim, read, remove).`,
      '',
      ...markdownTable(rows),
    ];
    return { lines, data: { where, version, writers: WRITERS, body: BODY.length, durationMs: DURATION_MS, rows } };
  } finally {
    await admin.end();
    server.cleanup();
  }
}

export const clusterScenario: ExtraScenario = {
  name: 'cluster',
  title: 'a queue shared by 1, 2 and 3 nodes in PostgreSQL (one core for the database): throughput and cost per message',
  quick: false, // full runs and --scenario only: --quick keeps its 3.5 minutes for the cells' ratios to Postfix
  servers: ['postern'],
  run: (ctx) => measureCluster(ctx.progress),
};

/** Rows of figures as a Markdown table, the keys as its header. */
export function markdownTable(rows: readonly Record<string, number>[]): string[] {
  const keys = Object.keys(rows[0] ?? {});
  return [`| ${keys.join(' | ')} |`, `| ${keys.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${keys.map((k) => String(r[k])).join(' | ')} |`)];
}

/** Run a measurement when its file is the program (`node dist/bench/NAME.js`): progress on stderr, the report on stdout. */
export async function runAsProgram(url: string, measure: (progress: (line: string) => void) => Promise<ExtraResult>): Promise<void> {
  if (process.argv[1] === undefined || url !== pathToFileURL(process.argv[1]).href) return;
  const r = await measure((l) => process.stderr.write(`${l}\n`));
  process.stdout.write(`\n${r.lines.join('\n')}\n`);
}

await runAsProgram(import.meta.url, measureCluster);
