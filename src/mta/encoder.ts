/*
 * mta/encoder.ts — what Postern sends after DATA (or in BDAT chunks) is clean.
 *
 * The stored message already has CRLF line ends (the server normalizes
 * bare CR and LF, see docs/architecture.md), but the client makes sure on
 * its own, so that Postern can never be the outbound half of an SMTP
 * smuggling attack whatever is in the spool:
 *
 *  - CRLF everywhere: a bare LF, a bare CR and CR LF all become CR LF
 *    (a CR LF split across two chunks is one line end);
 *  - dot-stuffing (RFC 5321 §4.5.2) for DATA: a line that starts with "."
 *    gets one more; so "\n.\n", "\r.\r" and ".\r\n" inside the message go
 *    out as ordinary "..\r\n" lines and the only end of data is the
 *    terminator the client writes itself;
 *  - lines longer than 998 octets (RFC 5321 §4.5.3.1.6, counted as sent,
 *    stuffed dot included) are folded as Postfix's smtp(8) does: CR LF SP
 *    is inserted (at a UTF-8 character boundary), which keeps headers valid
 *    (a folded header continues on the next line) and does the least harm
 *    to MIME bodies; refusing the message instead would bounce mail that
 *    most servers accept;
 *  - the content ends with CR LF, so the terminator ".\r\n" (DATA) always
 *    starts a line.
 *
 * With smtp-header-checks (antispam/header-checks/stream.ts) the header
 * section is held back, rewritten (IGNORE, REPLACE, PREPEND) and then
 * encoded like the rest; the actions that decide a message's fate
 * (REJECT, HOLD, DISCARD, REDIRECT) are for mail received and do nothing here.
 *
 * BINARYMIME content (RFC 3030) goes out as stored: raw mode changes
 * nothing, since there are no lines to speak of.
 */

const CR = 13;
const LF = 10;
const DOT = 46;
const CRLF = Buffer.from('\r\n', 'latin1');
const FOLD = Buffer.from('\r\n ', 'latin1');
const STUFF = Buffer.from('.', 'latin1');

export const MAX_LINE = 998;
/** The end of DATA, written right after the last content (which ends with CRLF). */
export const DATA_TERMINATOR = Buffer.from('.\r\n', 'latin1');

export interface EncoderOptions {
  /** Dot-stuff lines (DATA); false for BDAT. */
  readonly stuff: boolean;
  /** Pass bytes through untouched (BINARYMIME). */
  readonly raw?: boolean;
  /** Longest line in octets before CR LF (default 998). */
  readonly maxLine?: number;
  /** Header checks for mail relayed out (not with raw). */
  readonly headers?: { push(chunk: Buffer): Buffer[]; end(): Buffer[] };
}

export class BodyEncoder {
  private readonly stuff: boolean;
  private readonly raw: boolean;
  private readonly maxLine: number;
  /** Octets sent on the current line. */
  private lineLen = 0;
  /** The previous chunk ended with CR: the line end is written when we see what follows. */
  private pendingCr = false;
  /** Lines folded so far (for the log). */
  folded = 0;
  /** Bare CR or LF turned into CR LF. */
  repaired = 0;
  /** Bytes produced so far. */
  size = 0;

  private readonly headers: EncoderOptions['headers'];

  constructor(opts: EncoderOptions) {
    this.stuff = opts.stuff;
    this.raw = opts.raw ?? false;
    this.maxLine = opts.maxLine ?? MAX_LINE;
    this.headers = this.raw ? undefined : opts.headers;
  }

  /** Encode one chunk of stored message bytes. */
  push(chunk: Buffer): Buffer {
    if (this.headers) {
      const parts = this.headers.push(chunk);
      return parts.length === 1 ? this.encode(parts[0]!) : Buffer.concat(parts.map((p) => this.encode(p)));
    }
    return this.encode(chunk);
  }

  private encode(chunk: Buffer): Buffer {
    if (this.raw) {
      this.size += chunk.length;
      return chunk;
    }
    const out: Buffer[] = [];
    let i = 0;
    const n = chunk.length;
    if (this.pendingCr && n > 0) {
      this.pendingCr = false;
      if (chunk[0] === LF) i = 1;
      else this.repaired++;
      this.lineEnd(out);
    }
    let nextCr = -2;
    let nextLf = -2;
    while (i < n) {
      if (nextCr !== -1 && nextCr < i) nextCr = chunk.indexOf(CR, i);
      if (nextLf !== -1 && nextLf < i) nextLf = chunk.indexOf(LF, i);
      let j = n;
      if (nextCr >= 0) j = nextCr;
      if (nextLf >= 0 && nextLf < j) j = nextLf;
      if (j > i) this.text(chunk.subarray(i, j), out);
      if (j === n) break;
      if (chunk[j] === LF) {
        // A bare LF (a CR before it would have been taken with it).
        this.repaired++;
        this.lineEnd(out);
        i = j + 1;
      } else if (j + 1 < n) {
        if (chunk[j + 1] === LF) i = j + 2;
        else {
          this.repaired++;
          i = j + 1;
        }
        this.lineEnd(out);
      } else {
        this.pendingCr = true;
        i = j + 1;
      }
    }
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }

  /** Whatever must follow the last chunk so that the content ends with CR LF. */
  end(): Buffer {
    if (this.raw) return Buffer.alloc(0);
    const out: Buffer[] = this.headers ? this.headers.end().map((p) => this.encode(p)) : [];
    if (this.pendingCr) {
      this.pendingCr = false;
      this.repaired++;
      this.lineEnd(out);
    } else if (this.lineLen > 0) {
      this.lineEnd(out);
    }
    return Buffer.concat(out);
  }

  private lineEnd(out: Buffer[]): void {
    out.push(CRLF);
    this.size += 2;
    this.lineLen = 0;
  }

  /** Line content without CR or LF: stuffing and folding. */
  private text(seg: Buffer, out: Buffer[]): void {
    while (seg.length > 0) {
      if (this.lineLen === 0 && this.stuff && seg[0] === DOT) {
        out.push(STUFF);
        this.size += 1;
        this.lineLen = 1;
      }
      const room = this.maxLine - this.lineLen;
      if (seg.length <= room) {
        out.push(seg);
        this.size += seg.length;
        this.lineLen += seg.length;
        return;
      }
      let cut = room;
      // Do not split a UTF-8 sequence: back up over continuation bytes (at most 3).
      for (let k = 0; k < 3 && cut > 0 && ((seg[cut] as number) & 0xc0) === 0x80; k++) cut--;
      if (cut === 0) cut = room;
      out.push(seg.subarray(0, cut), FOLD);
      this.size += cut + FOLD.length;
      this.lineLen = 1;
      this.folded++;
      seg = seg.subarray(cut);
    }
  }
}
