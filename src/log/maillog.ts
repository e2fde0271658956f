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
 * system call per batch of replies, not per line.
 */
import { appendFileSync, openSync, writeSync, closeSync } from 'node:fs';

export type LogFields = Record<string, string | number | boolean | undefined | null>;

export type TraceKind = 'smtp' | 'io' | 'rules' | 'spool' | 'scheduler' | 'lookup' | 'expand' | 'bounce' | 'mta' | 'mda' | 'control' | 'stat';
export const TRACE_KINDS: readonly TraceKind[] = ['smtp', 'io', 'rules', 'spool', 'scheduler', 'lookup', 'expand', 'bounce', 'mta', 'mda', 'control', 'stat'];

export interface MailLogOptions {
  /** Write here; undefined ⇒ standard error. */
  readonly file?: string;
  readonly verbose?: boolean;
  readonly trace?: ReadonlySet<TraceKind>;
  /** Prefix lines with a timestamp (default true for files, false for stderr). */
  readonly timestamps?: boolean;
  /** For tests: capture lines instead of writing them. */
  readonly sink?: (line: string) => void;
}

export class MailLog {
  private fd: number | undefined;
  private verbose: boolean;
  private trace_: ReadonlySet<TraceKind>;
  private readonly timestamps: boolean;
  private readonly sink?: (line: string) => void;
  private readonly file?: string;
  private pending: string[] = [];
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
    if (opts.file !== undefined) this.fd = openSync(opts.file, 'a', 0o640);
  }

  /** A mail-log event: `subsystem event k=v …`. */
  event(subsystem: string, event: string, fields: LogFields = {}): void {
    this.write(`${subsystem} ${event}${formatFields(fields)}`);
  }

  info(text: string): void {
    this.write(clean(text));
  }

  warn(text: string): void {
    this.write(`warning: ${clean(text)}`);
  }

  error(text: string): void {
    this.write(`error: ${clean(text)}`);
  }

  debug(text: string): void {
    if (this.verbose) this.write(`debug: ${clean(text)}`);
  }

  /** Is tracing on for this kind (so callers can skip building the message)? */
  tracing(kind: TraceKind): boolean {
    return this.trace_.has(kind);
  }

  trace(kind: TraceKind, text: string): void {
    if (this.trace_.has(kind)) this.write(`trace ${kind}: ${clean(text)}`);
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
  }

  private write(line: string): void {
    const text = this.timestamps ? `${new Date().toISOString()} smtpd[${process.pid}]: ${line}` : line;
    if (this.watchers.size > 0) for (const w of this.watchers) w(text);
    if (this.sink) return this.sink(text);
    this.pending.push(text);
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

  /** Write the lines gathered so far. */
  flush(): void {
    this.scheduled = false;
    unflushed.delete(this);
    if (this.pending.length === 0) return;
    const text = this.pending.join('\n') + '\n';
    this.pending = [];
    try {
      if (this.fd !== undefined) writeSync(this.fd, text);
      else process.stderr.write(text);
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
