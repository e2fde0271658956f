/*
 * bench/util.ts — small helpers shared by the benchmark harness: free
 * ports, waiting for a listener, bounded polling, child processes with a
 * raised file-descriptor limit, and the repository's paths.
 *
 * Every wait here is bounded in time; nothing loops for ever.
 */
import net from 'node:net';
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (dist/bench/util.js → ../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** bench/ in the source tree (peers and results live there, not in dist/). */
export const BENCH_DIR = join(REPO_ROOT, 'bench');
export const PEERS_DIR = join(BENCH_DIR, '.peers');
export const RESULTS_DIR = join(BENCH_DIR, 'results');
/** Compiled harness scripts (load.js, idle.js) run as child processes. */
export const DIST_BENCH_DIR = dirname(fileURLToPath(import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TCP port the kernel says is free on `host` right now. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolvePort(port));
    });
  });
}

/** Resolves once something accepts connections on host:port; throws after timeoutMs. */
export async function waitListening(host: string, port: number, timeoutMs: number, alive?: () => boolean): Promise<void> {
  const end = performance.now() + timeoutMs;
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (alive && !alive()) throw new Error(`the server exited before listening on ${host}:${port}`);
    if (performance.now() > end) break;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
}

/** Resolves with true when a connection to host:port is greeted with 220 (false on refusal, another reply or 10 s of silence). */
export function greeted(host: string, port: number): Promise<boolean> {
  return new Promise((resolveGreeting) => {
    const s = net.connect({ host, port });
    let text = '';
    const done = (ok: boolean): void => {
      s.destroy();
      resolveGreeting(ok);
    };
    s.setTimeout(10_000, () => done(false));
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('\n')) done(text.startsWith('220'));
    });
    s.once('error', () => done(false));
  });
}

/** Polls `probe` every `everyMs` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function pollUntil(probe: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  const max = Math.ceil(timeoutMs / everyMs) + 1;
  for (let i = 0; i < max; i++) {
    if (await probe()) return true;
    if (performance.now() >= end) return false;
    await sleep(everyMs);
  }
  return false;
}

/** The file-descriptor limit wanted for every server and load generator (10,000 idle sessions need it). */
export const NOFILE_WANTED = 65_536;

let nofile: number | undefined;
/**
 * The limit children actually get: NOFILE_WANTED when this process may
 * raise it that far (root with CAP_SYS_RESOURCE), else the hard limit —
 * raising the soft limit up to the hard one needs no privilege.
 */
export function nofileLimit(): number {
  if (nofile !== undefined) return nofile;
  if (!hasPrlimit()) return (nofile = 0);
  if (spawnSync('prlimit', [`--nofile=${NOFILE_WANTED}:${NOFILE_WANTED}`, 'true'], { stdio: 'ignore' }).status === 0) return (nofile = NOFILE_WANTED);
  const hard = Number(spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim());
  return (nofile = Number.isInteger(hard) && hard > 0 ? hard : 0);
}

/** prlimit's arguments for a child with nofileLimit() descriptors (empty: run the command as it is). */
export function limitPrefix(): string[] {
  const n = nofileLimit();
  return n > 0 ? ['prlimit', `--nofile=${n}:${n}`, '--'] : [];
}

/**
 * Spawns `cmd args` with RLIMIT_NOFILE raised to nofileLimit() through
 * util-linux prlimit (which execs the command: the pid is the command's).
 * Without prlimit the child inherits the harness's limit.
 */
export function spawnWithLimits(cmd: string, args: readonly string[], opts: SpawnOptions & { logFile?: string }): ChildProcess {
  const { logFile, ...rest } = opts;
  const stdio: SpawnOptions['stdio'] = logFile
    ? ['ignore', openSync(logFile, 'a'), openSync(logFile, 'a')]
    : (rest.stdio ?? ['ignore', 'pipe', 'pipe']);
  const prefix = limitPrefix();
  const child = prefix.length > 0 ? spawn(prefix[0] as string, [...prefix.slice(1), cmd, ...args], { ...rest, stdio }) : spawn(cmd, [...args], { ...rest, stdio });
  if (logFile && Array.isArray(stdio)) {
    for (const fd of stdio.slice(1)) if (typeof fd === 'number') closeSync(fd);
  }
  return child;
}

let prlimitKnown: boolean | undefined;
export function hasPrlimit(): boolean {
  prlimitKnown ??= spawnSync('prlimit', ['--version'], { stdio: 'ignore' }).status === 0;
  return prlimitKnown;
}

/** Sends `signal` to `pid`; false when it no longer exists. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits for a child to exit, up to timeoutMs; true when it did. */
export function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((r) => {
    const t = setTimeout(() => r(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      r(true);
    });
  });
}

/** Runs a command to completion (bounded), returning its status and output. */
export function run(cmd: string, args: readonly string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, [...args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    timeout: opts.timeoutMs ?? 300_000,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

export function which(cmd: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** `rm -rf DIR` in a child process: several folders of a million files each can go at once (on the machine's cores). */
export function removeTree(dir: string): Promise<void> {
  return new Promise((resolve) => spawn('rm', ['-rf', '--', dir], { stdio: 'ignore' }).once('close', () => resolve()));
}

export const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * A fresh work folder under the system's temporary folder, 0711: smtpd
 * started as root runs its SMTP side as _postern (privilege separation),
 * which must be able to pass through to the spool inside (mkdtemp makes 0700).
 */
export function workFolder(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o711);
  return dir;
}
