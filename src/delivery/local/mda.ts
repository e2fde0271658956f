/*
 * delivery/local/mda.ts — pipe one message to a command.
 *
 * The command line comes from the trusted configuration (`mda "…"`, or an
 * aliases(5) "|command") and runs as `/bin/sh -c COMMAND` in a process
 * group of its own, in the user's home, with an environment built from
 * scratch (delivery/local/agent.ts: SENDER, RECIPIENT, ORIGINAL_RECIPIENT,
 * USER, LOGNAME, HOME, DOMAIN, LOCAL, EXTENSION, PATH, SHELL). Envelope
 * data reach the command ONLY through that environment: nothing from an
 * address is ever part of the command string.
 *
 * Standard input: Return-Path/Delivered-To lines, then the message with LF
 * line ends. Exit status (sysexits.h):
 *   0 → delivered; 75 EX_TEMPFAIL, 71 EX_OSERR → retried later (4.3.0);
 *   67 EX_NOUSER → 5.1.1; anything else, or death by a signal → 5.3.0.
 * Standard output and error are kept (the last 4 KiB) for the detail
 * text. Past the time limit the whole process group is killed (SIGTERM,
 * then SIGKILL) and the delivery is retried later.
 *
 * When the daemon runs as root, the command starts through util-linux's
 * setpriv (`RunAs`): `setpriv --reuid=UID --regid=GID --groups=LIST|--init-groups
 * --inh-caps=-all -- /bin/sh -c COMMAND` — an argument vector, no shell of
 * ours. A system user's groups are the list the parent keeps for 5 s
 * (user-groups.ts), so setpriv does not read the group database at every
 * command (about 1 ms each); --init-groups only when that lookup failed.
 * setpriv sets the real, effective and saved ids and execs the shell,
 * so a message still costs one fork, and the command can never get root
 * back (no saved uid 0 to return to, no capabilities).
 *
 * A plain command (`plainArgv`: an absolute path and words of letters,
 * digits and `_-.,/:=+@%` only — no quoting, expansion, redirection or
 * other shell syntax) is split on blanks and executed without the shell,
 * as Postfix's local(8) does: one exec fewer per message. What the shell
 * would have done for it is done here: the same words, the same
 * environment plus the PWD that dash (Debian's /bin/sh) exports, and a
 * program that cannot be started exits as the shell's would (127 not
 * found, 126 not executable). Anything else goes to /bin/sh -c unchanged.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { lfStream } from './message.js';
import { describe, ok, permfail, tempfail, type Outcome } from './outcome.js';

export const DEFAULT_MDA_TIMEOUT_MS = 5 * 60_000;
export const SETPRIV = '/usr/bin/setpriv';
const OUTPUT_MAX = 4096;
const KILL_GRACE_MS = 2000;

export interface MdaJob {
  readonly kind: 'mda';
  /** What to call it in details: "mda" or "command". */
  readonly label: string;
  /** The shell command (format specifiers already turned into variable references). */
  readonly command: string;
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  readonly timeoutMs: number;
  /** Header lines written before the message (LF-terminated). */
  readonly prefix: string;
}

/** Who the command runs as, when the daemon is root (through setpriv). */
export interface RunAs {
  readonly uid: number;
  readonly gid: number;
  /** setpriv's own initgroups(3) from the user database, or exactly these groups (a system user's kept list; [gid] for virtual users). */
  readonly groups: 'init' | readonly number[];
  /** The setpriv binary; default /usr/bin/setpriv. */
  readonly setpriv?: string;
}

/**
 * The words of a command the shell would run as they are: an absolute program path, then words made only of
 * characters that mean nothing to sh (no quotes, `$`, `\`, globs, `~`, `#`, `;&|<>(){}`, newlines), split on
 * blanks. Undefined for anything else, which goes to `/bin/sh -c`. The path is absolute so that no builtin, no
 * PATH search and no `NAME=value` prefix can make sh read it otherwise.
 */
export function plainArgv(command: string): string[] | undefined {
  if (!/^[\t ]*\/[\w\-.,/:=+@%\t ]*$/.test(command)) return undefined;
  return command.split(/[\t ]+/).filter((w) => w !== '');
}

/** The argument vector that runs the command (as `as`, through setpriv): its own words when plain, else `/bin/sh -c command`. */
export function commandArgv(command: string, as?: RunAs): [string, string[]] {
  const argv = plainArgv(command) ?? ['/bin/sh', '-c', command];
  if (!as) return [argv[0] as string, argv.slice(1)];
  const groups = as.groups === 'init' ? '--init-groups' : `--groups=${as.groups.join(',')}`;
  return [as.setpriv ?? SETPRIV, [`--reuid=${as.uid}`, `--regid=${as.gid}`, groups, '--inh-caps=-all', '--', ...argv]];
}

const SYSEXITS: Record<number, string> = {
  64: 'EX_USAGE', 65: 'EX_DATAERR', 66: 'EX_NOINPUT', 67: 'EX_NOUSER', 68: 'EX_NOHOST', 69: 'EX_UNAVAILABLE', 70: 'EX_SOFTWARE',
  71: 'EX_OSERR', 72: 'EX_OSFILE', 73: 'EX_CANTCREAT', 74: 'EX_IOERR', 75: 'EX_TEMPFAIL', 76: 'EX_PROTOCOL', 77: 'EX_NOPERM', 78: 'EX_CONFIG',
};

/** The outcome for an exit status (pure; tested by table). */
export function exitOutcome(label: string, code: number | null, signal: string | null, output: string): Outcome {
  const out = output.trim() === '' ? '' : `: ${output.trim()}`;
  if (code === 0) return ok(`${label}: delivered`);
  if (code === null) return permfail('5.3.0', `${label}: killed by ${signal ?? 'a signal'}${out}`);
  const name = SYSEXITS[code];
  const status = `${label}: exited ${code}${name ? ` (${name})` : ''}${out}`;
  if (code === 75 || code === 71) return tempfail('4.3.0', status);
  if (code === 67) return permfail('5.1.1', status);
  return permfail('5.3.0', status);
}

/** The folder the command starts in: the home, else `/`; its real path when the command is plain (the PWD dash would export). */
async function workDir(dir: string, real: boolean): Promise<string> {
  try {
    if ((await stat(dir)).isDirectory()) return real ? await realpath(dir) : dir;
  } catch {
    /* fall through */
  }
  return '/';
}

/** A plain command that could not be started, told as the shell tells it (setpriv's own words say the same). */
function notStarted(label: string, file: string, e: unknown): Outcome | undefined {
  const code = (e as NodeJS.ErrnoException).code;
  if (code !== 'ENOENT' && code !== 'EACCES') return undefined;
  return exitOutcome(label, code === 'ENOENT' ? 127 : 126, null, `${file}: ${code === 'ENOENT' ? 'not found' : 'Permission denied'}`);
}

/** Run the command; never throws. */
export async function runMda(job: MdaJob, input: Readable, signal?: AbortSignal, as?: RunAs): Promise<Outcome> {
  const [file, args] = commandArgv(job.command, as);
  const plain = plainArgv(job.command) !== undefined;
  const cwd = await workDir(job.cwd, plain);
  if (signal?.aborted) {
    input.destroy();
    return tempfail('4.3.0', `${job.label}: delivery interrupted`);
  }
  if (input.errored) return tempfail('4.3.0', `${job.label}: cannot read the message: ${describe(input.errored)}`);
  return new Promise<Outcome>((resolve) => {
    let output = Buffer.alloc(0);
    const keep = (d: Buffer): void => {
      output = Buffer.concat([output, d]);
      if (output.length > OUTPUT_MAX) output = output.subarray(output.length - OUTPUT_MAX);
    };
    let stop: 'timeout' | 'abort' | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(file, args, { cwd, env: plain ? { ...job.env, PWD: cwd } : { ...job.env }, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      input.destroy();
      resolve((plain && !as && notStarted(job.label, file, e)) || tempfail('4.3.0', `${job.label}: cannot run ${file}: ${describe(e)}`));
      return;
    }
    const killGroup = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    const halt = (why: 'timeout' | 'abort'): void => {
      if (stop !== undefined || settled) return;
      stop = why;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => halt('timeout'), job.timeoutMs);
    const onAbort = (): void => halt('abort');
    signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      input.destroy();
      child.stdout?.destroy();
      child.stderr?.destroy();
      if (killTimer !== undefined) clearTimeout(killTimer);
      resolve(o);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let stdinGone = false;
    child.stdin.on('error', () => (stdinGone = true)); // EPIPE: the command did not read it all; its exit status decides
    // A message that fails half-way (cut short, unreadable) must never reach the command as a shorter one:
    // kill the command before the pipeline closes its standard input (this listener runs first).
    input.once('error', () => {
      if (stdinGone) return; // the pipeline passing on the command's EPIPE
      stop ??= 'abort';
      killGroup('SIGKILL');
    });
    pipeline(input, lfStream(job.prefix, false), child.stdin).catch(() => undefined);
    child.on('error', (e) => finish((plain && !as && notStarted(job.label, file, e)) || tempfail('4.3.0', `${job.label}: cannot run ${file}: ${describe(e)}`)));
    child.on('exit', (code, sig) => {
      const decide = (text = output.toString('utf8')): Outcome =>
        stop === 'timeout'
          ? tempfail('4.3.0', `${job.label}: timed out after ${Math.round(job.timeoutMs / 1000)} s${text.trim() ? `: ${text.trim()}` : ''}`)
          : stop === 'abort'
            ? tempfail('4.3.0', `${job.label}: delivery interrupted`)
            : as && code === 127 && /^setpriv: /m.test(text) && !/^setpriv: failed to execute /m.test(text)
              ? tempfail('4.3.0', `${job.label}: cannot become uid ${as.uid}: ${text.trim()}`)
              : exitOutcome(job.label, code, sig, text);
      // Let the pipes drain (the command's last words), but not forever: a background child may hold them open.
      let waited = false;
      const done = (): void => {
        if (waited) return;
        waited = true;
        if (stop === 'timeout' || stop === 'abort') killGroup('SIGKILL');
        finish(decide());
      };
      child.once('close', done);
      setTimeout(done, 200).unref();
    });
  });
}
