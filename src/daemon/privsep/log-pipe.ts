/*
 * daemon/privsep/log-pipe.ts — the SMTP side's mail log, on its way to the
 * privileged parent through a pipe of its own (not the IPC channel).
 *
 * The parent starts the child with one more stdio entry, a pipe at fd
 * LOG_FD. The child writes each line there as `<severity digit><line>\n`
 * (lines never hold a control character: MailLog cleans them), gathered per
 * turn of the event loop and always before the reply they describe; the
 * parent reads the pipe and writes the lines to the log file, the system
 * log or standard error, as its own. No message per batch on the channel,
 * no serialization: one write(2) in the child, one read(2) in the parent.
 *
 * The parent trusts nothing in the pipe: a severity outside the fixed set
 * is read as info, a line is cut at MAX_LINE, a control character never
 * reaches the log (MailLog.relayed cleans nothing, so it is done here).
 */
import { Socket } from 'node:net';
import { fstatSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Severity } from '../../log/maillog.js';

/** The child's descriptor for the pipe (0–2 are stdio, 3 the IPC channel). */
export const LOG_FD = 4;

/** Longest line the parent writes; a longer one is cut (the rest makes lines of its own). */
export const MAX_LINE = 64 * 1024;

const SEVERITIES: readonly Severity[] = [3, 4, 5, 6, 7];

/**
 * The child's end. A line batch goes with one write(2) straight on the descriptor (no stream machinery: the
 * common case, the pipe has room); when the pipe is full (EAGAIN) or took part of it, the rest is queued on a
 * socket over the same descriptor, which libuv made non-blocking, and later batches follow it there until it
 * drains: the order holds and the SMTP side never blocks on its log.
 */
export class LogPipeWriter {
  private broken = false;

  private constructor(private readonly socket: Socket) {
    socket.on('error', () => (this.broken = true));
  }

  /** On LOG_FD; undefined when the parent gave no pipe there. */
  static open(): LogPipeWriter | undefined {
    try {
      const st = fstatSync(LOG_FD);
      if (!st.isSocket() && !st.isFIFO()) return undefined;
    } catch {
      return undefined;
    }
    const s = new Socket({ fd: LOG_FD, readable: false, writable: true });
    s.unref();
    return new LogPipeWriter(s);
  }

  /** False once the parent's end is gone (then the caller writes elsewhere). */
  get usable(): boolean {
    return !this.broken && this.socket.writable;
  }

  /** Resolves once the text is in the pipe. */
  write(text: string): Promise<void> {
    let buf = Buffer.from(text);
    if (this.socket.writableLength === 0) {
      try {
        const n = writeSync(LOG_FD, buf);
        if (n === buf.length) return Promise.resolve();
        buf = buf.subarray(n);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') {
          this.broken = true;
          return Promise.reject(e as Error);
        }
      }
    }
    return new Promise((resolve) => this.socket.write(buf, () => resolve()));
  }
}

/** One line as the child writes it. */
export function encodeLine(severity: Severity, line: string): string {
  return `${severity}${line}\n`;
}

/** The parent's end: calls `line` for every line read, in order; resolves when the pipe ends (the child exited). */
export function readLogPipe(pipe: Readable, line: (text: string, severity: Severity) => void): Promise<void> {
  pipe.setEncoding('utf8');
  let partial = '';
  const take = (raw: string): void => {
    const d = raw.charCodeAt(0) - 48;
    const sev = (SEVERITIES as readonly number[]).includes(d) ? (d as Severity) : 6;
    // eslint-disable-next-line no-control-regex
    let text = raw.slice(1).replace(/[\x00-\x1f\x7f]/g, '?');
    for (; text.length > MAX_LINE; text = text.slice(MAX_LINE)) line(text.slice(0, MAX_LINE), sev);
    if (text !== '') line(text, sev);
  };
  pipe.on('data', (chunk: string) => {
    const text = partial + chunk;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      if (nl > start) take(text.slice(start, nl));
      start = nl + 1;
    }
    partial = text.slice(start);
    // A line that never ends does not grow the parent's memory: written as far as it goes, the rest follows.
    if (partial.length > MAX_LINE) {
      take(partial);
      partial = partial.slice(0, 1);
    }
  });
  return new Promise((resolve) => {
    const done = (): void => {
      if (partial.length > 0) take(partial);
      partial = '';
      resolve();
    };
    pipe.once('end', done);
    pipe.once('error', done);
    pipe.once('close', done);
  });
}
