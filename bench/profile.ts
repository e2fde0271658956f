/*
 * bench/profile.ts — what dominates a V8 CPU profile (node --cpu-prof).
 *
 *   node dist/bench/profile.js FILE.cpuprofile [--top 25]
 *
 * Self time of a function = the time of the samples taken while it was
 * the innermost frame. Functions are grouped by name and location; files
 * by URL (node:internal/…, Postern's dist/src/…, or the pseudo-frames
 * "(garbage collector)", "(program)" — native code outside JavaScript —
 * and "(idle)").
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface SelfTime {
  readonly name: string;
  /** file:line (the repository's path when it is ours). */
  readonly where: string;
  readonly ms: number;
  /** Share of the busy time (idle excluded), 0..1. */
  readonly share: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly functions: readonly SelfTime[];
  readonly files: readonly SelfTime[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1); // dist/src/….js: line numbers are the compiled file's
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + 14);
  return url.replace(/^file:\/\//, '');
}

/** Self time by function and by file, largest first. */
export function summarizeProfile(p: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  // timeDeltas[i] is the time before sample i; attribute it to the sample (V8's own convention in DevTools).
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, deltas[i] ?? 0));
  }
  const fn = new Map<string, { name: string; where: string; us: number }>();
  const file = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const cf = node.callFrame;
    const name = cf.functionName || (cf.url ? '(anonymous)' : '(native)');
    if (name === '(idle)') {
      idleUs += us;
      continue;
    }
    const url = shortUrl(cf.url);
    const where = url ? `${url}:${cf.lineNumber + 1}` : '';
    const key = `${name}\u0000${where}`;
    const e = fn.get(key);
    if (e) e.us += us;
    else fn.set(key, { name, where, us });
    const fkey = url || name;
    file.set(fkey, (file.get(fkey) ?? 0) + us);
  }
  const busyUs = Math.max(1, totalUs - idleUs);
  const functions = [...fn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, ms: e.us / 1000, share: e.us / busyUs }));
  const files = [...file.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, us]) => ({ name: k, where: '', ms: us / 1000, share: us / busyUs }));
  return { totalMs: totalUs / 1000, idleMs: idleUs / 1000, busyMs: busyUs / 1000, functions, files };
}

/** The summary as Markdown tables. */
export function formatProfile(s: ProfileSummary, title: string): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  const lines = [
    `### ${title}`,
    '',
    `Busy ${(s.busyMs / 1000).toFixed(2)} s of ${(s.totalMs / 1000).toFixed(2)} s profiled (idle ${(s.idleMs / 1000).toFixed(2)} s).`,
    '',
    '| self time | share of busy | function | where |',
    '| ---: | ---: | --- | --- |',
    ...s.functions.map((f) => `| ${f.ms.toFixed(0)} ms | ${pct(f.share)} | \`${f.name}\` | ${f.where} |`),
    '',
    '| self time | share of busy | file |',
    '| ---: | ---: | --- |',
    ...s.files.map((f) => `| ${f.ms.toFixed(0)} ms | ${pct(f.share)} | ${f.name} |`),
    '',
  ];
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
  if (positionals.length === 0) {
    process.stderr.write('usage: node dist/bench/profile.js FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  for (const f of positionals) {
    const p = JSON.parse(readFileSync(f, 'utf8')) as CpuProfile;
    process.stdout.write(formatProfile(summarizeProfile(p, Number(values.top)), f) + '\n');
  }
}
