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
import { fstatSync, readSync, writeSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
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

/** How long the parent lets lines gather in the pipe once one has come (the SMTP side's writes then wake nobody). */
export const READ_EVERY_MS = 25;

/** Bytes per read(2) when the parent reads on its timer. */
const READ_SIZE = 64 * 1024;

/** The libuv handle under the parent's end of the pipe, as far as the timed reads need it. */
interface PipeHandle {
  fd: number;
  readStop(): number;
  readStart(): number;
}

function handleOf(pipe: Readable): PipeHandle | undefined {
  const h = (pipe as unknown as { _handle?: Partial<PipeHandle> | null })._handle;
  const ok = h && typeof h.fd === 'number' && h.fd >= 0 && typeof h.readStop === 'function' && typeof h.readStart === 'function';
  return ok ? (h as PipeHandle) : undefined;
}

/** Bytes to lines: checks each line (severity, control characters, length) and hands it on. */
class LineReader {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  constructor(private readonly line: (text: string, severity: Severity) => void) {}

  feed(chunk: Buffer | string): void {
    const text = this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      if (nl > start) this.take(text.slice(start, nl));
      start = nl + 1;
    }
    this.partial = text.slice(start);
    // A line that never ends does not grow the parent's memory: written as far as it goes, the rest follows.
    if (this.partial.length > MAX_LINE) {
      this.take(this.partial);
      this.partial = this.partial.slice(0, 1);
    }
  }

  end(): void {
    const rest = this.partial + this.decoder.end();
    if (rest.length > 0) this.take(rest);
    this.partial = '';
  }

  private take(raw: string): void {
    const d = raw.charCodeAt(0) - 48;
    const sev = (SEVERITIES as readonly number[]).includes(d) ? (d as Severity) : 6;
    // eslint-disable-next-line no-control-regex
    let text = raw.slice(1).replace(/[\x00-\x1f\x7f]/g, '?');
    for (; text.length > MAX_LINE; text = text.slice(MAX_LINE)) this.line(text.slice(0, MAX_LINE), sev);
    if (text !== '') this.line(text, sev);
  }
}

/** What one timed read found: lines, nothing yet, or the end (the child's end closed). */
type Found = 'data' | 'empty' | 'end';

/** Reads what the pipe holds now, without waiting (libuv made the descriptor non-blocking). */
function readNow(fd: number, buf: Buffer, lines: LineReader): Found {
  let found: Found = 'empty';
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EAGAIN' ? found : 'end';
    }
    if (n === 0) return 'end';
    lines.feed(buf.subarray(0, n));
    found = 'data';
    // A short read emptied the pipe: the next look is the timer's (no read(2) just to hear EAGAIN).
    if (n < buf.length) return found;
  }
}

/**
 * The parent's end: calls `line` for every line read, in order; resolves when the pipe ends (the child exited).
 *
 * A line that comes while the parent is idle wakes it as usual; it then stops libuv's reading on the pipe and
 * reads what gathered there every READ_EVERY_MS, itself, until a look finds nothing (then the next line wakes
 * it again). A busy SMTP side's writes thus wake the parent once per READ_EVERY_MS, not once each; the child
 * never waits (a full pipe queues on its side, log-pipe's writer) and the order holds (one reader at a time:
 * libuv's, whose chunks are all handed on before the timer fires, or the timer's). A pipe with no libuv handle
 * underneath (a test's stream) is read on each chunk.
 */
export function readLogPipe(pipe: Readable, line: (text: string, severity: Severity) => void): Promise<void> {
  const lines = new LineReader(line);
  const handle = handleOf(pipe);
  const buf = handle ? Buffer.allocUnsafe(READ_SIZE) : undefined;
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  return new Promise((resolve) => {
    const done = (): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      lines.end();
      resolve();
    };
    const look = (): void => {
      timer = undefined;
      if (ended || !handle || !buf) return;
      // Chunks libuv read before it stopped are still on their way: they go first.
      if (pipe.readableLength > 0) return void (timer = setTimeout(look, READ_EVERY_MS));
      const found = readNow(handle.fd, buf, lines);
      if (found === 'data') timer = setTimeout(look, READ_EVERY_MS);
      else if (found === 'empty') handle.readStart();
      else {
        done();
        pipe.destroy();
      }
    };
    pipe.on('data', (chunk: Buffer | string) => {
      lines.feed(chunk);
      if (handle && !ended && timer === undefined) {
        // The stream still counts itself reading, so it does not start libuv again: look() does.
        handle.readStop();
        timer = setTimeout(look, READ_EVERY_MS);
      }
    });
    pipe.once('end', done);
    pipe.once('error', done);
    pipe.once('close', done);
  });
}
