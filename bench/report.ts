/*
 * bench/report.ts — the results of a benchmark run: their shape (written
 * as JSON), the summary of repeated runs, and the table printed and
 * written as Markdown. Pure: no I/O.
 */
import type { FsyncResult } from './fsync-rate.js';
import type { ProfileSummary } from './profile.js';
import type { Tool } from './scenarios.js';
import type { Mode } from './servers/server.js';
import { spread, type LatencySummary, type Spread } from './stats.js';
import { timeLines, type Timings } from './timings.js';

/** One measured run of one server in one scenario. */
export interface RunFigures {
  /** Transactions the server answered 250 (by the load generator's count). */
  readonly accepted: number;
  /** Deliveries (one per recipient) counted at the destination (maildir, Dovecot, MDA output, sink) during this run. */
  readonly arrived: number;
  /** min(accepted, arrived ÷ recipients per message): only mail that was both acknowledged and delivered. */
  readonly counted: number;
  /** Time the figure is divided by: first connection → last delivery (at least the load's own time). */
  readonly elapsedMs: number;
  /** counted / elapsed, messages per second. */
  readonly rate: number;
  readonly latencyMs?: LatencySummary;
  readonly peakRssKb: number;
  readonly peakPssKb: number;
  readonly peakPids: number;
  /** CPU seconds of the server's process tree during the run and its drain. */
  readonly cpuSeconds: number;
  /** The same by process name (bench/proc.ts treeCpuByName); seconds. */
  readonly cpuByProcess?: Readonly<Record<string, number>>;
  readonly errors: Readonly<Record<string, number>>;
  readonly notes: readonly string[];
}

export interface CellResult {
  readonly scenario: string;
  readonly server: string;
  readonly tool: Tool;
  readonly mode: Mode;
  readonly runs: readonly RunFigures[];
  /** Messages per second over the runs. */
  readonly rate: Spread;
  /** Medians over the runs of each run's p50 and p99, ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Peaks over all runs. */
  readonly peakRssKb: number;
  readonly peakPssKb: number;
  /** Median CPU time per counted message, µs. */
  readonly cpuUsPerMsg: number;
  /** Set when the cell could not run (server unavailable, cannot do the work, or failed). */
  readonly error?: string;
  /** Set when the server does not do the same work as the others: no ratio to Postfix is claimed. */
  readonly notSameWork?: string;
}

export interface IdleResult {
  readonly requested: number;
  readonly held: number;
  readonly failed: Readonly<Record<string, number>>;
  readonly openMs: number;
  readonly baseline: { readonly rssKb: number; readonly pssKb: number };
  readonly loaded: { readonly rssKb: number; readonly pssKb: number };
  readonly perSessionKb: { readonly rss: number; readonly pss: number };
  readonly greetingMs: LatencySummary;
  readonly probeFailures: number;
  readonly dropped: number;
  readonly error?: string;
}

export interface ProfileResult {
  readonly scenario: string;
  readonly file: string;
  readonly rate: number;
  readonly summary: ProfileSummary;
}

export interface ScenarioInfo {
  readonly name: string;
  readonly title: string;
  readonly mode?: Mode;
}

/** What a scenario of its own (bench/extra-scenarios.ts) reported. */
export interface ExtraReport {
  readonly title: string;
  readonly lines: readonly string[];
  readonly data?: unknown;
  readonly error?: string;
}

export interface BenchResults {
  readonly format: 'postern-bench 2';
  readonly label: string;
  readonly argv: readonly string[];
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationS: number;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly memoryMb: number;
    readonly kernel: string;
    readonly os: string;
    readonly loadAvgStart: readonly number[];
    readonly loadAvgEnd: readonly number[];
  };
  readonly params: { readonly runs: number; readonly durationMs: number; readonly warmupMs: number; readonly idleSessions: number };
  readonly servers: Readonly<Record<string, { readonly version: string; readonly method: Readonly<Record<Mode, string>>; readonly unavailable?: string }>>;
  readonly scenarios: readonly ScenarioInfo[];
  readonly cells: readonly CellResult[];
  readonly fsync?: FsyncResult;
  readonly idle?: IdleResult;
  readonly profiles?: readonly ProfileResult[];
  readonly extras?: Readonly<Record<string, ExtraReport>>;
  /** Versions of the destinations' programs (Dovecot, procmail). */
  readonly destinationVersions?: Readonly<Record<string, string>>;
  /** What answered Postern's DNS queries, and how many it answered. */
  readonly resolver?: string;
  readonly resolverQueries?: number;
  readonly setupLog: readonly string[];
  /** Where the wall time went (bench/timings.ts). */
  readonly timings?: Timings;
}

/** Sums up the runs of one cell. */
export function summarizeCell(base: { scenario: string; server: string; tool: Tool; mode: Mode; notSameWork?: string }, runs: readonly RunFigures[], error?: string): CellResult {
  const p50s = runs.map((r) => r.latencyMs?.p50 ?? NaN);
  const p99s = runs.map((r) => r.latencyMs?.p99 ?? NaN);
  return {
    ...base,
    runs,
    rate: spread(runs.map((r) => r.rate)),
    p50Ms: spread(p50s).median,
    p99Ms: spread(p99s).median,
    peakRssKb: Math.max(0, ...runs.map((r) => r.peakRssKb)),
    peakPssKb: Math.max(0, ...runs.map((r) => r.peakPssKb)),
    cpuUsPerMsg: spread(runs.map((r) => (r.counted > 0 ? (r.cpuSeconds * 1e6) / r.counted : NaN))).median,
    ...(error !== undefined ? { error } : {}),
  };
}

/* ------------------------------------------------------------ table */

const dash = '—';

function num(v: number, digits = 0): string {
  if (!Number.isFinite(v)) return dash;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** "1,234 (1,100–1,300)" or "1,234" for a single run. */
export function formatRate(s: Spread): string {
  if (s.n === 0) return dash;
  const d = s.median < 100 ? 1 : 0;
  return s.n > 1 ? `${num(s.median, d)} (${num(s.min, d)}–${num(s.max, d)})` : num(s.median, d);
}

function ms(v: number): string {
  if (!Number.isFinite(v)) return dash;
  return v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0);
}

const mb = (kb: number): string => (kb > 0 ? (kb / 1024).toFixed(1) : dash);

export const TABLE_HEADER = ['scenario', 'server', 'delivered msgs/s median (min–max)', '× Postfix', 'p50 ms', 'p99 ms', 'peak RSS MB', 'peak PSS MB', 'CPU µs/msg', 'delivered/250s', 'CPU ÷ Postfix'];

/** A cell's error on one table line (the whole text is in the JSON). */
const short = (text: string): string => (text.length > 160 ? `${text.slice(0, 157)}…` : text);

/** The rows of the main table, one per cell, in the order given. */
export function tableRows(cells: readonly CellResult[]): string[][] {
  const postfix = new Map<string, CellResult>();
  for (const c of cells) if (c.server === 'postfix' && !c.error && c.rate.n > 0) postfix.set(c.scenario, c);
  return cells.map((c) => {
    if (c.error) return [c.scenario, c.server, short(c.error.startsWith('cannot: ') ? c.error : `not run: ${c.error}`), '', '', '', '', '', '', '', ''];
    const ref = postfix.get(c.scenario);
    const comparable = ref !== undefined && c.notSameWork === undefined && c.server !== 'postfix';
    const ratio = c.notSameWork ? 'not the same work' : ref && ref.rate.median > 0 && Number.isFinite(c.rate.median) ? `${(c.rate.median / ref.rate.median).toFixed(2)}×` : dash;
    const cpuRatio = comparable && ref.cpuUsPerMsg > 0 && Number.isFinite(c.cpuUsPerMsg) ? `${(c.cpuUsPerMsg / ref.cpuUsPerMsg).toFixed(2)}` : dash;
    const counted = c.runs.reduce((a, r) => a + r.counted, 0);
    const accepted = c.runs.reduce((a, r) => a + r.accepted, 0);
    return [c.scenario, c.server, formatRate(c.rate), ratio, ms(c.p50Ms), ms(c.p99Ms), mb(c.peakRssKb), mb(c.peakPssKb), num(c.cpuUsPerMsg), `${num(counted)}/${num(accepted)}`, cpuRatio];
  });
}

/**
 * Where each server's CPU time per delivered message goes, by process name
 * (over all runs of a cell: seconds ÷ delivered messages): one line per cell
 * that has the breakdown, the largest first.
 */
export function cpuBreakdownLines(cells: readonly CellResult[]): string[] {
  const out: string[] = [];
  for (const c of cells) {
    const counted = c.runs.reduce((a, r) => a + r.counted, 0);
    if (c.error || counted === 0 || !c.runs.some((r) => r.cpuByProcess)) continue;
    const sum: Record<string, number> = {};
    for (const r of c.runs) for (const [k, v] of Object.entries(r.cpuByProcess ?? {})) sum[k] = (sum[k] ?? 0) + v;
    const parts = Object.entries(sum)
      .map(([k, v]) => [k, (v * 1e6) / counted] as const)
      .filter(([, us]) => us >= 1)
      .sort((a, b) => b[1] - a[1])
      .map(([k, us]) => `${k} ${num(us)}`);
    out.push(`${c.scenario} / ${c.server}: ${parts.join(', ')} µs`);
  }
  return out;
}

/** A plain-text table with aligned columns (numbers right-aligned). */
export function formatText(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const right = (i: number): boolean => i >= 2;
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (right(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A Markdown table (pipes in cells escaped). */
export function formatMarkdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const align = header.map((_, i) => (i >= 2 ? '---:' : '---'));
  return [`| ${header.map(esc).join(' | ')} |`, `| ${align.join(' | ')} |`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

function machineLine(r: BenchResults): string {
  const m = r.machine;
  return `${m.cpus} × ${m.cpuModel}, ${num(m.memoryMb / 1024, 1)} GB, ${m.os}, Linux ${m.kernel}; load average ${m.loadAvgStart.map((x) => x.toFixed(2)).join(' ')} at the start, ${m.loadAvgEnd.map((x) => x.toFixed(2)).join(' ')} at the end`;
}

export function fsyncLines(f: FsyncResult): string[] {
  return [
    `create + write 1 KB + fsync + rename: ${num(f.file.perSecond)} /s, p50 ${num(f.file.latencyUs.p50)} µs, p99 ${num(f.file.latencyUs.p99)} µs (${num(f.file.ops)} in a row)`,
    `the same + fsync of the folder: ${num(f.fileAndDir.perSecond)} /s, p50 ${num(f.fileAndDir.latencyUs.p50)} µs, p99 ${num(f.fileAndDir.latencyUs.p99)} µs`,
  ];
}

export function idleLines(i: IdleResult): string[] {
  if (i.error) return [`not run: ${i.error}`];
  const failed = Object.entries(i.failed).map(([k, v]) => `${k} ×${v}`).join(', ');
  return [
    `${num(i.held)} of ${num(i.requested)} idle sessions held (greeted, EHLO answered) in ${num(i.openMs / 1000, 1)} s${failed ? `; failed: ${failed}` : ''}${i.dropped ? `; ${i.dropped} closed by the server while held` : ''}`,
    `memory: RSS ${mb(i.baseline.rssKb)} → ${mb(i.loaded.rssKb)} MB, PSS ${mb(i.baseline.pssKb)} → ${mb(i.loaded.pssKb)} MB: ${num(i.perSessionKb.rss, 1)} KB RSS, ${num(i.perSessionKb.pss, 1)} KB PSS per session`,
    `a new client meanwhile waits for its 220: p50 ${ms(i.greetingMs.p50)} ms, p99 ${ms(i.greetingMs.p99)} ms, max ${ms(i.greetingMs.max)} ms (${i.greetingMs.count} probes, one after another${i.probeFailures ? `, ${i.probeFailures} failed` : ''})`,
  ];
}

/**
 * What mail authentication costs each server, like for like: auth-verify and
 * auth-sign against auth-plain (the same signed message, no checks) in the
 * same run — the rate ratio and the CPU added per delivered message.
 */
export function authCostLines(cells: readonly CellResult[]): string[] {
  const cell = (scenario: string, server: string): CellResult | undefined => cells.find((c) => c.scenario === scenario && c.server === server && c.rate.median > 0);
  return cells.flatMap((base) => {
    if (base.scenario !== 'auth-plain' || !(base.rate.median > 0)) return [];
    return ['auth-verify', 'auth-sign'].flatMap((name) => {
      const c = cell(name, base.server);
      return c ? [`${base.server}: ${name} ÷ auth-plain = ${(c.rate.median / base.rate.median).toFixed(2)}× the rate, ${num(c.cpuUsPerMsg - base.cpuUsPerMsg)} µs more CPU per message`] : [];
    });
  });
}

/** The whole report as text (printed at the end of a run). */
export function formatReportText(r: BenchResults): string {
  const out = [`Postern benchmark (${r.label}), ${r.startedAt}, ${num(r.durationS)} s`, `machine: ${machineLine(r)}`, ''];
  for (const [name, s] of Object.entries(r.servers)) out.push(`  ${name.padEnd(10)} ${s.unavailable ? `not available: ${s.unavailable}` : s.version}`);
  if (r.resolver) out.push(`  Postern's DNS resolver: ${r.resolver}${r.resolverQueries !== undefined ? `, ${r.resolverQueries} queries` : ''}`);
  out.push('');
  if (r.cells.length > 0) out.push(formatText(TABLE_HEADER, tableRows(r.cells)), '');
  const cost = authCostLines(r.cells);
  if (cost.length > 0) out.push('Mail authentication against the same message unchecked:', ...cost.map((l) => `  ${l}`), '');
  for (const [name, x] of Object.entries(r.extras ?? {})) out.push(`${x.title} (${name}):`, ...(x.error ? [`  not run: ${x.error}`] : x.lines.map((l) => `  ${l}`)), '');
  for (const p of r.profiles ?? []) {
    out.push(`CPU profile of Postern, ${p.scenario} (${num(p.rate)} msgs/s while profiled), ${p.file}:`);
    for (const f of p.summary.functions.slice(0, 15)) out.push(`  ${(f.share * 100).toFixed(1).padStart(5)} %  ${f.name}  ${f.where}`);
    out.push('');
  }
  if (r.timings) out.push('Where the time went:', ...timeLines(r.timings).map((l) => `  ${l}`), '');
  return out.join('\n');
}

/** The whole report as Markdown (written next to the JSON). */
export function formatReportMarkdown(r: BenchResults, profileTables: readonly string[] = []): string {
  const out = [
    `# Postern benchmark — ${r.label}, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `Command: \`npm run bench${r.argv.length ? ` -- ${r.argv.join(' ')}` : ''}\`; ${r.params.runs} measured run(s) of ${num(r.params.durationMs / 1000, 1)} s per cell after a ${num(r.params.warmupMs / 1000, 1)} s warm-up; ${num(r.durationS)} s in all.`,
    '',
    `Machine: ${machineLine(r)}. Other work on the machine during the run makes the figures indicative only.`,
    '',
    '| server | version | maildir | lmtp | mda | relay |',
    '| --- | --- | --- | --- | --- | --- |',
    ...Object.entries(r.servers).map(([n, s]) => `| ${n} | ${s.unavailable ? `not available: ${s.unavailable}` : s.version} | ${s.method.maildir} | ${s.method.lmtp} | ${s.method.mda} | ${s.method.relay} |`),
    '',
    ...(r.destinationVersions ? [`Destinations: ${Object.entries(r.destinationVersions).map(([k, v]) => `${k} ${v || 'not installed'}`).join('; ')}; smtp-sink from Postfix.`, ''] : []),
    ...(r.resolver ? [`Postern's DNS resolver (it looks up every sender's domain at MAIL): ${r.resolver}${r.resolverQueries !== undefined ? `, ${r.resolverQueries} queries answered` : ''}.`, ''] : []),
  ];
  if (r.cells.length > 0) {
    out.push(
      '## Throughput, latency, memory',
      '',
      'Every server does the same work: receive, queue durably, deliver. Each figure counts only mail that was answered 250 *and* delivered (counted in the users\' maildirs, Dovecot\'s mailboxes, procmail\'s output or at smtp-sink), divided by the time from the first connection to the last delivery. Latency: MAIL to the 250 after the final dot, per transaction (smtp-source reports none). Memory: peak over the runs of the sum over the server\'s processes (PSS shares shared pages out); CPU: user + system time of the server\'s whole process tree (its delivery processes and MDAs, whatever user they run as, reaped ones included) per delivered message; "CPU ÷ Postfix" is that against Postfix\'s in the same scenario. A cell that says "cannot" is a server that cannot do that work: no ratio is claimed for it, nor for a server doing other work ("not the same work").',
      '',
      ...r.scenarios.filter((s) => r.cells.some((c) => c.scenario === s.name)).map((s) => `- \`${s.name}\`: ${s.title}`),
      '',
      formatMarkdownTable(TABLE_HEADER, tableRows(r.cells)),
      '',
    );
    const cost = authCostLines(r.cells);
    if (cost.length > 0) out.push('What mail authentication costs, against `auth-plain` (the same signed message, no checks) in this run:', '', ...cost.map((l) => `- ${l}`), '');
  }
  for (const [name, x] of Object.entries(r.extras ?? {})) out.push(`## ${x.title} (\`${name}\`)`, '', ...(x.error ? [`not run: ${x.error}`] : x.lines), '');
  const breakdown = cpuBreakdownLines(r.cells);
  if (breakdown.length > 0) out.push('## CPU per delivered message, by process', '', 'User + system time of each server\'s processes, grouped by name, per delivered message (the root process marked; a reaped child counts with its parent: procmail under Postfix\'s `local`, the shells under Postern\'s daemon).', '', ...breakdown.map((l) => `- ${l}`), '');
  if (profileTables.length > 0) out.push('## CPU profile of Postern', '', ...profileTables);
  const errors = r.cells.flatMap((c) => c.runs.flatMap((run, i) => (Object.keys(run.errors).length || run.notes.length ? [`- ${c.scenario} / ${c.server} run ${i + 1}: ${[...Object.entries(run.errors).map(([k, v]) => `${k} ×${v}`), ...run.notes].join('; ')}`] : [])));
  if (errors.length > 0) out.push('## Errors and notes', '', ...errors, '');
  if (r.timings) out.push('## Where the time went', '', ...timeLines(r.timings).map((l) => (l.startsWith('  ') ? `  - ${l.trim()}` : `- ${l}`)), '');
  return out.join('\n');
}
