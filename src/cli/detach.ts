/*
 * cli/detach.ts — start the daemon in the background and return once it
 * listens: the child runs `args` with an IPC channel and says
 * { ready: true } when its listeners are bound, or { error } (then
 * `fail` reports it, one line). A child that exits during start-up is a
 * failure too. Shared by smtpd and smtpserver.
 */
import { spawn } from 'node:child_process';

export function detachUntilReady(args: readonly string[], fail: (msg: string) => never, opts: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string } = {}): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, ...args], {
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    child.on('message', (m: { ready?: boolean; error?: string }) => {
      if (m.error) fail(m.error);
      if (m.ready) {
        child.unref();
        child.disconnect();
        resolve();
      }
    });
    child.on('exit', (code) => fail(`the daemon exited during start-up (status ${code ?? 'signal'})`));
  });
}
