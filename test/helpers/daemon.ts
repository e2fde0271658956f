/*
 * test/helpers/daemon.ts — run the built `smtpd` as a separate process,
 * on a configuration written to a temporary folder, and read its log.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../../..');
export const SMTPD = join(REPO, 'dist/src/cli/smtpd.js');

export interface DaemonHandle {
  readonly dir: string;
  readonly port: number;
  /** Every bound port, in the order the listeners were logged. */
  readonly ports: readonly number[];
  readonly proc: ChildProcess;
  readonly logs: string[];
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  kill(): Promise<void>;
  cleanup(): void;
}

/** A temporary folder for one test's daemon(s). */
/** Folders made by tempDir(), removed when the test process exits (whatever the test did). */
const madeDirs: string[] = [];
let cleanupHooked = false;

export function tempDir(prefix = 'postern-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // As root, smtpd's SMTP side runs as _postern and must reach the spool inside (search only, no listing).
  if (process.getuid?.() === 0) chmodSync(dir, 0o711);
  madeDirs.push(dir);
  if (!cleanupHooked) {
    cleanupHooked = true;
    process.once('exit', () => {
      for (const d of madeDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}

/**
 * Start smtpd -d on `config` (text; "$DIR" is replaced with the folder). The
 * port is read from the "listening on … port N" log line, so `port 0` works.
 */
/**
 * Receive-side tests keep what they queue: deliveries are paused (`-P mda -P mta`) unless `deliver: true`.
 */
export async function startDaemon(config: string, opts: { dir?: string; args?: string[]; env?: NodeJS.ProcessEnv; deliver?: boolean } = {}): Promise<DaemonHandle> {
  ensurePrivsepUser();
  const dir = opts.dir ?? tempDir();
  const file = join(dir, 'smtpd.conf');
  writeFileSync(file, config.replaceAll('$DIR', dir));
  const proc = spawn(process.execPath, [SMTPD, '-d', '-f', file, ...(opts.deliver ? [] : ['-P', 'mda', '-P', 'mta']), ...(opts.args ?? [])], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  const logs: string[] = [];
  const waiters: (() => void)[] = [];
  let partial = '';
  const onData = (d: Buffer): void => {
    partial += d.toString('utf8');
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      logs.push(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    waiters.splice(0).forEach((w) => w());
  };
  proc.stderr?.on('data', onData);
  proc.stdout?.on('data', onData);
  let exited: number | null | undefined;
  const exitP = new Promise<number | null>((r) => proc.on('exit', (code) => {
    exited = code;
    waiters.splice(0).forEach((w) => w());
    r(code);
  }));
  const waitForLog = async (re: RegExp, timeoutMs = 10_000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = logs.find((l) => re.test(l));
      if (hit) return hit;
      if (exited !== undefined) throw new Error(`smtpd exited (${exited}) before logging ${re}:\n${logs.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${re} in the log:\n${logs.join('\n')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  };
  try {
    // 60 s: as root, two Node.js processes start one after the other (privilege separation), on a busy machine.
    await waitForLog(/smtpd ready/, 60_000);
  } catch (e) {
    // A daemon that did not come up must not outlive the test (it would keep the test file running).
    proc.kill('SIGKILL');
    throw e;
  }
  const ports = logs.map((l) => /listening on \S+ port (\d+)/.exec(l)).filter((x) => x).map((m) => Number(m?.[1]));
  const port = ports[0] ?? 0;
  return {
    dir,
    port,
    ports,
    proc,
    logs,
    waitForLog,
    async stop(signal = 'SIGTERM') {
      if (exited !== undefined) return exited;
      proc.kill(signal);
      return exitP;
    },
    async kill() {
      if (exited !== undefined) return;
      proc.kill('SIGKILL');
      await exitP;
    },
    cleanup() {
      if (exited === undefined) proc.kill('SIGKILL');
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const PRIVSEP_USER = '_postern';
// Every test that starts smtpd as root, through startDaemon() or not, needs the user.
queueMicrotask(() => ensurePrivsepUser());

/**
 * As root, smtpd runs its SMTP side as _postern and refuses to start without it (`postern install`
 * creates it): made here when missing, as install would, so that the suite runs on a fresh machine.
 */
export function ensurePrivsepUser(): void {
  if (process.getuid?.() !== 0) return;
  if (spawnSync('id', ['-u', PRIVSEP_USER]).status === 0) return;
  const r = spawnSync('useradd', ['--system', '--user-group', '--home-dir', '/nonexistent', '--no-create-home', '--shell', '/usr/sbin/nologin', '--comment', 'Postern MTA', PRIVSEP_USER], { encoding: 'utf8' });
  // Another test file may have made it meanwhile.
  if (r.status !== 0 && spawnSync('id', ['-u', PRIVSEP_USER]).status !== 0) throw new Error(`useradd ${PRIVSEP_USER}: ${r.stderr}`);
}

/** A minimal configuration for tests: one listener on 127.0.0.1, local delivery to mbox, local relay. */
/** The head of a configuration with STARTTLS and AUTH: the certificate for mx.test.example (makeCert) and the table `creds` in $DIR, no delay after a failed AUTH. */
export function tlsAuthHead(): string {
  return `queue path "$DIR/spool"
hostname "mx.test.example"
pki mx.test.example cert "$DIR/mx.test.example.crt"
pki mx.test.example key "$DIR/mx.test.example.key"
table creds file:$DIR/creds
smtp auth-fail-delay 0
`;
}

export function basicConfig(extra = ''): string {
  return `# test configuration
queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
${extra}
action "local" mbox
action "relay" relay
match from any for domain "test.example" action "local"
match from local for local action "local"
match from local for any action "relay"
`;
}
