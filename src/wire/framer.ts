/*
 * wire/framer.ts — the connection's input framer: received bytes in,
 * command lines / DATA content / BDAT payload out.
 *
 * Pull-based so the session can switch mode between pipelined commands
 * (RFC 2920): push() appends what the socket delivered, next() returns one
 * event or null (need more input). After a "DATA" line the session decides
 * (354 or not) and calls startData(); after "BDAT n" it calls startBytes(n).
 * Bytes not yet returned stay queued in the mode they will be read in, so a
 * pipelined burst "MAIL..RCPT..DATA\r\n<content>\r\n.\r\nQUIT\r\n" in one
 * chunk frames correctly whenever the mode changes.
 *
 * Line mode (RFC 5321 §2.3.8, §4.5.3.1.4):
 *  - A line ends at LF; the CR before it, if any, is stripped and
 *    `bareLf` tells which. A CR elsewhere is part of the line (the session
 *    refuses it as a syntax error); CR LF split across chunks is one end.
 *  - A line longer than maxLine bytes counting its CR LF (or LF) yields one
 *    'line-too-long' when its LF arrives; its bytes are discarded as they
 *    come, so at most maxLine - 1 bytes of a partial line are ever kept.
 *  - A line inside one chunk is returned as a view of that chunk; a line
 *    spanning chunks is copied once.
 * Data mode: dot-decoder.ts (the only terminator is a real CR LF . CR LF).
 * Bytes mode: the next n bytes verbatim (BDAT, RFC 3030: nothing is special).
 *
 * discard() drops everything buffered: after STARTTLS, bytes the client
 * pipelined in clear text must not be read as commands once TLS is up
 * (CVE-2011-0411 and kin).
 */
import { DotDecoder } from './dot-decoder.js';
import type { BareNewlinePolicy } from './line-endings.js';

export type FrameEvent =
  | { type: 'line'; line: Buffer; bareLf: boolean }
  | { type: 'line-too-long' }
  | { type: 'data'; chunk: Buffer }
  | {
      type: 'data-end';
      size: number;
      overflow: boolean;
      bareCr: boolean;
      bareLf: boolean;
      nul: boolean;
    }
  | { type: 'bytes'; chunk: Buffer }
  | { type: 'bytes-end' };

export type FramerMode = 'line' | 'data' | 'bytes';

const CR = 13;
const LF = 10;
const LINE_TOO_LONG: FrameEvent = Object.freeze({ type: 'line-too-long' });
const BYTES_END: FrameEvent = Object.freeze({ type: 'bytes-end' });
const EMPTY = Buffer.alloc(0);

export class Framer {
  private readonly maxLine: number;
  private readonly policy: BareNewlinePolicy;
  private currentMode: FramerMode = 'line';

  /** Received chunks not yet fully returned; queue[head] is read from offset `off`. */
  private queue: Buffer[] = [];
  private head = 0;
  private off = 0;
  /** Unread bytes in the queue. */
  private queued = 0;

  /** Start of a line whose LF has not arrived (line mode). */
  private readonly partial: Buffer;
  private partialLen = 0;
  /** Inside a too-long line: drop bytes through its LF. */
  private discarding = false;

  private decoder: DotDecoder | null = null;
  /** Decoded slices not yet returned, and the data-end to follow them. */
  private decoded: Buffer[] = [];
  private decodedNext = 0;
  private dataEnd: FrameEvent | null = null;

  /** Payload bytes still to return in bytes mode. */
  private remaining = 0;

  constructor(opts: { maxLine: number; policy: BareNewlinePolicy }) {
    if (!Number.isInteger(opts.maxLine) || opts.maxLine < 2) {
      throw new RangeError(`Framer: maxLine must be an integer >= 2, got ${opts.maxLine}`);
    }
    this.maxLine = opts.maxLine;
    this.policy = opts.policy;
    this.partial = Buffer.allocUnsafe(opts.maxLine);
  }

  get mode(): FramerMode {
    return this.currentMode;
  }

  /** Bytes received but not yet returned as events (a too-long line's dropped bytes excluded). */
  get buffered(): number {
    return this.queued + this.partialLen;
  }

  /** Append received bytes. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.queue.push(chunk);
    this.queued += chunk.length;
  }

  /** The next event, or null when more input is needed. */
  next(): FrameEvent | null {
    switch (this.currentMode) {
      case 'line':
        return this.nextLine();
      case 'data':
        return this.nextData();
      case 'bytes':
        return this.nextBytes();
    }
  }

  /** Switch to DATA content (after sending 354). */
  startData(maxSize: number): void {
    this.leaveLineMode('startData');
    this.decoder = new DotDecoder({ policy: this.policy, maxSize });
    this.currentMode = 'data';
  }

  /** BDAT: the next n bytes are payload; n = 0 gives bytes-end at once. */
  startBytes(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`Framer: bad BDAT size ${n}`);
    this.leaveLineMode('startBytes');
    this.remaining = n;
    this.currentMode = 'bytes';
  }

  /** Drop all buffered input (STARTTLS injection defence); returns how many bytes. */
  discard(): number {
    const n = this.buffered;
    this.queue = [];
    this.head = 0;
    this.off = 0;
    this.queued = 0;
    this.partialLen = 0;
    this.discarding = false;
    return n;
  }

  private nextLine(): FrameEvent | null {
    const maxLine = this.maxLine;
    while (this.head < this.queue.length) {
      const chunk = this.queue[this.head]!;
      const from = this.off;
      const lf = chunk.indexOf(LF, from);
      if (lf < 0) {
        // No line end in this chunk: keep (or drop) its tail and read on.
        const n = chunk.length - from;
        this.advance(n);
        if (this.discarding) continue;
        if (this.partialLen + n >= maxLine) {
          // Even an LF right after would make it longer than maxLine.
          this.discarding = true;
          this.partialLen = 0;
          continue;
        }
        chunk.copy(this.partial, this.partialLen, from);
        this.partialLen += n;
        continue;
      }
      const n = lf + 1 - from;
      this.advance(n);
      if (this.discarding) {
        this.discarding = false;
        return LINE_TOO_LONG;
      }
      const partialLen = this.partialLen;
      if (partialLen + n > maxLine) {
        this.partialLen = 0;
        return LINE_TOO_LONG;
      }
      let line: Buffer;
      if (partialLen === 0) {
        line = chunk.subarray(from, lf);
      } else {
        line = Buffer.allocUnsafe(partialLen + n - 1);
        this.partial.copy(line, 0, 0, partialLen);
        chunk.copy(line, partialLen, from, lf);
        this.partialLen = 0;
      }
      const crlf = line.length > 0 && line[line.length - 1] === CR;
      return { type: 'line', line: crlf ? line.subarray(0, line.length - 1) : line, bareLf: !crlf };
    }
    return null;
  }

  private nextData(): FrameEvent | null {
    for (;;) {
      if (this.decodedNext < this.decoded.length) {
        const chunk = this.decoded[this.decodedNext]!;
        this.decoded[this.decodedNext++] = EMPTY;
        return { type: 'data', chunk };
      }
      if (this.decodedNext > 0) {
        this.decoded.length = 0;
        this.decodedNext = 0;
      }
      if (this.dataEnd !== null) {
        const ev = this.dataEnd;
        this.dataEnd = null;
        this.decoder = null;
        this.currentMode = 'line';
        return ev;
      }
      if (this.head >= this.queue.length) return null;
      const d = this.decoder!;
      const r = d.decode(this.queue[this.head]!, this.off, this.decoded);
      this.advance(r.consumed);
      if (r.done) {
        this.dataEnd = {
          type: 'data-end',
          size: d.size,
          overflow: d.overflow,
          bareCr: d.bareCr,
          bareLf: d.bareLf,
          nul: d.nul,
        };
      }
    }
  }

  private nextBytes(): FrameEvent | null {
    if (this.remaining === 0) {
      this.currentMode = 'line';
      return BYTES_END;
    }
    if (this.head >= this.queue.length) return null;
    const chunk = this.queue[this.head]!;
    const from = this.off;
    const take = Math.min(chunk.length - from, this.remaining);
    this.advance(take);
    this.remaining -= take;
    return { type: 'bytes', chunk: chunk.subarray(from, from + take) };
  }

  /** Consume n bytes of the head chunk. */
  private advance(n: number): void {
    this.off += n;
    this.queued -= n;
    const chunk = this.queue[this.head]!;
    if (this.off === chunk.length) {
      this.queue[this.head] = EMPTY; // let it be collected
      this.off = 0;
      if (++this.head === this.queue.length) {
        this.queue.length = 0;
        this.head = 0;
      }
    }
  }

  /**
   * Leaving line mode: a partial line read so far is really the start of
   * the content, so it goes back in front of the queue, and the rest of a
   * too-long line being dropped is read in the new mode. (A session that
   * switches right after the command line has neither.)
   */
  private leaveLineMode(what: string): void {
    if (this.currentMode !== 'line') throw new Error(`Framer.${what} in ${this.currentMode} mode`);
    this.discarding = false;
    if (this.partialLen === 0) return;
    const prefix = Buffer.from(this.partial.subarray(0, this.partialLen));
    if (this.off > 0) {
      this.queue[this.head] = this.queue[this.head]!.subarray(this.off);
      this.off = 0;
    }
    this.queue.splice(this.head, 0, prefix);
    this.queued += this.partialLen;
    this.partialLen = 0;
  }
}

