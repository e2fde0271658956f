/*
 * log/maillog.ts — the mail log: one line per event, in OpenSMTPD's spirit.
 *
 *   smtp connected session=8f3c… address=127.0.0.1 host=localhost
 *   smtp message session=… msgid=1a2b3c4d size=512 nrcpt=1 proto=ESMTP
 *   smtp failed-command session=… command="RCPT TO:<x@y>" result="550 5.7.1 …"
 *
 * Values are quoted when they contain spaces or quotes, and never contain a
 * control character: a client cannot forge a log line. Debug tracing (-v,
 * -T) goes through the same sink but is kept apart by `trace()`, as
 * chasquid keeps maillog apart from its debug log.
 *
 * Lines are gathered and written with one write() at the end of the turn of
 * the event loop, at close or exit, or when flush() is called — the SMTP
 * connection does before it writes replies, so a line is in the log before
 * the client reads the reply it describes. A busy server logs with one
 * system call per batch of replies, not per line. A relayed log (the SMTP
 * side of a root-started smtpd) hands its lines to the privileged parent's
 * pipe the same way, at the same moments (daemon/privsep/log-pipe.ts).
 *
 * Destinations: a file (`log file`, reopened by reopen() — SIGUSR1 — after
 * logrotate moved it; a sink's own files, smtpserver -l, through
 * reopenSink), standard error, and the system log (log/syslog.ts),
 * any of them together. `log format opensmtpd` writes the message and
 * delivery lines as OpenSMTPD does (log/opensmtpd.ts).
 */
import { appendFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { SyslogPipe, type Severity, type SyslogOptions } from './syslog.js';
import { opensmtpdLine } from './opensmtpd.js';

export type LogFields = Record<string, string | number | boolean | undefined | null>;

export type TraceKind = 'smtp' | 'io' | 'rules' | 'spool' | 'scheduler' | 'lookup' | 'expand' | 'bounce' | 'mta' | 'mda' | 'control' | 'stat';
export const TRACE_KINDS: readonly TraceKind[] = ['smtp', 'io', 'rules', 'spool', 'scheduler', 'lookup', 'expand', 'bounce', 'mta', 'mda', 'control', 'stat'];

export interface MailLogOptions {
  /** Write here; with neither file nor syslog ⇒ standard error. */
  readonly file?: string;
  /** Also (or only) to the system log. */
  readonly syslog?: SyslogOptions;
  /** Standard error as well (default: only when there is no file and no syslog). */
  readonly stderr?: boolean;
  /** `opensmtpd`: message and delivery lines in OpenSMTPD's form. */
  readonly format?: 'postern' | 'opensmtpd';
  readonly verbose?: boolean;
  readonly trace?: ReadonlySet<TraceKind>;
  /** Prefix lines with a timestamp (default true for files, false for stderr). */
  readonly timestamps?: boolean;
  /** For tests: capture lines instead of writing them. */
  readonly sink?: (line: string) => void;
  /** Hand each line (untimestamped) and its severity to another process that writes it (the privileged parent, daemon/privsep/). */
  readonly relay?: LogRelay;
  /** The sink's own files again by their names, on reopen() (smtpserver -l FILE); returns the error, if any. */
  readonly reopenSink?: () => { readonly reopened: readonly string[]; readonly error?: string };
}

/** Where a relayed log's lines go: relay() gathers one, flushLines() sends what was gathered (before a reply). */
export interface LogRelay {
  relay(line: string, severity: Severity): void;
  flushLines(): void;
}

export class MailLog {
  private fd: number | undefined;
  private verbose: boolean;
  private trace_: ReadonlySet<TraceKind>;
  private readonly timestamps: boolean;
  private readonly sink?: (line: string) => void;
  private readonly relay?: LogRelay;
  private readonly reopenSink?: MailLogOptions['reopenSink'];
  private readonly file?: string;
  private readonly syslog?: SyslogPipe;
  private readonly stderr: boolean;
  private readonly opensmtpd: boolean;
  private pending: string[] = [];
  private pendingSys = '';
  private scheduled = false;
  private readonly flushNow = (): void => this.flush();
  /** Who sees each line as it is written (the dashboard's live log); see watch(). */
  private readonly watchers = new Set<(line: string) => void>();

  constructor(opts: MailLogOptions = {}) {
    this.file = opts.file;
    this.verbose = opts.verbose ?? false;
    this.trace_ = opts.trace ?? new Set();
    this.timestamps = opts.timestamps ?? opts.file !== undefined;
    this.sink = opts.sink;
    this.relay = opts.relay;
    this.reopenSink = opts.reopenSink;
    this.opensmtpd = opts.format === 'opensmtpd';
    if (opts.syslog) this.syslog = new SyslogPipe(opts.syslog);
    this.stderr = opts.stderr ?? (opts.file === undefined && opts.syslog === undefined);
    if (opts.file !== undefined) this.fd = openSync(opts.file, 'a', 0o640);
  }

  /** A mail-log event: `subsystem event k=v …` (or OpenSMTPD's form, with `log format opensmtpd`). */
  event(subsystem: string, event: string, fields: LogFields = {}): void {
    const alt = this.opensmtpd ? opensmtpdLine(subsystem, event, fields) : undefined;
    this.write(alt !== undefined ? clean(alt) : `${subsystem} ${event}${formatFields(fields)}`);
  }

  info(text: string): void {
    this.write(clean(text));
  }

  warn(text: string): void {
    this.write(`warning: ${clean(text)}`, 4);
  }

  error(text: string): void {
    this.write(`error: ${clean(text)}`, 3);
  }

  debug(text: string): void {
    if (this.verbose) this.write(`debug: ${clean(text)}`, 7);
  }

  get isVerbose(): boolean {
    return this.verbose;
  }

  /** The log file again by its name (after logrotate moved it away): SIGUSR1. */
  reopen(): void {
    if (this.reopenSink) {
      this.flush();
      const r = this.reopenSink();
      if (r.error !== undefined) this.warn(`${r.error}: cannot reopen, still writing to the old one`);
      for (const f of r.reopened) this.info(`log file ${f} reopened`);
    }
    if (this.file === undefined) return;
    this.flush();
    const old = this.fd;
    try {
      this.fd = openSync(this.file, 'a', 0o640);
    } catch (e) {
      this.warn(`log file ${this.file}: cannot reopen, still writing to the old one: ${(e as Error).message}`);
      return;
    }
    if (old !== undefined) closeSync(old);
    this.info(`log file ${this.file} reopened`);
  }

  /** Is tracing on for this kind (so callers can skip building the message)? */
  tracing(kind: TraceKind): boolean {
    return this.trace_.has(kind);
  }

  trace(kind: TraceKind, text: string): void {
    if (this.trace_.has(kind)) this.write(`trace ${kind}: ${clean(text)}`, 7);
  }

  /** Call `fn` with every line from now on (after the sink or buffer has it); returns the way to stop. */
  watch(fn: (line: string) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  setVerbose(on: boolean): void {
    this.verbose = on;
  }

  setTrace(kinds: ReadonlySet<TraceKind>): void {
    this.trace_ = kinds;
  }

  close(): void {
    this.flush();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.syslog?.close();
  }

  private write(line: string, severity: Severity = 6): void {
    const text = this.timestamps ? `${new Date().toISOString()} smtpd[${process.pid}]: ${line}` : line;
    if (this.watchers.size > 0) for (const w of this.watchers) w(text);
    if (this.sink) return this.sink(text);
    if (this.relay) return this.relay.relay(line, severity);
    if (this.syslog) this.pendingSys += this.syslog.line(severity, line);
    if (this.fd !== undefined || this.stderr) this.pending.push(text);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushNow);
      unflushed.add(this);
      if (!exitHooked) {
        exitHooked = true;
        process.once('exit', () => {
          for (const l of unflushed) l.flush();
        });
      }
    }
  }

  /** A line another process relayed (its `relay` option): written as this log's own. */
  relayed(line: string, severity: Severity): void {
    this.write(line, severity);
  }

  /** Write the lines gathered so far. */
  flush(): void {
    this.relay?.flushLines();
    this.scheduled = false;
    unflushed.delete(this);
    if (this.pendingSys !== '' && this.syslog) {
      const sys = this.pendingSys;
      this.pendingSys = '';
      // logger is down (being restarted): say it on standard error rather than lose it.
      if (!this.syslog.write(sys) && !this.stderr) process.stderr.write(sys.replace(/^<\d+>/gm, ''));
    }
    if (this.pending.length === 0) return;
    const text = this.pending.join('\n') + '\n';
    this.pending = [];
    try {
      if (this.fd !== undefined) writeSync(this.fd, text);
      if (this.stderr) process.stderr.write(text);
    } catch {
      // A log that cannot be written must not stop mail; try the file once more by path.
      if (this.file) {
        try {
          appendFileSync(this.file, text);
        } catch {
          /* nothing more to do */
        }
      }
    }
  }
}

/** Logs with lines not yet written; flushed at process exit too. */
const unflushed = new Set<MailLog>();
let exitHooked = false;

/** Render ` k=v k2="v 2"`; values are cleaned of control characters and quoted when needed. */
export function formatFields(fields: LogFields): string {
  let out = '';
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === null) continue;
    const s = clean(String(v));
    out += ` ${k}=${s === '' || /[\s"=\\]/.test(s) ? JSON.stringify(s) : s}`;
  }
  return out;
}

/** No control character reaches the log. */
export function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\t' ? ' ' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}
export type { Severity } from './syslog.js';
