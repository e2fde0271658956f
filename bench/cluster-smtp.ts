/*
 * bench/cluster-smtp.ts — the `cluster-smtp` scenario of `npm run bench`
 * (alone: `node dist/bench/cluster-smtp.js`): 1, 2 and 3 real Postern
 * nodes (smtpd -d, as root, each its own process on 127.0.24.2–4) sharing
 * one queue in PostgreSQL (pinned to one core, as in cluster-pg.ts),
 * relaying to smtp-sink on 127.0.24.9; the harness's load generator sends
 * 1 KB messages to every node at once for DURATION (12 sessions in all,
 * split between the nodes). A figure is messages delivered at the sink a
 * second, from the first connection to the last message at the sink, with
 * the database's work per message (transactions, WAL bytes, fsyncs, CPU)
 * and the nodes' (CPU, wake-ups). BENCH_CLUSTER_NODES (e.g. "2" or "1,3")
 * and BENCH_SESSIONS pick the rounds, BENCH_TRACE=1 prints the half-second
 * trace of cluster-trace.ts, BENCH_NODE_OPTIONS goes to the nodes'
 * NODE_OPTIONS (e.g. --cpu-prof --cpu-prof-dir=DIR, a folder _postern can
 * write).
 *
 * On this 2-core machine the nodes, the load generator and the sink share
 * one core and PostgreSQL has the other: the figures show what one core of
 * database carries with real nodes in front, not the design's capacity.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { counters, lsnBytes, markdownTable, pgCpuSeconds, pin, processes, runAsProgram } from './cluster-pg.js';
import { traceCluster, treeTicks, treeWakeups } from './cluster-trace.js';
import { startDnsStub } from './dns.js';
import type { ExtraResult, ExtraScenario } from './extra-scenarios.js';
import { runLoad } from './load.js';
import { stopTree } from './servers/server.js';
import { startSink } from './servers/sink.js';
import { REPO_ROOT, freePort, pollUntil, waitListening, workFolder } from './util.js';
import { migrate } from '../src/spool/pg/schema.js';
import { startPostgres } from '../test/helpers/postgres.js';

const SMTPD = join(REPO_ROOT, 'dist', 'src', 'cli', 'smtpd.js');
const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 5_000);
const SESSIONS = Number(process.env['BENCH_SESSIONS'] ?? 12);
const SINK_HOST = '127.0.24.9';
/** The rounds (BENCH_CLUSTER_NODES=2 for one round of 2 nodes); BENCH_TRACE=1 prints cluster-trace.ts's lines. */
const NODES = (process.env['BENCH_CLUSTER_NODES'] ?? '1,2,3').split(',').map(Number);
const TRACE = process.env['BENCH_TRACE'] === '1';

async function round(o: { url: string; admin: pg.Pool; nodes: number; postmaster: number; dir: string; resolver: string; sinkPort: number; progress: (line: string) => void }): Promise<Record<string, number>> {
  await o.admin.query('DELETE FROM postern_message; DELETE FROM postern_node');
  const sink = await startSink(o.sinkPort, SINK_HOST);
  const daemons: { child: ChildProcess; host: string; port: number }[] = [];
  try {
    for (let i = 0; i < o.nodes; i++) {
      const host = `127.0.24.${i + 2}`;
      const port = await freePort(host);
      const dir = join(o.dir, `r${o.nodes}-n${i + 1}`);
      mkdirSync(dir, { recursive: true, mode: 0o711 });
      const conf = join(dir, 'smtpd.conf');
      writeFileSync(
        conf,
        [
          `queue path "${dir}/spool"`,
          `queue postgresql "${o.url}"`,
          `queue node n${i + 1}`,
          `hostname n${i + 1}.bench.localhost`,
          `resolver "${o.resolver}"`,
          'smtp limit max-mails 1000000',
          `listen on ${host} port ${port}`,
          `action "bench" relay host smtp+notls://${SINK_HOST}:${o.sinkPort}`,
          'match from any for domain "bench.test" action "bench"',
          '',
        ].join('\n'),
      );
      const child = spawn(process.execPath, [SMTPD, '-d', '-f', conf], { cwd: dir, stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: process.env['BENCH_NODE_OPTIONS'] ?? '' } });
      daemons.push({ child, host, port });
      await waitListening(host, port, 20_000, () => child.exitCode === null);
    }
    const before = await counters(o.admin);
    const cpu0 = pgCpuSeconds(o.postmaster);
    const nodesCpu = (): number => {
      const all = processes();
      return daemons.reduce((n, d) => n + treeTicks(d.child.pid as number, all), 0) / 100;
    };
    const nodesCpu0 = nodesCpu();
    const wakeups = (): number => {
      const all = processes();
      return daemons.reduce((n, d) => n + treeWakeups(d.child.pid as number, all), 0);
    };
    const wakeups0 = wakeups();
    const t0 = performance.now();
    const untrace = TRACE ? traceCluster(o.admin, () => sink.messages(), daemons.map((d) => d.child.pid as number), o.progress) : () => undefined;
    const results = await Promise.all(daemons.map((d) => runLoad({ host: d.host, port: d.port, sessions: Math.max(1, Math.floor(SESSIONS / o.nodes)), size: 1024, durationMs: DURATION_MS, localPart: 'rcpt', domain: 'bench.test' })));
    const accepted = results.reduce((n, r) => n + r.accepted, 0);
    await pollUntil(() => sink.messages() >= accepted, 120_000, 100);
    untrace();
    const seconds = (sink.lastMessageAt() - t0) / 1000;
    const delivered = sink.messages();
    const after = await counters(o.admin);
    const pgCpu = pgCpuSeconds(o.postmaster) - cpu0;
    const nodeCpu = nodesCpu() - nodesCpu0;
    const nodeWakeups = wakeups() - wakeups0;
    return {
      nodes: o.nodes,
      accepted,
      delivered,
      deliveredPerSecond: Math.round(delivered / seconds),
      transactionsPerMessage: +((after.xact - before.xact) / Math.max(1, delivered)).toFixed(2),
      walBytesPerMessage: Math.round(lsnBytes(before.lsn, after.lsn) / Math.max(1, delivered)),
      walFsyncsPerMessage: +((after.walSync - before.walSync) / Math.max(1, delivered)).toFixed(3),
      pgCpuMsPerMessage: +((pgCpu * 1000) / Math.max(1, delivered)).toFixed(3),
      pgCoreBusyPercent: Math.round((pgCpu / seconds) * 100),
      nodesCpuMsPerMessage: +((nodeCpu * 1000) / Math.max(1, delivered)).toFixed(3),
      nodesCoreBusyPercent: Math.round((nodeCpu / seconds) * 100),
      nodesWakeupsPerMessage: +(nodeWakeups / Math.max(1, delivered)).toFixed(1),
    };
  } finally {
    for (const d of daemons) await stopTree(d.child, 10_000);
    await sink.stop();
  }
}

export async function measureClusterSmtp(progress: (line: string) => void = () => undefined): Promise<ExtraResult> {
  const server = await startPostgres({ host: '127.0.24.1' });
  const admin = new pg.Pool({ connectionString: server.url, max: 1 });
  const dns = await startDnsStub('127.0.24.53');
  const dir = workFolder('postern-cluster-smtp-');
  try {
    await migrate(admin);
    const where = pin(join(server.dir, 'data'));
    const postmaster = Number(readFileSync(join(server.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const sinkPort = await freePort(SINK_HOST);
    const rows: Record<string, number>[] = [];
    for (const n of NODES) {
      const r = await round({ url: server.url, admin, nodes: n, postmaster, dir, resolver: `${dns.host}:${dns.port}`, sinkPort, progress });
      rows.push(r);
      progress(`  ${JSON.stringify(r)}`);
    }
    const lines = [
      `Real nodes (smtpd -d) relaying to smtp-sink, ${SESSIONS} sessions in all split between the nodes, 1 KB messages, ${DURATION_MS / 1000} s of load per row; ${where}.`,
      '',
      ...markdownTable(rows),
    ];
    return { lines, data: { where, rows } };
  } finally {
    await admin.end();
    await dns.stop();
    server.cleanup();
  }
}

export const clusterSmtpScenario: ExtraScenario = {
  name: 'cluster-smtp',
  title: '1, 2 and 3 real nodes sharing a queue in PostgreSQL (one core for the database), relaying to smtp-sink',
  quick: false, // full runs and --scenario only: three daemons started in turn would take --quick past its 4 minutes
  servers: ['postern'],
  run: (ctx) => measureClusterSmtp(ctx.progress),
};

await runAsProgram(import.meta.url, measureClusterSmtp);
