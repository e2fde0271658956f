/*
 * bench/cluster-trace.ts — what the cluster-smtp scenario prints every
 * half second with BENCH_TRACE=1: messages at the sink, the messages each
 * node holds in the shared queue (its backlog), the database sessions by
 * state and wait event, and each node's CPU (its process tree) in that
 * half second. The measurements behind docs/cluster.md's account of where
 * the time goes with several nodes.
 */
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { processes } from './cluster-pg.js';

/** CPU ticks (1/100 s) of `pid` and its descendants. */
export function treeTicks(pid: number, all: { pid: number; ppid: number; ticks: number }[]): number {
  let n = 0;
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop() as number;
    for (const q of all) {
      if (q.pid === p) n += q.ticks;
      if (q.ppid === p) todo.push(q.pid);
    }
  }
  return n;
}

/** Voluntary context switches (the process slept: waited for input) of `pid` and its descendants: the node's wake-ups. */
export function treeWakeups(pid: number, all: { pid: number; ppid: number }[]): number {
  let n = 0;
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop() as number;
    try {
      n += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      /* gone meanwhile */
    }
    for (const q of all) if (q.ppid === p) todo.push(q.pid);
  }
  return n;
}

/** Busy and total jiffies of each core (/proc/stat). */
function cores(): { busy: number; total: number }[] {
  return readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((l) => /^cpu\d/.test(l))
    .map((l) => {
      const f = l.split(/\s+/).slice(1).map(Number);
      const total = f.reduce((a, b) => a + b, 0);
      return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
    });
}

/** Start tracing; the returned function stops it. */
export function traceCluster(admin: pg.Pool, sink: () => number, nodePids: readonly number[], print: (line: string) => void): () => void {
  const t0 = performance.now();
  let last = nodePids.map(() => 0);
  let lastCores = cores();
  let lastSelf = process.cpuUsage();
  let busy = false;
  const tick = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      const all = processes();
      const ticks = nodePids.map((p) => treeTicks(p, all));
      const cpu = ticks.map((t, i) => t - (last[i] ?? 0));
      last = ticks;
      const c = cores();
      const corePct = c.map((x, i) => Math.round((100 * (x.busy - (lastCores[i]?.busy ?? 0))) / Math.max(1, x.total - (lastCores[i]?.total ?? 0))));
      lastCores = c;
      const self = process.cpuUsage(lastSelf);
      lastSelf = process.cpuUsage();
      const selfPct = Math.round((self.user + self.system) / 5000);
      const held = await admin.query<{ h: string | null; n: string }>(`SELECT lease_holder AS h, count(*) AS n FROM postern_message WHERE state = 'queued' GROUP BY 1 ORDER BY 1`);
      const act = await admin.query<{ s: string; n: string }>(
        `SELECT coalesce(state, '-') || ':' || coalesce(wait_event_type || '/' || wait_event, 'cpu') AS s, count(*) AS n
           FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 2 DESC`,
      );
      print(
        `  t=${((performance.now() - t0) / 1000).toFixed(1)} sink=${sink()} held=${held.rows.map((r) => `${r.h ?? 'none'}:${r.n}`).join(',')} cpu%=${cpu.map((x) => x * 2).join(',')} harness%=${selfPct} cores%=${corePct.join(',')} pg=${act.rows.map((r) => `${r.s}:${r.n}`).join(' ')}`,
      );
    } catch (e) {
      print(`  trace: ${(e as Error).message}`);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), 500);
  return () => clearInterval(timer);
}
