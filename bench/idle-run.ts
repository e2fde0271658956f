/*
 * bench/idle-run.ts — the `idle` scenario: Postern holding many idle SMTP
 * sessions (bench/idle.ts is the client), its memory per session, and how
 * long a new client meanwhile waits for its greeting.
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ExtraContext, ExtraScenario } from './extra-scenarios.js';
import { sampleTree } from './proc.js';
import { idleLines, type IdleResult } from './report.js';
import { postern } from './servers/postern.js';
import type { RunningServer } from './servers/server.js';
import { DIST_BENCH_DIR, freePort, sleep, spawnWithLimits, workFolder } from './util.js';

async function runIdle(sessions: number, ctx: ExtraContext): Promise<IdleResult> {
  const { resolver } = ctx;
  const empty = { rssKb: 0, pssKb: 0 };
  const fail = (error: string): IdleResult => ({ requested: sessions, held: 0, failed: {}, openMs: 0, baseline: empty, loaded: empty, perSessionKb: { rss: NaN, pss: NaN }, greetingMs: { count: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN }, probeFailures: 0, dropped: 0, error });
  const why = postern.unavailable();
  if (why) return fail(why);
  const workDir = workFolder('postern-bench-idle-');
  let server: RunningServer | undefined;
  try {
    const port = await freePort();
    // Room for every idle session and the probes; the default limits (800 in all) are reported apart.
    server = await ctx.track(postern.start({ mode: 'relay', sinkPort: 9, port, workDir, maxConnections: sessions + 1000, ...(resolver ? { resolver } : {}) }));
    await sleep(500);
    const base = [sampleTree(server.rootPid), (await sleep(200), sampleTree(server.rootPid))];
    const baseline = { rssKb: Math.min(...base.map((s) => s.rssKb)), pssKb: Math.min(...base.map((s) => s.pssKb)) };
    // Several source addresses: ~28,000 ephemeral ports each, and no single-address limit.
    const nSources = Math.max(4, Math.ceil(sessions / 5000) + 1);
    const sources = Array.from({ length: nSources }, (_, i) => `127.0.0.${i + 2}`).join(',');
    const child = spawnWithLimits(process.execPath, [join(DIST_BENCH_DIR, 'idle.js'), '--port', String(port), '--sessions', String(sessions), '--sources', sources, '--probes', '20', '--hold-ms', '120000'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const events: Record<string, Record<string, unknown>> = {};
    let loaded = empty;
    const srv = server;
    const done = new Promise<void>((resolve) => {
      const rl = createInterface({ input: child.stdout! });
      rl.on('line', (line) => {
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        events[String(m['event'])] = m;
        if (m['event'] === 'probes') {
          // Every session is held and the probes are done: sample memory a few times, then let go.
          void (async () => {
            const s: { rssKb: number; pssKb: number }[] = [];
            for (let i = 0; i < 4; i++) {
              s.push(sampleTree(srv.rootPid));
              await sleep(250);
            }
            loaded = { rssKb: Math.max(...s.map((x) => x.rssKb)), pssKb: Math.max(...s.map((x) => x.pssKb)) };
            child.stdin?.write('close\n');
          })();
        }
      });
      child.on('close', () => resolve());
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    await done;
    clearTimeout(timer);
    const held = Number(events['held']?.['held'] ?? 0);
    const probes = events['probes'] as { greetingMs?: IdleResult['greetingMs']; failures?: number } | undefined;
    if (!events['held']) return fail('the idle-session client did not report');
    return {
      requested: sessions,
      held,
      failed: (events['held']['failed'] as Record<string, number>) ?? {},
      openMs: Number(events['held']['openMs'] ?? 0),
      baseline,
      loaded,
      perSessionKb: { rss: held > 0 ? (loaded.rssKb - baseline.rssKb) / held : NaN, pss: held > 0 ? (loaded.pssKb - baseline.pssKb) / held : NaN },
      greetingMs: probes?.greetingMs ?? { count: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN },
      probeFailures: probes?.failures ?? 0,
      dropped: Number(events['closed']?.['dropped'] ?? 0),
    };
  } catch (e) {
    return fail((e as Error).message);
  } finally {
    await ctx.stopTracked(server);
    ctx.trash(workDir);
  }
}

export const idleScenario: ExtraScenario = {
  name: 'idle',
  title: 'idle sessions against Postern',
  quick: true,
  servers: ['postern'],
  async run(ctx) {
    ctx.progress(`idle: holding ${ctx.params.idleSessions} sessions against Postern…`);
    const r = await runIdle(ctx.params.idleSessions, ctx);
    return { lines: idleLines(r), data: r, ...(r.error ? { error: r.error } : {}) };
  },
};
