/*
 * bench/torture/daemon.ts — the built smtpd as a child process for the
 * torture run: started on a configuration in a folder, its log kept, its
 * ports read from the log, killed with SIGKILL and started again on the
 * same folder (the kill -9 check), and watched for an unexpected exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SMTPD = join(import.meta.dirname, '../../src/cli/smtpd.js');

export interface Daemon {
  readonly dir: string;
  readonly pid: number;
  readonly ports: readonly number[];
  readonly log: string[];
  /** Exit code or signal when it has exited, else undefined. */
  exited(): string | undefined;
  /** Log lines that betray a fault of the daemon (internal errors, uncaught exceptions). */
  faults(): string[];
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string | undefined>;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDaemon(dir: string, config: string, opts: { deliver: boolean }): Promise<Daemon> {
  const file = join(dir, 'smtpd.conf');
  writeFileSync(file, config.replaceAll('$DIR', dir));
  const args = [SMTPD, '-d', '-f', file, ...(opts.deliver ? [] : ['-P', 'mda', '-P', 'mta'])];
  const proc: ChildProcess = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  let partial = '';
  let exit: string | undefined;
  const onData = (d: Buffer): void => {
    partial += d.toString('utf8');
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      log.push(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    // Keep memory bounded in a long soak: old lines go, faults are kept by faults() as they come.
    if (log.length > 200_000) log.splice(0, 100_000);
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const exitP = new Promise<void>((r) =>
    proc.on('exit', (code, sig) => {
      exit = sig ?? String(code);
      r();
    }),
  );
  const waitForLog = async (re: RegExp, timeoutMs = 10_000): Promise<string | undefined> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = log.find((l) => re.test(l));
      if (hit !== undefined || exit !== undefined || Date.now() > deadline) return hit;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  if ((await waitForLog(/smtpd ready/, 20_000)) === undefined) {
    proc.kill('SIGKILL');
    throw new Error(`smtpd did not start:\n${log.slice(-20).join('\n')}`);
  }
  const ports = log.map((l) => /listening on \S+ port (\d+)/.exec(l)?.[1]).filter((x): x is string => x !== undefined).map(Number);
  return {
    dir,
    pid: proc.pid ?? 0,
    ports,
    log,
    exited: () => exit,
    faults: () => log.filter((l) => /internal error|uncaught|unhandled|TypeError|RangeError|ReferenceError|FATAL/i.test(l)),
    waitForLog,
    async kill9() {
      if (exit === undefined) proc.kill('SIGKILL');
      await exitP;
    },
    async stop() {
      if (exit === undefined) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exitP;
      clearTimeout(t);
    },
  };
}
