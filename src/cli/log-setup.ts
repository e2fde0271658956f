/*
 * cli/log-setup.ts — where smtpd's mail log goes, from the flags and the
 * configuration (docs/administration.md §6):
 *
 *   smtpd -d          standard error, and the system log if `log syslog` is given
 *   smtpd -F, smtpd   the `log file`, and the system log when `log syslog` is
 *                     given or there is no `log file` (so a detached daemon or
 *                     one under systemd reaches /var/log/mail.log or the journal);
 *                     -F with neither a log file nor /dev/log: standard error
 *
 * and what is logged before the process dies of an uncaught error.
 */
import type { Config } from '../config/model.js';
import { MailLog, type MailLogOptions, type TraceKind } from '../log/maillog.js';
import { DEFAULT_SYSLOG_SOCKET, syslogSocketExists } from '../log/syslog.js';

/**
 * The log's destinations. `socketExists` (for tests) says whether /dev/log is there: `smtpd -F` with
 * neither a log file nor a syslog daemon (a container, a unit without journald's socket) logs to
 * standard error rather than into a socket nobody reads.
 */
export function logOptions(
  config: Config,
  o: { stderr: boolean; verbose: boolean; trace: ReadonlySet<TraceKind>; socketExists?: (path: string) => boolean },
): MailLogOptions {
  const p = config.paths;
  const file = o.stderr ? undefined : p.logFile;
  const exists = o.socketExists ?? syslogSocketExists;
  const fallback = !o.stderr && p.logFile === undefined && p.syslog === undefined;
  const syslog = p.syslog ?? (fallback && exists(DEFAULT_SYSLOG_SOCKET) ? { facility: 'mail', tag: 'smtpd' } : undefined);
  return {
    ...(file !== undefined ? { file } : {}),
    ...(syslog !== undefined ? { syslog } : {}),
    stderr: o.stderr || (fallback && syslog === undefined),
    ...(p.logFormat !== undefined ? { format: p.logFormat } : {}),
    verbose: o.verbose,
    trace: o.trace,
  };
}

/** Why a detached daemon would log nowhere, or undefined when its lines have somewhere to go. */
export function nowhereToLog(config: Config): string | undefined {
  const p = config.paths;
  if (p.logFile !== undefined) return undefined;
  const socket = p.syslog?.socket ?? DEFAULT_SYSLOG_SOCKET;
  if (syslogSocketExists(socket)) return undefined;
  return `refusing to detach: no "log file" and no syslog socket at ${socket} (start a syslog daemon, add log file "PATH", or run with -d)`;
}

/** Uncaught errors and unhandled rejections reach the log before the process exits (status 70, EX_SOFTWARE). */
export function logFatal(log: MailLog, flush?: () => Promise<void>): void {
  const die = (what: string, e: unknown): void => {
    const err = e instanceof Error ? e : new Error(String(e));
    log.error(`fatal: ${what}: ${err.message}`);
    for (const frame of (err.stack ?? '').split('\n').slice(1, 12)) log.error(`fatal: ${frame.trim()}`);
    log.flush();
    // The SMTP side of a root-started smtpd: its lines go to the parent first (privsep/child.ts).
    if (flush) void flush().finally(() => process.exit(70));
    else process.exit(70);
  };
  process.on('uncaughtException', (e) => die('uncaught exception', e));
  process.on('unhandledRejection', (e) => die('unhandled rejection', e));
}
