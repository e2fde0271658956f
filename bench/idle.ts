/*
 * bench/idle.ts — hold many idle SMTP sessions open, and meanwhile time
 * how long a new client waits for its greeting.
 *
 *   node dist/bench/idle.js --port N [--host 127.0.0.1] [--sessions 10000]
 *        [--sources 127.0.0.2,127.0.0.3,…] [--probes 20] [--batch 200]
 *
 * Each session connects from one of the source addresses in turn (one
 * address has about 28,000 ephemeral ports; several keep clear of that
 * and of per-address limits), reads the 220 greeting, says EHLO, reads
 * the 250, and then says nothing. Connections open BATCH at a time so the
 * server's listen backlog is not the thing measured.
 *
 * Dialogue with the harness, one JSON line per event on stdout:
 *   {"event":"held", held, failed, openMs}   every session is open (or failed)
 *   {"event":"probes", greetingMs, …}        PROBES new clients from 127.0.0.1,
 *                                            one after another: connect → 220
 * then it waits for "close" on stdin (at most --hold-ms), closes everything,
 * reports {"event":"closed", dropped} (sessions the server closed while
 * held) and exits. Every step is bounded in time.
 */
import net from 'node:net';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { connectWithin } from './connect.js';
import { summarizeLatencies, type LatencySummary } from './stats.js';

export interface IdleOptions {
  readonly host: string;
  readonly port: number;
  readonly sessions: number;
  readonly sources: readonly string[];
  readonly batch: number;
  readonly stepTimeoutMs: number;
  /** Stop opening after this long, whatever is left. */
  readonly openBudgetMs: number;
}

/** Reads until a final reply line (three digits and a space) has arrived; resolves with its code. */
function finalReply(s: net.Socket, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => done(new Error('timeout')), timeoutMs);
    const onData = (d: Buffer): void => {
      buf += d.toString('latin1');
      const m = /(?:^|\n)(\d{3}) [^\n]*\n/.exec(buf);
      if (m) done(undefined, Number(m[1]));
      else if (buf.length > 65_536) done(new Error('reply too long'));
    };
    const onEnd = (): void => done(new Error('closed'));
    const onError = (e: NodeJS.ErrnoException): void => done(new Error(e.code ?? e.message));
    function done(err: Error | undefined, code?: number): void {
      clearTimeout(t);
      s.off('data', onData);
      s.off('close', onEnd);
      s.off('error', onError);
      if (err) reject(err);
      else resolve(code as number);
    }
    s.on('data', onData);
    s.once('close', onEnd);
    s.once('error', onError);
  });
}

export interface Held {
  readonly sockets: net.Socket[];
  readonly failed: Record<string, number>;
  readonly openMs: number;
  /** Sessions closed by the server after they were opened. */
  dropped(): number;
}

/** Opens `sessions` idle sessions (greeting read, EHLO answered). */
export async function holdSessions(o: IdleOptions): Promise<Held> {
  const sockets: net.Socket[] = [];
  const failed: Record<string, number> = {};
  let dropped = 0;
  const t0 = performance.now();
  let next = 0;
  async function one(i: number): Promise<void> {
    const source = o.sources.length > 0 ? o.sources[i % o.sources.length] : undefined;
    let s: net.Socket | undefined;
    try {
      s = await connectWithin(o.host, o.port, source, o.stepTimeoutMs);
      const greeting = await finalReply(s, o.stepTimeoutMs);
      if (greeting !== 220) throw new Error(`greeting ${greeting}`);
      s.write('EHLO idle.bench.test\r\n');
      const ehlo = await finalReply(s, o.stepTimeoutMs);
      if (ehlo !== 250) throw new Error(`EHLO ${ehlo}`);
      s.on('error', () => undefined);
      s.once('close', () => dropped++);
      sockets.push(s);
    } catch (e) {
      s?.destroy();
      const k = (e as Error).message;
      failed[k] = (failed[k] ?? 0) + 1;
    }
  }
  async function worker(): Promise<void> {
    for (let guard = 0; guard < o.sessions + 1 && next < o.sessions && performance.now() - t0 < o.openBudgetMs; guard++) await one(next++);
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.batch, o.sessions)) }, worker));
  return { sockets, failed, openMs: performance.now() - t0, dropped: () => dropped };
}

/** Times connect → 220 for `n` new clients, one after another (not from the held sessions' addresses). */
export async function probeGreeting(host: string, port: number, n: number, timeoutMs: number): Promise<{ greetingMs: LatencySummary; failures: number }> {
  const times: number[] = [];
  let failures = 0;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    let s: net.Socket | undefined;
    try {
      s = await connectWithin(host, port, undefined, timeoutMs);
      const code = await finalReply(s, timeoutMs);
      if (code === 220) times.push(performance.now() - t);
      else failures++;
      s.end('QUIT\r\n');
    } catch {
      failures++;
    } finally {
      s?.destroy();
    }
  }
  return { greetingMs: summarizeLatencies(times), failures };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      sessions: { type: 'string', default: '10000' },
      sources: { type: 'string', default: '127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5' },
      probes: { type: 'string', default: '20' },
      batch: { type: 'string', default: '200' },
      'hold-ms': { type: 'string', default: '120000' },
      'timeout-ms': { type: 'string', default: '20000' },
    },
  });
  const out = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0) {
    process.stderr.write('idle: --port is required\n');
    process.exit(2);
  }
  const timeoutMs = Number(values['timeout-ms']);
  const held = await holdSessions({
    host: values.host,
    port,
    sessions: Number(values.sessions),
    sources: values.sources.split(',').filter(Boolean),
    batch: Number(values.batch),
    stepTimeoutMs: timeoutMs,
    openBudgetMs: 180_000,
  });
  out({ event: 'held', held: held.sockets.length, failed: held.failed, openMs: held.openMs });
  const probes = await probeGreeting(values.host, port, Number(values.probes), timeoutMs);
  out({ event: 'probes', ...probes, stillHeld: held.sockets.length - held.dropped() });
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, Number(values['hold-ms']));
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (l) => {
      if (l.trim() === 'close') {
        clearTimeout(t);
        rl.close();
        resolve();
      }
    });
    rl.on('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
  const dropped = held.dropped();
  for (const s of held.sockets) s.destroy();
  out({ event: 'closed', dropped });
  process.exit(0);
}
