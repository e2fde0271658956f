/*
 * wire/dot-decoder.ts — decoder of DATA content (RFC 5321 §4.1.1.4, §4.5.2),
 * the SMTP smuggling defence.
 *
 * A pure state machine over Buffers, fed arbitrary chunk boundaries; it
 * holds no input, only a few bits of state (at most "line start", "dot" and
 * "dot CR" pending across a boundary), and emits the decoded content as
 * slices of the input chunks (see line-endings.ts for the slicing rules).
 *
 * Semantics:
 *  - Decoding starts at a line start: the DATA command's CR LF counts, so
 *    ".\r\n" as the first bytes is an empty message.
 *  - The ONLY terminator is CR LF "." CR LF where both CR LFs are real CR LF
 *    pairs. Nothing else ends the data: not LF "." LF, CR "." CR,
 *    CR LF "." LF, LF "." CR LF, CR LF "." CR, CR LF NUL "." CR LF,
 *    CR LF "." NUL CR LF, ... The first CR LF of the terminator ends the
 *    last line and is part of the content ("a\r\n.\r\n" decodes to "a\r\n",
 *    §4.1.1.4); the "." CR LF line is not. The content is therefore either
 *    empty or ends with CR LF. A bare CR/LF before a real CR LF does not
 *    spoil it: "x\r\r\n.\r\n" ends the data (every reader sees that end).
 *  - Dot-unstuffing (§4.5.2): at the start of a line that began after a
 *    real CR LF, a "." is removed ("..x" -> ".x", ".x" -> "x", ".\n" -> "\r\n")
 *    unless it is followed by CR LF (the terminator).
 *  - Bare LF and bare CR (line-endings.ts) are flagged and replaced by CR LF
 *    in the output, and the line after one is NOT a line start: LF "." CR LF
 *    decodes to CR LF "." CR LF (the dot kept verbatim) and data goes on.
 *    A "." CR at a line start followed by anything but LF decodes to CR LF
 *    (the dot is unstuffed, the CR is bare).
 *  - NUL bytes set `nul` and are kept; decoding goes on to the terminator.
 *  - The policy does not change the output: with 'reject' the caller refuses
 *    the message (550 5.5.2) when bareCr/bareLf is set, after decoding has
 *    run to the real terminator.
 *  - `size` counts all decoded bytes; output beyond maxSize bytes is dropped
 *    while decoding continues to the terminator; `overflow` = size > maxSize.
 */
import { INSERT_CRLF, LineEndingScanner, type BareNewlinePolicy } from './line-endings.js';

export type { BareNewlinePolicy } from './line-endings.js';

const CR = 13;
const LF = 10;
const DOT = 46;

/* Position in the line structure. "Inside a line" includes a pending CR (kept by the scanner). */
/** Inside a line (or after a bare CR/LF: not a line start). */
const MID = 0;
/** Just after a real CR LF. */
const LINE_START = 1;
/** A "." at a line start, not yet emitted. */
const DOT_PENDING = 2;
/** "." CR at a line start, neither emitted. */
const DOT_CR = 3;
/** The terminator has been consumed. */
const DONE = 4;

export class DotDecoder {
  readonly policy: BareNewlinePolicy;
  readonly maxSize: number;
  private readonly scan: LineEndingScanner;
  private state: number = LINE_START;

  constructor(opts: { policy: BareNewlinePolicy; maxSize: number }) {
    this.policy = opts.policy;
    this.maxSize = opts.maxSize;
    this.scan = new LineEndingScanner(opts.maxSize);
  }

  /**
   * Consume bytes of chunk from `start`, pushing decoded content to `out`.
   * Returns how many bytes were consumed: all of them, or up to and
   * including the terminator's final LF (then done = true). After done,
   * consumes nothing.
   */
  decode(chunk: Buffer, start: number, out: Buffer[]): { consumed: number; done: boolean } {
    const len = chunk.length;
    if (!(start >= 0 && start <= len)) throw new RangeError(`DotDecoder: start ${start} outside 0..${len}`);
    let st = this.state;
    if (st === DONE) return { consumed: 0, done: true };
    const scan = this.scan;
    let i = start;
    scan.begin(chunk, start, out);
    while (i < len) {
      if (st === MID) {
        const next = scan.scanLine(i);
        if (next < 0) {
          i = len;
          break;
        }
        i = next;
        st = LINE_START;
        continue;
      }
      const c = chunk[i];
      if (st === LINE_START) {
        if (c === DOT) {
          scan.flush(i);
          scan.skip(i + 1);
          st = DOT_PENDING;
          i++;
        } else {
          st = MID;
        }
      } else if (st === DOT_PENDING) {
        if (c === CR) {
          scan.skip(i + 1);
          st = DOT_CR;
          i++;
        } else {
          st = MID; // the dot stays dropped; c is an ordinary byte
        }
      } else if (c === LF) {
        // DOT_CR + LF: CR LF "." CR LF, the end.
        this.state = DONE;
        scan.finish(i);
        return { consumed: i + 1 - start, done: true };
      } else {
        // "." CR then not LF: the dot is unstuffed, the CR is bare.
        scan.markBareCr(INSERT_CRLF);
        st = MID;
      }
    }
    this.state = st;
    scan.finish(len);
    return { consumed: len - start, done: false };
  }

  /** The terminator has been seen. */
  get done(): boolean {
    return this.state === DONE;
  }
  get size(): number {
    return this.scan.size;
  }
  get overflow(): boolean {
    return this.scan.size > this.maxSize;
  }
  get bareCr(): boolean {
    return this.scan.bareCr;
  }
  get bareLf(): boolean {
    return this.scan.bareLf;
  }
  get nul(): boolean {
    return this.scan.nul;
  }
}
