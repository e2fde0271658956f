/*
 * cli/smtpserver-log.ts — ZMailer's session log (`smtpserver -l`): every
 * SMTP conversation recorded, line by line (the mail log's `io` and `smtp`
 * traces), with the mail log's events.
 *
 *   -l SYSLOG     to syslog, facility mail, tag "smtpserver", through the
 *                 system's logger(1) program (Node.js cannot write to the
 *                 /dev/log datagram socket; logger is run once, with an
 *                 argument vector, and fed the lines on its standard input)
 *   -l FILE       appended to FILE; reopened by its name on SIGUSR1 (after
 *                 logrotate moved it), as smtpd's `log file`
 *
 * Both may be given (ZMailer: "-l SYSLOG" first, then the file). Without
 * -l the daemon logs as smtpd does (`log file`, else standard error), and
 * -i/-n keep standard output for SMTP, so they log nothing unless asked.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { MailLog, type TraceKind } from '../log/maillog.js';

export interface SessionLogOptions {
  /** The -l arguments in order. */
  readonly targets: readonly string[];
  readonly verbose: boolean;
  /** Where to log without -l: a file, standard error, or nowhere. */
  readonly fallback: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'stderr' } | { readonly kind: 'none' };
}

const CONVERSATION: ReadonlySet<TraceKind> = new Set<TraceKind>(['smtp', 'io']);

/** The traces a session log records (the SMTP side of a privilege-separated smtpserver makes them; the parent writes them). */
export function sessionTrace(targets: readonly string[]): { trace?: ReadonlySet<TraceKind> } {
  return targets.length > 0 ? { trace: CONVERSATION } : {};
}

export function sessionLog(o: SessionLogOptions): MailLog {
  if (o.targets.length === 0) {
    if (o.fallback.kind === 'file') return new MailLog({ file: o.fallback.path, verbose: o.verbose });
    if (o.fallback.kind === 'stderr') return new MailLog({ verbose: o.verbose });
    return new MailLog({ sink: () => undefined });
  }
  const outs: ((line: string) => void)[] = [];
  const files: { readonly path: string; fd: number }[] = [];
  for (const t of o.targets) {
    if (t === 'SYSLOG') outs.push(syslogWriter());
    else {
      const f = { path: t, fd: openSync(t, 'a', 0o640) };
      files.push(f);
      outs.push((line) => void writeSync(f.fd, `${line}\n`));
    }
  }
  const reopenSink = (): { reopened: string[]; error?: string } => {
    const reopened: string[] = [];
    for (const f of files) {
      let fd: number;
      try {
        fd = openSync(f.path, 'a', 0o640);
      } catch (e) {
        return { reopened, error: `log file ${f.path}: ${(e as Error).message}` };
      }
      closeSync(f.fd);
      f.fd = fd;
      reopened.push(f.path);
    }
    return { reopened };
  };
  return new MailLog({ verbose: o.verbose, trace: CONVERSATION, timestamps: true, sink: (line) => outs.forEach((w) => w(line)), reopenSink });
}

/** Lines to syslog through logger(1); if it cannot run, say so once on standard error. */
function syslogWriter(): (line: string) => void {
  const child = spawn('logger', ['-t', 'smtpserver', '-p', 'mail.info'], { stdio: ['pipe', 'ignore', 'ignore'] });
  let broken = false;
  const fail = (why: string): void => {
    if (!broken) process.stderr.write(`smtpserver: -l SYSLOG: ${why}\n`);
    broken = true;
  };
  child.on('error', (e) => fail(`cannot run logger: ${e.message}`));
  child.stdin.on('error', () => fail('logger stopped'));
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  // The timestamp and tag are syslog's own: drop ours.
  return (line) => {
    if (!broken) child.stdin.write(`${line.replace(/^\S+ smtpd\[\d+\]: /, '')}\n`);
  };
}
