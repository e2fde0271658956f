/*
 * bench/run.ts — `npm run bench`: Postern side by side with Postfix,
 * OpenSMTPD and Haraka on this machine, in one run.
 *
 * For each scenario (bench/scenarios.ts) and each server taking part:
 * start a fresh instance (its own folder, port, queue), warm it up, then
 * measure RUNS runs of DURATION each. A run is the load generator (or
 * smtp-source) in a child process while the harness samples the server's
 * process tree (memory, CPU); then the harness waits until what was
 * acknowledged has arrived where it is counted, and keeps
 * min(acknowledged, arrived). Then: the disk's fsync rate, and 10,000
 * idle sessions against Postern. Results are printed and written as JSON
 * and Markdown under bench/results/ (see bench/README.md).
 *
 * Everything is bounded: each run by its duration plus a drain limit,
 * each child process by a timeout, each wait by a deadline.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { startDnsStub } from './dns.js';
import type { LoadResult } from './load.js';
import { makePlan, USAGE, type Plan } from './options.js';
import { PeakSampler, cpuDelta, sampleTree, treeCpuByName, treeCpuSeconds } from './proc.js';
import { formatProfile, summarizeProfile, type CpuProfile } from './profile.js';
import { formatReportMarkdown, formatReportText, summarizeCell, type BenchResults, type CellResult, type ProfileResult, type RunFigures } from './report.js';
import { SCENARIOS, type Params, type Scenario } from './scenarios.js';
import { ensurePeers } from './setup.js';
import { USER_PREFIX } from './users.js';
import { runSmtpSource, smtpSourceUnavailable } from './smtp-source.js';
import { destinationUnavailable, destinationVersions, openDestination, TRASH_OF_MAILBOXES, type Destination } from './destinations.js';
import type { ExtraResult } from './extra-scenarios.js';
import { haraka, haraka2 } from './servers/haraka.js';
import { opensmtpd } from './servers/opensmtpd.js';
import { postern } from './servers/postern.js';
import { postfix } from './servers/postfix.js';
import { logTail, type AuthOptions, type Mode, type RunningServer, type ServerKind } from './servers/server.js';
import { AUTH_DOMAIN, AUTH_SELECTOR, AUTH_SOURCE, authEnv, closeAuthEnv } from './mailauth-env.js';
import { sinkKind } from './servers/sink.js';
import { floorKind } from './servers/floor.js';
import { round1, stopwatch, type CellTime, type ExtraTime } from './timings.js';
import { DIST_BENCH_DIR, REPO_ROOT, RESULTS_DIR, freePort, removeTree, sleep, spawnWithLimits, workFolder } from './util.js';

const KINDS: Record<string, ServerKind> = { postern, postfix, opensmtpd, haraka, haraka2, sink: sinkKind, floor: floorKind };

const progress = (line: string): void => void process.stderr.write(`${line}\n`);

/** Servers and sinks running now: stopped if the harness is interrupted. */
const live = new Set<{ stop(): Promise<void> }>();
async function track<T extends { stop(): Promise<void> }>(p: Promise<T>): Promise<T> {
  const x = await p;
  live.add(x);
  return x;
}
async function stopTracked(x: { stop(): Promise<void> } | undefined): Promise<void> {
  if (!x) return;
  live.delete(x);
  await x.stop();
}
async function stopAll(why: string): Promise<never> {
  process.stderr.write(`bench: ${why}; stopping ${live.size} server(s)\n`);
  await Promise.race([Promise.all([...live].map((x) => x.stop().catch(() => undefined)).concat(closeAuthEnv().catch(() => undefined))), sleep(20_000)]);
  emptyTrash();
  process.exit(130);
}
process.once('SIGINT', () => void stopAll('interrupted'));
process.once('SIGTERM', () => void stopAll('terminated'));

/* ------------------------------------------------------ load runners */

interface LoadRun {
  /** 250s after the final dot. */
  readonly accepted: number;
  readonly elapsedMs: number;
  /** performance.now() when the generator began connecting. */
  readonly startedAt: number;
  readonly latencyMs?: LoadResult['latency'];
  readonly errors: Record<string, number>;
  readonly notes: string[];
}

/** Runs bench/load.js in a child process (its own event loop and fd limit); bounded by duration + 90 s. */
function runLoadChild(o: { port: number; sessions: number; size: number; rcpts: number; durationMs: number; count?: number; messageFile?: string; source?: string }): Promise<LoadRun> {
  const args = [join(DIST_BENCH_DIR, 'load.js'), ...(o.count !== undefined ? ['--count', String(o.count)] : []), ...(o.messageFile ? ['--message-file', o.messageFile] : []), ...(o.source ? ['--source', o.source] : []), '--port', String(o.port), '--sessions', String(o.sessions), '--size', String(o.size), '--rcpts', String(o.rcpts), '--duration-ms', String(o.durationMs), '--timeout-ms', '20000', '--local-part', USER_PREFIX];
  return new Promise((resolve) => {
    const child = spawnWithLimits(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let startedAt = performance.now();
    let result: (LoadResult & { event: string }) | undefined;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 2000) stderr += d.toString();
    });
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      try {
        const m = JSON.parse(line) as { event: string } & LoadResult;
        if (m.event === 'start') startedAt = performance.now();
        else if (m.event === 'result') result = m;
      } catch {
        /* not ours */
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), o.durationMs + 90_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      if (!result) {
        resolve({ accepted: 0, elapsedMs: performance.now() - startedAt, startedAt, errors: { 'load generator failed': 1 }, notes: [`load.js exited ${status}: ${stderr.trim().slice(0, 300)}`] });
        return;
      }
      const notes: string[] = [];
      if (result.broken > 0) notes.push(`${result.broken} transaction(s) cut by a lost connection or a timeout`);
      if (result.refused > 0) notes.push(`${result.refused} transaction(s) refused${result.sampleReplies.length ? `: ${result.sampleReplies[0]}` : ''}`);
      resolve({ accepted: result.accepted, elapsedMs: result.elapsedMs, startedAt, latencyMs: result.latency, errors: { ...result.errors }, notes });
    });
  });
}

/** smtp-source for about `durationMs` at the rate `hint` (msgs/s); killed at 2 × duration + 2 s. */
async function runSourceLoad(o: { port: number; sessions: number; size: number; rcpts: number; reuse: boolean; durationMs: number; hint: number }): Promise<LoadRun & { rate: number }> {
  const messages = Math.max(o.sessions * 4, Math.min(200_000, Math.round((o.hint * o.durationMs) / 1000)));
  let startedAt = performance.now();
  const timeoutMs = o.durationMs * 2 + 2000;
  const r = await runSmtpSource({ host: '127.0.0.1', port: o.port, sessions: o.sessions, messages, size: o.size, rcpts: o.rcpts, reuse: o.reuse, timeoutMs }, () => (startedAt = performance.now()));
  const notes: string[] = [];
  if (r.timedOut) notes.push(`smtp-source stopped after ${(timeoutMs / 1000).toFixed(0)} s with ${r.completed} of ${messages} messages sent`);
  else if (r.status !== 0) notes.push(`smtp-source: ${r.error.split('\n')[0] ?? `status ${r.status}`}`);
  return { accepted: r.completed, elapsedMs: r.elapsedMs, startedAt, errors: {}, notes, rate: (r.completed * 1000) / Math.max(1, r.elapsedMs) };
}

/* ------------------------------------------------------------- cells */

/** Waits until `count()` reaches `target`, stalls for `stallMs`, or `maxMs` passes; returns the last count. */
async function settle(count: () => Promise<number>, target: number, stallMs: number, maxMs: number): Promise<number> {
  const t0 = performance.now();
  let last = await count();
  let changed = performance.now();
  for (let i = 0; i < 100_000 && last < target; i++) {
    const now = performance.now();
    if (now - t0 > maxMs || now - changed > stallMs) break;
    await sleep(50);
    const n = await count();
    if (n > last) {
      last = n;
      changed = performance.now();
    }
  }
  return last;
}

/** Rate hints for smtp-source (msgs/s by server), from the load scenarios already run. */
const rateHints = new Map<string, number>();

interface CellContext {
  readonly params: Params;
  readonly keep: boolean;
  readonly cpuProfileDir?: string;
  /** "127.0.0.1:PORT" of the DNS stub, for Postern. */
  readonly resolver?: string;
}

/**
 * Server folders to delete once the whole run is over. Deleting a queue of
 * tens of thousands of files between cells would slow the next server's
 * file creation (ext4 skips recently freed inodes for a while, scanning
 * for others), so whichever server came after the busiest one would pay.
 */
const trash: string[] = [];

/** The same at the end of a run: a few `rm -rf` side by side (it is the kernel's work, on every core). */
async function emptyTrashAtTheEnd(): Promise<void> {
  const dirs = [...trash.splice(0), ...(keepAll ? [] : [TRASH_OF_MAILBOXES])];
  await Promise.all([0, 1, 2].map(async () => {
    for (let d = dirs.shift(); d !== undefined; d = dirs.shift()) await removeTree(d);
  }));
}

function emptyTrash(): void {
  for (const d of trash.splice(0)) rmSync(d, { recursive: true, force: true });
  if (!keepAll) rmSync(TRASH_OF_MAILBOXES, { recursive: true, force: true });
}
/** --keep: the users' mailboxes are kept too (under TRASH_OF_MAILBOXES). */
let keepAll = false;

/** Wall time of the steps of the last cell (for the progress line). */
let cellTimes = { start: 0, stop: 0, total: 0 };

async function runCell(kind: ServerKind, scenario: Scenario, ctx: CellContext): Promise<CellResult> {
  const tCell = performance.now();
  cellTimes = { start: 0, stop: 0, total: 0 };
  const base = { scenario: scenario.name, server: kind.name, tool: scenario.tool, mode: scenario.mode, ...(kind.notSameWork ? { notSameWork: kind.notSameWork } : {}) };
  const cannot = kind.cannot?.(scenario.mode);
  const why = kind.unavailable() ?? (cannot ? `cannot: ${cannot}` : undefined) ?? (kind.name === 'sink' ? undefined : destinationUnavailable(scenario.mode)) ?? (scenario.tool === 'smtp-source' ? smtpSourceUnavailable() : undefined);
  if (why) return summarizeCell(base, [], why);
  const workDir = workFolder(`postern-bench-${kind.name}-`);
  chmodSync(workDir, 0o755); // the peers' unprivileged processes (Postfix's, Dovecot's) reach their folders
  const dirs = [workDir];
  let dest: Destination | undefined;
  let server: RunningServer | undefined;
  const runs: RunFigures[] = [];
  const rcpts = scenario.rcpts;
  try {
    const mode: Mode = scenario.mode;
    if (kind.name !== 'sink') dest = await track(openDestination(mode, rcpts, join(workDir, 'destination'), `before-${scenario.name}-${kind.name}-${Date.now()}`));
    let port = await freePort();
    // Mail authentication: one key, one nsd and one signed message for every server of the run (bench/mailauth-env.ts).
    const env = scenario.auth ? await authEnv(() => workFolder('postern-bench-auth-'), scenario.size) : undefined;
    const auth: AuthOptions | undefined = env && scenario.auth && scenario.auth !== 'plain' ? { work: scenario.auth, domain: AUTH_DOMAIN, selector: AUTH_SELECTOR, keyFile: env.keyFile, dnsAddress: env.dnsAddress } : undefined;
    const resolver = env?.resolver ?? ctx.resolver;
    const messageFile = scenario.auth === 'verify' || scenario.auth === 'plain' ? env?.signedMessageFile : undefined;
    const tStart = performance.now();
    const serverDir = (d: string): string => {
      mkdirSync(join(d, 'server'), { recursive: true });
      return join(d, 'server');
    };
    const start = (dir: string): Promise<RunningServer> =>
      track(kind.start({ mode, port, workDir: serverDir(dir), ...(dest?.sinkPort !== undefined ? { sinkPort: dest.sinkPort } : {}), ...(dest?.lmtpPort !== undefined ? { lmtpPort: dest.lmtpPort } : {}), ...(ctx.cpuProfileDir ? { cpuProfileDir: ctx.cpuProfileDir } : {}), ...(resolver ? { resolver } : {}), ...(auth ? { auth } : {}) }));
    const startNotes: string[] = [];
    try {
      server = await start(workDir);
    } catch (e) {
      // Once more, in a fresh folder on a fresh port: in a shared work tree a build may have been rewriting dist/.
      startNotes.push(`first start failed: ${(e as Error).message}`);
      await sleep(2000);
      port = await freePort();
      const retryDir = workFolder(`postern-bench-${kind.name}-retry-`);
      chmodSync(retryDir, 0o755);
      dirs.push(retryDir);
      server = await start(retryDir);
    }
    cellTimes.start = performance.now() - tStart;
    const srv = server;
    // Deliveries, one per recipient (the sink as a server counts what it received).
    const delivered = dest ? async (): Promise<number> => dest!.count() : async (): Promise<number> => (srv.arrived ? srv.arrived() : 0);
    const lastDeliveryMs = (): number => dest?.lastDeliveryMs() ?? 0;
    const { stallMs, drainMs } = ctx.params;
    const load = (durationMs: number, count?: number): Promise<LoadRun & { rate?: number }> =>
      scenario.tool === 'load'
        ? runLoadChild({ port, sessions: scenario.sessions, size: scenario.size, rcpts, durationMs, ...(count !== undefined ? { count } : {}), ...(messageFile ? { messageFile } : {}), ...(env ? { source: AUTH_SOURCE } : {}) })
        : runSourceLoad({ port, sessions: scenario.sessions, size: scenario.size, rcpts, reuse: scenario.reuse === true, durationMs, hint: rateHints.get(kind.name) ?? 1000 });

    // Warm-up: not measured; for smtp-source it also calibrates the message count. Its mail is
    // delivered before the first run (with many recipients, one message per session is enough).
    const before0 = await delivered();
    const warm = await load(ctx.params.warmupMs, rcpts > 1 ? 1 : undefined);
    if (scenario.tool === 'smtp-source' && warm.accepted > 0) rateHints.set(kind.name, (warm.accepted * 1000) / Math.max(1, warm.elapsedMs));
    const warmArrived = await settle(delivered, before0 + warm.accepted * rcpts, stallMs, drainMs);
    if (warmArrived < before0 + warm.accepted * rcpts) throw new Error(`${before0 + warm.accepted * rcpts - warmArrived} of the warm-up's ${warm.accepted * rcpts} deliveries had not happened after ${(drainMs / 1000).toFixed(0)} s (or ${(stallMs / 1000).toFixed(0)} s without one); ${logTail(srv.logFile, 1).slice(0, 300)}`);

    for (let i = 0; i < ctx.params.runs; i++) {
      if (!srv.alive()) throw new Error('the server exited');
      const before = await delivered();
      const cpu0 = treeCpuSeconds(srv.rootPid);
      const byName0 = treeCpuByName(srv.rootPid);
      const sampler = new PeakSampler(srv.rootPid, 200).start();
      const fixed = scenario.messages ? (ctx.params.quick ? scenario.messages.quick : scenario.messages.full) : undefined;
      const r = await load(fixed !== undefined ? 60_000 : ctx.params.durationMs, fixed);
      const after = await settle(delivered, before + r.accepted * rcpts, stallMs, drainMs);
      const peak = sampler.stop();
      const cpuSeconds = treeCpuSeconds(srv.rootPid) - cpu0;
      const cpuByProcess = cpuDelta(byName0, treeCpuByName(srv.rootPid));
      const got = after - before;
      const counted = Math.min(got / rcpts, r.accepted);
      // From the first connection to the last delivery (never shorter than the load itself).
      const last = lastDeliveryMs();
      const startWall = performance.timeOrigin + r.startedAt;
      const elapsedMs = last > startWall ? Math.max(r.elapsedMs, last - startWall) : r.elapsedMs;
      const notes = [...(i === 0 ? startNotes : []), ...r.notes];
      const undrained = got < r.accepted * rcpts;
      if (undrained) notes.push(`${r.accepted * rcpts - got} of ${r.accepted * rcpts} deliveries answered 250 had not happened when counting stopped (after ${(drainMs / 1000).toFixed(0)} s, or ${(stallMs / 1000).toFixed(0)} s without one)`);
      if (undrained && i + 1 < ctx.params.runs) notes.push("later runs skipped: their deliveries would include this run's backlog");
      if (!srv.alive()) notes.push('the server exited during the run');
      runs.push({
        accepted: r.accepted,
        arrived: got,
        counted,
        elapsedMs,
        rate: (counted * 1000) / Math.max(1, elapsedMs),
        ...(r.latencyMs ? { latencyMs: r.latencyMs } : {}),
        peakRssKb: peak.peakRssKb,
        peakPssKb: peak.peakPssKb,
        peakPids: peak.peakPids,
        cpuSeconds,
        cpuByProcess,
        errors: r.errors,
        notes,
      });
      if (undrained) break;
    }
    const cell = summarizeCell(base, runs);
    if (scenario.tool === 'load' && scenario.size <= 1024 && rcpts === 1) rateHints.set(kind.name, Math.max(rateHints.get(kind.name) ?? 0, cell.rate.median));
    return cell;
  } catch (e) {
    return summarizeCell(base, runs, (e as Error).message);
  } finally {
    const tStop = performance.now();
    await stopTracked(server);
    await stopTracked(dest);
    cellTimes.stop = performance.now() - tStop;
    for (const d of dirs) {
      if (!ctx.keep) trash.push(d);
      else progress(`  kept ${d}`);
    }
    cellTimes.total = performance.now() - tCell;
  }
}

/* -------------------------------------------------------------- idle */

/* -------------------------------------------------------------- main */

/** Which of Postern's processes wrote a CPU profile, from the scripts it ran. */
function profileRole(text: string): string {
  if (text.includes('deliver-worker.js')) return 'worker';
  // The privileged parent feeds the delivery workers; the SMTP side (or the only process, not as root) does not.
  if (text.includes('worker-pool.js')) return 'parent';
  return 'smtp-side';
}

function osName(): string {
  try {
    return /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'Linux';
  } catch {
    return 'Linux';
  }
}

/** 2026-11-22T072949: sortable, and two runs in the same minute do not overwrite each other. */
function stamp(d: Date): string {
  return d.toISOString().slice(0, 19).replace(/:/g, '');
}

async function main(argv: string[]): Promise<void> {
  let plan: Plan | 'help';
  try {
    plan = makePlan(argv);
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (plan === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  keepAll = plan.keep;
  const started = new Date();
  const t0 = performance.now();
  const watch = stopwatch();
  const loadStart = loadavg();
  const setup = plan.setup ? await ensurePeers(plan.servers) : { missing: {}, log: ['setup skipped (--no-setup)'] };
  for (const l of setup.log) progress(`setup: ${l}`);

  const servers: BenchResults['servers'] = Object.fromEntries(
    [...plan.servers].map((n) => {
      const k = KINDS[n] as ServerKind;
      const unavailable = (setup.missing as Record<string, string>)[n] ?? k.unavailable();
      return [n, { version: unavailable ? '' : k.version(), method: k.method, ...(unavailable ? { unavailable } : {}) }];
    }),
  );
  const cpuList = cpus();
  const results: {
    -readonly [K in keyof BenchResults]: BenchResults[K];
  } = {
    format: 'postern-bench 2',
    label: plan.params.label,
    argv,
    startedAt: started.toISOString(),
    finishedAt: '',
    durationS: 0,
    machine: { cpus: cpuList.length, cpuModel: cpuList[0]?.model.trim() ?? '?', memoryMb: Math.round(totalmem() / 2 ** 20), kernel: release(), os: osName(), loadAvgStart: loadStart, loadAvgEnd: [] },
    params: { runs: plan.params.runs, durationMs: plan.params.durationMs, warmupMs: plan.params.warmupMs, idleSessions: plan.params.idleSessions },
    servers,
    scenarios: SCENARIOS.filter((s) => plan.scenarios.includes(s)).map((s) => ({ name: s.name, title: s.title, mode: s.mode })),
    cells: [],
    destinationVersions: destinationVersions(),
    setupLog: setup.log,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const setupS = watch.lap();
  const cellTimesAll: CellTime[] = [];
  const extraTimes: ExtraTime[] = [];
  const base = join(RESULTS_DIR, `${stamp(started)}-${plan.params.label}`);
  const saveTmp = (): void => writeFileSync(`${base}.json.tmp`, JSON.stringify(results, null, 1));

  // Postern's resolver: the stub on loopback (bench/dns.ts), or the system's with --system-resolver.
  const dns = plan.systemResolver ? undefined : await track(startDnsStub());
  const resolver = dns ? `${dns.host}:${dns.port}` : undefined;
  results.resolver = resolver ? `stub on ${resolver} (NXDOMAIN at once)` : 'the system\'s';

  const total = plan.scenarios.reduce((a, s) => a + plan.serversFor(s).length, 0);
  let done = 0;
  const cells: CellResult[] = [];
  const profiles: ProfileResult[] = [];
  const profileTables: string[] = [];
  for (const scenario of plan.scenarios) {
    for (const name of plan.serversFor(scenario)) {
      const kind = KINDS[name] as ServerKind;
      done++;
      const missing = (setup.missing as Record<string, string>)[name];
      const profileDir = plan.profile ? mkdtempSync(join(tmpdir(), 'postern-bench-prof-')) : undefined;
      if (profileDir) chmodSync(profileDir, 0o777); // the SMTP side (_postern) writes its profile there too
      const cell = missing
        ? summarizeCell({ scenario: scenario.name, server: name, tool: scenario.tool, mode: scenario.mode }, [], missing)
        : await runCell(kind, scenario, { params: plan.params, keep: plan.keep, ...(profileDir ? { cpuProfileDir: profileDir } : {}), ...(resolver ? { resolver } : {}) });
      cells.push(cell);
      results.cells = cells;
      cellTimesAll.push({ scenario: scenario.name, server: name, seconds: watch.lap(), startS: missing ? 0 : round1(cellTimes.start / 1000), stopS: missing ? 0 : round1(cellTimes.stop / 1000) });
      saveTmp();
      const lat = Number.isFinite(cell.p50Ms) ? ` (p50 ${cell.p50Ms.toFixed(1)} ms, p99 ${cell.p99Ms.toFixed(1)} ms)` : '';
      const r = cell.error ? `not run: ${cell.error}` : `${cell.rate.median.toFixed(0)} msgs/s${lat}, peak RSS ${(cell.peakRssKb / 1024).toFixed(0)} MB, PSS ${(cell.peakPssKb / 1024).toFixed(0)} MB`;
      const times = `${(cellTimes.total / 1000).toFixed(1)} s, start ${(cellTimes.start / 1000).toFixed(1)} s, stop ${(cellTimes.stop / 1000).toFixed(1)} s`;
      progress(`[${done}/${total}] ${scenario.name} ${name} (${times}): ${r}${cell.runs.some((x) => x.notes.length) ? ` — ${cell.runs.flatMap((x) => x.notes).join('; ')}` : ''}`);
      if (profileDir) {
        // Under privilege separation: the privileged parent, the SMTP side and each delivery worker write one each.
        const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
        for (const [i, file] of files.entries()) {
          const role = profileRole(readFileSync(join(profileDir, file), 'utf8'));
          const dest = `${base}-postern-${scenario.name}-${role}${files.length > 1 ? `-${i}` : ''}.cpuprofile`;
          copyFileSync(join(profileDir, file), dest);
          const summary = summarizeProfile(JSON.parse(readFileSync(dest, 'utf8')) as CpuProfile, 25);
          const rel = relative(REPO_ROOT, dest);
          profiles.push({ scenario: scenario.name, file: rel, rate: cell.rate.median, summary });
          profileTables.push(formatProfile(summary, `${scenario.name}, ${role} (${cell.rate.median.toFixed(0)} msgs/s while profiled; \`${rel}\` — open it in Chrome DevTools or speedscope for the flame graph)`));
        }
        if (files.length === 0) progress(`  no CPU profile was written in ${profileDir}`);
        rmSync(profileDir, { recursive: true, force: true });
      }
    }
  }
  for (const x of plan.extraScenarios) {
    progress(`${x.name}: ${x.title}…`);
    let r: ExtraResult;
    try {
      r = await x.run({ params: plan.params, keep: plan.keep, ...(resolver ? { resolver } : {}), trash: (d) => void (plan.keep ? progress(`  kept ${d}`) : trash.push(d)), progress, servers: plan.serverFilter, track, stopTracked });
    } catch (e) {
      r = { lines: [], error: (e as Error).message };
    }
    extraTimes.push({ name: x.name, seconds: watch.lap(), ...(r.timings ? { parts: r.timings } : {}) });
    results.extras = { ...(results.extras ?? {}), [x.name]: { title: x.title, ...r } };
    saveTmp();
  }
  if (profiles.length > 0) results.profiles = profiles;
  await closeAuthEnv();
  if (dns) {
    results.resolverQueries = dns.queries();
    await stopTracked(dns);
  }
  progress('deleting the servers\' folders…');
  await emptyTrashAtTheEnd();
  const cleanupS = watch.lap();
  results.finishedAt = new Date().toISOString();
  results.durationS = (performance.now() - t0) / 1000;
  results.timings = { setupS, cells: cellTimesAll, extras: extraTimes, cleanupS, totalS: round1(results.durationS) };
  results.machine = { ...results.machine, loadAvgEnd: loadavg() };
  writeFileSync(`${base}.json`, JSON.stringify(results, null, 1) + '\n');
  rmSync(`${base}.json.tmp`, { force: true });
  writeFileSync(`${base}.md`, formatReportMarkdown(results, profileTables));
  process.stdout.write(`${formatReportText(results)}\nwritten: ${base}.json, ${base}.md\n`);
}

// Bounded: a whole run never outlives this (the full matrix takes about 23 minutes).
const guard = setTimeout(() => void stopAll('40 minutes passed, giving up'), 40 * 60_000);
guard.unref();

main(process.argv.slice(2)).then(
  () => undefined,
  (e: Error) => {
    emptyTrash();
    process.stderr.write(`bench: ${e.stack ?? e.message}\n`);
    process.exitCode = 1;
  },
);
