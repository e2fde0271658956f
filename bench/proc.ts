/*
 * bench/proc.ts — what a server costs, read from /proc (Linux).
 *
 *  - the process tree under a root pid (every /proc/PID/stat's ppid);
 *  - memory of the whole tree: RSS and PSS from /proc/PID/smaps_rollup.
 *    Summed RSS counts a shared page once per process that maps it
 *    (Postfix's many small processes share libraries); PSS divides each
 *    shared page among its sharers, so summed PSS is the honest total;
 *  - CPU time of the tree: utime + stime + cutime + cstime of every live
 *    process. A child that exited and was reaped by a process of the tree
 *    (Postfix's smtpd after max_use sessions) is counted in its parent's
 *    cutime/cstime, so nothing is lost and nothing counted twice.
 *
 * PeakSampler samples the tree on a timer and keeps the peaks.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  /** utime + stime, clock ticks. */
  readonly selfTicks: number;
  /** cutime + cstime (reaped children), clock ticks. */
  readonly childTicks: number;
  /** One letter: R running, S sleeping, Z zombie (dead, not yet reaped), … */
  readonly state: string;
}

/** Parses one /proc/PID/stat line; comm may hold spaces and parentheses, so split after the last ')'. */
export function parseStat(line: string): ProcStat | undefined {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(line.slice(0, open).trim());
  const rest = line.slice(close + 2).split(' ');
  // rest[0] = state (field 3), rest[1] = ppid (4), rest[11..14] = utime stime cutime cstime (14..17).
  const num = (i: number): number => Number(rest[i] ?? NaN);
  const stat = { pid, ppid: num(1), comm: line.slice(open + 1, close), selfTicks: num(11) + num(12), childTicks: num(13) + num(14), state: rest[0] ?? '?' };
  return Number.isFinite(stat.pid) && Number.isFinite(stat.selfTicks) ? stat : undefined;
}

export function readStat(pid: number): ProcStat | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The process exists and has not exited (a zombie has: it only waits to be reaped, by init once its parent is gone). */
export function running(pid: number): boolean {
  const st = readStat(pid);
  return st !== undefined && st.state !== 'Z';
}

export interface Rollup {
  readonly rssKb: number;
  readonly pssKb: number;
}

/** Parses /proc/PID/smaps_rollup ("Rss:   1234 kB" lines). */
export function parseRollup(text: string): Rollup | undefined {
  const rss = /^Rss:\s+(\d+) kB/m.exec(text);
  const pss = /^Pss:\s+(\d+) kB/m.exec(text);
  if (!rss || !pss) return undefined;
  return { rssKb: Number(rss[1]), pssKb: Number(pss[1]) };
}

export function readRollup(pid: number): Rollup | undefined {
  try {
    return parseRollup(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Every pid whose ancestry reaches `root` (root included), from one scan of /proc. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [root];
  }
  for (const name of names) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(st.pid);
    else children.set(st.ppid, [st.pid]);
  }
  const out: number[] = [];
  const todo = [root];
  for (let guard = 0; todo.length > 0 && guard < 100_000; guard++) {
    const pid = todo.pop() as number;
    out.push(pid);
    for (const c of children.get(pid) ?? []) todo.push(c);
  }
  return out;
}

let clockTicks: number | undefined;
/** Clock ticks per second (getconf CLK_TCK; 100 on every Linux we know). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number((r.stdout ?? '').trim());
    clockTicks = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

export interface TreeSample {
  readonly pids: number;
  readonly rssKb: number;
  readonly pssKb: number;
  /** CPU seconds of the tree so far (see the header). */
  readonly cpuSeconds: number;
}

/** One sample of the tree under `root`. */
export function sampleTree(root: number): TreeSample {
  const pids = processTree(root);
  let rssKb = 0;
  let pssKb = 0;
  let ticks = 0;
  let live = 0;
  for (const pid of pids) {
    const st = readStat(pid);
    if (!st) continue;
    live++;
    ticks += st.selfTicks + st.childTicks;
    const r = readRollup(pid);
    if (r) {
      rssKb += r.rssKb;
      pssKb += r.pssKb;
    }
  }
  return { pids: live, rssKb, pssKb, cpuSeconds: ticks / ticksPerSecond() };
}

/** CPU seconds of the tree under `root`, without reading memory (cheaper). */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    const st = readStat(pid);
    if (st) ticks += st.selfTicks + st.childTicks;
  }
  return ticks / ticksPerSecond();
}

/**
 * CPU seconds of the tree under `root` by process name (comm); the root is
 * "NAME (root)", so that Postern's daemon is told from its workers (both
 * "node"). A reaped child's time is its parent's (cutime), so a procmail
 * run by Postfix's local(8) is under "local".
 */
export function treeCpuByName(root: number): Record<string, number> {
  const out: Record<string, number> = {};
  const tps = ticksPerSecond();
  for (const pid of processTree(root)) {
    const st = readStat(pid);
    if (!st) continue;
    const name = pid === root ? `${st.comm} (root)` : st.comm;
    out[name] = (out[name] ?? 0) + (st.selfTicks + st.childTicks) / tps;
  }
  return out;
}

/** b − a, name by name (names only in b count from 0; names gone from b are left out: their time moved to a parent). */
export function cpuDelta(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) {
    const d = v - (a[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

export interface Peak {
  readonly peakRssKb: number;
  readonly peakPssKb: number;
  readonly peakPids: number;
  readonly samples: number;
}

/** Samples a process tree every `everyMs` until stop(); keeps the peaks. */
export class PeakSampler {
  private timer: NodeJS.Timeout | undefined;
  private peakRssKb = 0;
  private peakPssKb = 0;
  private peakPids = 0;
  private samples = 0;

  constructor(private readonly root: number, private readonly everyMs = 200) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
    return this;
  }

  sample(): TreeSample {
    const s = sampleTree(this.root);
    this.samples++;
    this.peakRssKb = Math.max(this.peakRssKb, s.rssKb);
    this.peakPssKb = Math.max(this.peakPssKb, s.pssKb);
    this.peakPids = Math.max(this.peakPids, s.pids);
    return s;
  }

  stop(): Peak {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
    return { peakRssKb: this.peakRssKb, peakPssKb: this.peakPssKb, peakPids: this.peakPids, samples: this.samples };
  }
}
