/*
 * test/helpers/tools.ts — third-party programs the end-to-end tests drive.
 * A missing tool fails the test (CI installs them; see .ci/run): nothing is
 * skipped for lack of a tool.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function requireTool(name: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status !== 0 || path === '') throw new Error(`${name} is not installed (run .ci/run, or apt-get install ${name})`);
  return path;
}

/** Debian's python (with Debian's python3-* modules) when present, else the first python3. */
export function python(): string {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : requireTool('python3');
}

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(cmd: string, args: readonly string[], opts: { input?: string | Buffer; timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    p.on('error', reject);
    p.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
    p.stdin.on('error', () => undefined); // EPIPE: the program exited without reading its input; its status tells
    p.stdin.end(opts.input ?? '');
  });
}
