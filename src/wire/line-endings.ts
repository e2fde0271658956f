/*
 * wire/line-endings.ts — bare CR / bare LF classification and CRLF
 * normalisation of message content.
 *
 * SMTP content must use CR LF line endings (RFC 5321 §2.3.8, §4.1.1.4);
 * a "bare" CR (not followed by LF) or "bare" LF (not preceded by CR) is
 * how SMTP smuggling works, so both are flagged wherever they appear.
 *
 * LineEndingScanner is the shared core: it walks a chunk, classifies every
 * CR and LF, flags NULs and emits the content as slices of the input,
 * inserting the missing half of a bare CR or bare LF (so the output never
 * holds a bare one). Between those insertions one slice covers any number
 * of lines: a clean chunk becomes one output slice. DotDecoder
 * (dot-decoder.ts) adds the DATA line-start rules on top of it;
 * LineEndingNormalizer (below) uses it as is, for BDAT (RFC 3030) content,
 * which has no terminator and no dot-stuffing.
 *
 * Semantics:
 *  - CR LF is kept; a bare CR becomes CR LF, a bare LF becomes CR LF.
 *  - A CR at the end of a chunk is emitted at once (it is output whatever
 *    follows); whether it was bare is decided by the next chunk's first byte.
 *  - NUL is kept in the output and sets `nul` (the caller refuses the message).
 *  - The policy does not change the output: with 'reject' the caller refuses
 *    the message (550 5.5.2) when a flag is set, so the bytes it got are never
 *    used; one code path serves both policies.
 *  - Output slices are views of the input chunks or of shared constant
 *    buffers: callers must not write into them.
 *  - `size` counts every output byte; with a limit, output beyond `limit`
 *    bytes is dropped (the count goes on).
 *
 * Hot path: Buffer.indexOf (memchr) finds the next CR, LF and NUL; each
 * cursor is reused until passed, so a clean chunk costs one NUL scan plus a
 * CR and an LF lookup per line, and no allocation beyond the output slices.
 */

export type BareNewlinePolicy = 'normalize' | 'reject';

const CR = 13;
const LF = 10;
const NUL = 0;

const CRLF_BUF = Buffer.from('\r\n', 'latin1');
/** Constant insertions; shared, never written. */
export const INSERT_CRLF = CRLF_BUF;
const INSERT_CR = CRLF_BUF.subarray(0, 1);
const INSERT_LF = CRLF_BUF.subarray(1, 2);
const EMPTY = Buffer.alloc(0);
const NO_OUT: Buffer[] = [];

/**
 * The shared scanning core. Use: begin(chunk, start, out), then any mix of
 * scanLine / flush / skip / markBareCr / insert, then finish(end).
 */
export class LineEndingScanner {
  bareCr = false;
  bareLf = false;
  nul = false;
  /** Output bytes produced, including those dropped beyond the limit. */
  size = 0;
  /** The last byte consumed was a CR whose successor has not arrived yet. */
  pendingCr = false;

  private readonly limit: number;
  private chunk: Buffer = EMPTY;
  private out: Buffer[] = NO_OUT;
  /** Start of the not-yet-emitted segment of `chunk`. */
  private seg = 0;
  /** Next CR / LF / NUL at or after the scan position; < position = stale; chunk.length = none. */
  private nextCr = -1;
  private nextLf = -1;
  private nextNul = -1;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Start work on chunk[start..]; output goes to `out`. */
  begin(chunk: Buffer, start: number, out: Buffer[]): void {
    this.chunk = chunk;
    this.out = out;
    this.seg = start;
    this.nextCr = this.nextLf = this.nextNul = -1;
  }

  /** Emit the pending segment up to `end` and let go of the chunk. */
  finish(end: number): void {
    this.flush(end);
    this.chunk = EMPTY;
    this.out = NO_OUT;
  }

  /**
   * Scan from i to just past the next real CR LF and return that position
   * (the caller is then at a line start), or return -1 when the chunk ends
   * first (everything consumed; a trailing CR is left in `pendingCr`).
   * Bare CR / LF are flagged and completed to CR LF in the output.
   */
  scanLine(i: number): number {
    const chunk = this.chunk;
    const len = chunk.length;
    if (this.pendingCr) {
      if (i >= len) return -1;
      this.pendingCr = false;
      if (chunk[i] === LF) return i + 1;
      this.markBareCr(INSERT_LF); // the CR itself was emitted with the previous chunk
    }
    for (;;) {
      let cr = this.nextCr;
      if (cr < i) {
        cr = chunk.indexOf(CR, i);
        this.nextCr = cr = cr < 0 ? len : cr;
      }
      let lf = this.nextLf;
      if (lf < i) {
        lf = chunk.indexOf(LF, i);
        this.nextLf = lf = lf < 0 ? len : lf;
      }
      let nul = this.nextNul;
      if (nul < i) {
        nul = chunk.indexOf(NUL, i);
        this.nextNul = nul = nul < 0 ? len : nul;
      }
      if (nul < cr && nul < lf) {
        this.nul = true; // kept in the output
        i = nul + 1;
        continue;
      }
      if (lf < cr) {
        // An LF reached here was not preceded by CR (a CR's LF is consumed with it).
        this.flush(lf);
        this.markBareLf();
        i = lf + 1; // the LF starts the next segment, after the inserted CR
        continue;
      }
      if (cr === len) return -1;
      if (cr + 1 === len) {
        this.pendingCr = true;
        return -1;
      }
      if (chunk[cr + 1] === LF) return cr + 2;
      this.flush(cr + 1);
      this.markBareCr(INSERT_LF);
      i = cr + 1;
    }
  }

  /** Emit chunk[seg..end) and move the segment start there. */
  flush(end: number): void {
    const s = this.seg;
    if (end > s) {
      this.emit(this.chunk, s, end);
      this.seg = end;
    }
  }

  /** Drop input up to `pos` (the segment restarts there; call flush first). */
  skip(pos: number): void {
    this.seg = pos;
  }

  /** Record a bare CR and output `completion` (LF after an emitted CR, CR LF for a dropped one). */
  markBareCr(completion: Buffer): void {
    this.bareCr = true;
    this.emit(completion, 0, completion.length);
  }

  /** Record a bare LF at the segment start and output the missing CR. */
  private markBareLf(): void {
    this.bareLf = true;
    this.emit(INSERT_CR, 0, 1);
  }

  /** A CR left pending when the input ends is bare: complete it. */
  endOfInput(): void {
    if (this.pendingCr) {
      this.pendingCr = false;
      this.markBareCr(INSERT_LF);
    }
  }

  private emit(buf: Buffer, s: number, e: number): void {
    const before = this.size;
    this.size = before + (e - s);
    const room = this.limit - before;
    if (room <= 0) return;
    this.out.push(e - s <= room ? buf.subarray(s, e) : buf.subarray(s, s + room));
  }
}

/**
 * CRLF normaliser for BDAT content: bare CR / bare LF become CR LF and are
 * flagged; a CR at the end of a chunk waits for the next chunk (it is
 * emitted at once, its completion waits); end() completes a trailing CR.
 */
export class LineEndingNormalizer {
  readonly policy: BareNewlinePolicy;
  private readonly scan = new LineEndingScanner(Infinity);

  constructor(policy: BareNewlinePolicy) {
    this.policy = policy;
  }

  push(chunk: Buffer, out: Buffer[]): void {
    const scan = this.scan;
    scan.begin(chunk, 0, out);
    let i = 0;
    while (i >= 0) i = scan.scanLine(i);
    scan.finish(chunk.length);
  }

  end(out: Buffer[]): void {
    const scan = this.scan;
    scan.begin(EMPTY, 0, out);
    scan.endOfInput();
    scan.finish(0);
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
  /** Output bytes produced so far. */
  get size(): number {
    return this.scan.size;
  }
}
