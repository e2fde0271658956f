/*
 * delivery/local/privsep.ts — run a Job in the deliver-as helper, as the
 * user (daemon side; see deliver-as.ts for the helper's side). Since the
 * delivery workers (worker-pool.ts) and setpriv (mda.ts), only mda and
 * |command jobs come here, and only where /usr/bin/setpriv is missing:
 * this starts Node.js once per delivery.
 *
 * The helper is this Node binary running dist/src/delivery/local/
 * deliver-as.js with an empty environment (no NODE_OPTIONS from the
 * daemon's) in "/". Its standard input carries the request line and then
 * the message, so the helper never needs to read the spool (0700 root);
 * its standard output carries the Outcome. The message is framed
 * (helper-frame.ts) so that a daemon killed half-way through it makes the
 * job fail rather than deliver a truncated message. A helper that dies, says
 * nothing sensible or outlives its time is a temporary failure.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { frameEncoder } from './helper-frame.js';
import type { Credentials, HelperRequest, Job } from './job.js';
import { describe, tempfail, type Outcome } from './outcome.js';
import { oneLine } from '../agent.js';

export const HELPER_PATH = fileURLToPath(new URL('./deliver-as.js', import.meta.url));
const STDOUT_MAX = 64 * 1024;
const STDERR_MAX = 4096;
const TERM_GRACE_MS = 10_000;

export function isOutcome(x: unknown): x is Outcome {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as Record<string, unknown>;
  return (o.status === 'ok' || o.status === 'tempfail' || o.status === 'permfail') && typeof o.enhanced === 'string' && /^[245]\.\d{1,3}\.\d{1,3}$/.test(o.enhanced) && typeof o.detail === 'string' && o.enhanced[0] === { ok: '2', tempfail: '4', permfail: '5' }[o.status];
}

export interface HelperOptions {
  readonly signal?: AbortSignal;
  /** Kill the helper after this long (ms). */
  readonly timeoutMs: number;
  readonly helperPath?: string;
}

export function runAsUser(creds: Credentials, job: Job, body: Readable, opts: HelperOptions): Promise<Outcome> {
  const request: HelperRequest = { v: 1, creds, job };
  return new Promise<Outcome>((resolve) => {
    const child = spawn(process.execPath, [opts.helperPath ?? HELPER_PATH], { cwd: '/', env: { PATH: '/usr/bin:/bin' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = Buffer.alloc(0);
    let stderr = Buffer.alloc(0);
    let killed: 'timeout' | undefined;
    let aborted = false;
    let settled = false;
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < STDOUT_MAX) stdout = Buffer.concat([stdout, d]);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = Buffer.concat([stderr, d]);
      if (stderr.length > STDERR_MAX) stderr = stderr.subarray(stderr.length - STDERR_MAX);
    });
    child.stdin.on('error', () => undefined); // EPIPE when the helper stops reading (a refused mailbox)
    child.stdin.write(`${JSON.stringify(request)}\n`);
    // Framed (helper-frame.ts): if this process dies half-way, the helper sees a cut message, not a shorter one.
    pipeline(body, frameEncoder(), child.stdin).catch(() => undefined);

    let termTimer: NodeJS.Timeout | undefined;
    const term = (): void => {
      aborted = true;
      child.kill('SIGTERM');
      termTimer ??= setTimeout(() => child.kill('SIGKILL'), TERM_GRACE_MS);
    };
    const timer = setTimeout(() => {
      killed = 'timeout';
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    opts.signal?.addEventListener('abort', term, { once: true });
    const finish = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (termTimer) clearTimeout(termTimer);
      opts.signal?.removeEventListener('abort', term);
      body.destroy();
      resolve(o);
    };
    child.on('error', (e) => finish(tempfail('4.3.0', `delivery helper: cannot start: ${describe(e)}`)));
    child.on('close', (code, sig) => {
      // The first line that names an error says more than the tail of a stack trace.
      const errLines = stderr.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
      const why = errLines.find((l) => /^(\w*Error|error)\b|\bError:/.test(l)) ?? errLines[errLines.length - 1] ?? '';
      if (killed === 'timeout') return finish(tempfail('4.3.0', `delivery helper: timed out after ${Math.round(opts.timeoutMs / 1000)} s`));
      if (aborted && !(code === 0 && stdout.length > 0)) return finish(tempfail('4.3.0', 'delivery interrupted'));
      const lines = stdout.toString('utf8').trim().split('\n');
      let parsed: unknown;
      try {
        parsed = JSON.parse(lines[lines.length - 1] ?? '');
      } catch {
        parsed = undefined;
      }
      if (code === 0 && isOutcome(parsed)) {
        const o: Outcome = { status: parsed.status, enhanced: parsed.enhanced, detail: oneLine(parsed.detail) };
        return finish(o);
      }
      finish(tempfail('4.3.0', `delivery helper failed (${sig ?? `exit ${code}`})${why ? `: ${why}` : ''}`));
    });
  });
}
