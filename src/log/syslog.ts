/*
 * log/syslog.ts — the mail log into the system log.
 *
 * Node.js cannot open a unix datagram socket, which is what /dev/log is
 * (rsyslog's imuxsock, or systemd-journald's /run/systemd/journal/dev-log).
 * Rather than a native addon, Postern feeds one long-lived logger(1)
 * (util-linux, in Debian's essential bsdutils) through a pipe:
 *
 *   logger --prio-prefix -t smtpd --id=PID -u /dev/log …
 *
 * Each line goes down the pipe as `<PRI>text`; logger sends each as one
 * datagram with that priority (facility × 8 + severity, RFC 5424 §6.2.1),
 * its own timestamp, and `smtpd[PID]:` — so `grep smtpd /var/log/mail.log`
 * finds the daemon's lines, and the journal files them under the daemon's
 * pid. One process for the daemon's whole life, one pipe write per batch
 * of lines (MailLog gathers a turn of the event loop): no process per line.
 * If logger dies it is started again (at most once a second); lines logged
 * in between go to standard error. If the syslog daemon cannot keep up and
 * more than 4 MiB wait in the pipe, new lines are dropped and counted, and
 * the count is logged once the backlog is gone: memory stays bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

/** Facilities a mail server may log under (RFC 5424 §6.2.1 numbers). */
export const SYSLOG_FACILITIES: Readonly<Record<string, number>> = {
  user: 1, mail: 2, daemon: 3,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};

export const DEFAULT_SYSLOG_SOCKET = '/dev/log';

/** Bytes waiting for logger beyond which lines are dropped (and counted). */
const MAX_BACKLOG = 4 * 1024 * 1024;

/** Severities (RFC 5424): error 3, warning 4, notice 5, info 6, debug 7. */
export type Severity = 3 | 4 | 5 | 6 | 7;

export interface SyslogOptions {
  /** A name from SYSLOG_FACILITIES; default mail. */
  readonly facility?: string;
  /** Default smtpd. */
  readonly tag?: string;
  /** Default /dev/log. */
  readonly socket?: string;
}

/** `<PRI>` for a facility name and a severity. */
export function priority(facility: string, severity: Severity): number {
  return (SYSLOG_FACILITIES[facility] ?? 2) * 8 + severity;
}

/** Is there a syslog daemon's socket at this path? */
export function syslogSocketExists(path: string = DEFAULT_SYSLOG_SOCKET): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

const LOGGER = ['/usr/bin/logger', '/bin/logger'].find((p) => existsSync(p)) ?? 'logger';

export class SyslogPipe {
  private child: ChildProcess | undefined;
  private closing = false;
  private lastStart = 0;
  private dropped = 0;
  private readonly facility: string;
  private readonly tag: string;
  readonly socket: string;

  constructor(opts: SyslogOptions = {}) {
    this.facility = opts.facility ?? 'mail';
    this.tag = opts.tag ?? 'smtpd';
    this.socket = opts.socket ?? DEFAULT_SYSLOG_SOCKET;
  }

  /** One line with `<PRI>` in front, for write(). */
  line(severity: Severity, text: string): string {
    return `<${priority(this.facility, severity)}>${text}\n`;
  }

  /** Send lines made by line(); false when logger is not running (the caller writes them elsewhere). */
  write(lines: string): boolean {
    let text = lines;
    const c = this.running();
    if (!c?.stdin?.writable) return false;
    if (c.stdin.writableLength > MAX_BACKLOG) {
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) this.dropped++;
      return true;
    }
    if (this.dropped > 0) {
      text = this.line(4, `warning: syslog: ${this.dropped} line(s) dropped, the syslog daemon did not keep up`) + text;
      this.dropped = 0;
    }
    c.stdin.write(text);
    return true;
  }

  /** Let logger send what it has and exit (it ends at the end of its input). */
  close(): void {
    this.closing = true;
    this.child?.stdin?.end();
    this.child = undefined;
  }

  private running(): ChildProcess | undefined {
    if (this.child || this.closing) return this.child;
    const now = Date.now();
    if (now - this.lastStart < 1000) return undefined;
    this.lastStart = now;
    const args = ['--prio-prefix', '-t', this.tag, `--id=${process.pid}`, '-u', this.socket, '--socket-errors=on', '-S', '8192', '-p', `${this.facility}.info`];
    // Its own process group: a Ctrl-C meant for smtpd -d leaves it to send the last lines.
    const c = spawn(LOGGER, args, { stdio: ['pipe', 'ignore', 'inherit'], detached: true });
    c.unref();
    (c.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    c.stdin?.on('error', () => undefined);
    c.on('error', () => undefined);
    c.on('exit', () => {
      if (this.child === c) this.child = undefined;
    });
    this.child = c;
    return c;
  }
}
