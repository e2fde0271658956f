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
 *  - Output slices are views of the input chunks, of shared constant
 *    buffers or of a per-chunk copy (see below): callers must not write into
 *    them, and must not reuse an input buffer while its slices are in use.
 *  - `size` counts every output byte; with a limit, output beyond `limit`
 *    bytes is dropped (the count goes on).
 *
 * Hot path: Buffer.indexOf (memchr) finds the next CR, LF and NUL; each
 * cursor is reused until passed, so a clean chunk costs one NUL scan plus a
 * CR and an LF lookup per line, and no allocation beyond the output slices.
 * Hostile input is bounded too: where special bytes come thick a JS loop
 * replaces the indexOf calls, the NUL search stops at the first NUL, and a
 * chunk needing more than a few slices (a flood of bare newlines or stuffed
 * dots) has the rest of its output copied into one buffer.
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

/** Gap (bytes) under which the next search is a JS probe rather than indexOf calls. */
const DENSE_GAP = 16;
/** How far a JS probe looks before falling back to indexOf. */
const PROBE = 64;
/** Slices per chunk beyond which the rest of the chunk's output is copied into one buffer. */
const MAX_SLICES = 8;
/** Copying below this many bytes is a JS loop (cheaper than a Buffer.copy call). */
const SHORT_COPY = 32;

/**
 * The shared scanning core. Use: begin(chunk, start, out), then any mix of
 * scanLine / flush / skip / markBareCr, then finish(end).
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
  /** The last special byte was close: probe with a JS loop before calling indexOf. */
  private dense = false;
  /** Slices pushed for the current chunk. */
  private slices = 0;
  /** Copy mode (too many slices in this chunk): output accumulates here. */
  private copy: Buffer | null = null;
  private copyLen = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Start work on chunk[start..]; output goes to `out`. */
  begin(chunk: Buffer, start: number, out: Buffer[]): void {
    this.chunk = chunk;
    this.out = out;
    this.seg = start;
    this.nextCr = this.nextLf = this.nextNul = -1;
    this.slices = 0;
  }

  /** Emit the pending segment up to `end` and let go of the chunk. */
  finish(end: number): void {
    this.flush(end);
    const copy = this.copy;
    if (copy !== null) {
      if (this.copyLen > 0) this.out.push(copy.subarray(0, this.copyLen));
      this.copy = null;
      this.copyLen = 0;
    }
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
      const p = this.findSpecial(i);
      if (p === len) return -1; // (never read past the end: V8 deoptimises on it)
      const c = chunk[p];
      if (c === CR) {
        if (p + 1 === len) {
          this.pendingCr = true;
          return -1;
        }
        if (chunk[p + 1] === LF) return p + 2;
        this.flush(p + 1);
        this.markBareCr(INSERT_LF);
      } else if (c === LF) {
        // An LF reached here was not preceded by CR (a CR's LF is consumed with it).
        this.flush(p);
        this.markBareLf(); // the LF starts the next segment, after the inserted CR
      } else {
        this.nul = true; // kept in the output; no more NUL searches
      }
      i = p + 1;
    }
  }

  /**
   * Position of the first CR, LF or (until one was seen) NUL at or after i,
   * or chunk.length. Long stretches are skipped with Buffer.indexOf (memchr)
   * and its results kept as cursors; where special bytes come thick (short
   * or empty lines, floods of bare newlines) a JS loop is cheaper than the
   * calls, so one probes first.
   */
  private findSpecial(from: number): number {
    const chunk = this.chunk;
    const len = chunk.length;
    let i = from;
    if (this.dense) {
      const stop = Math.min(len, i + PROBE);
      const nulToo = !this.nul;
      for (let j = i; j < stop; j++) {
        const c = chunk[j]!;
        if (c <= CR && (c === CR || c === LF || (c === NUL && nulToo))) return j;
      }
      if (stop === len) return len;
      i = stop;
      this.dense = false;
    }
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
    let p = cr < lf ? cr : lf;
    if (!this.nul) {
      let nul = this.nextNul;
      if (nul < i) {
        nul = chunk.indexOf(NUL, i);
        this.nextNul = nul = nul < 0 ? len : nul;
      }
      if (nul < p) p = nul;
    }
    this.dense = p - from < DENSE_GAP;
    return p;
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

  /**
   * Output buf[s..e), counted in size, cut at the limit. A slice of the
   * input while a chunk needs few; past MAX_SLICES (a flood of edits) the
   * rest of the chunk's output is copied into one buffer, so neither the
   * number of slices nor the cost per edit grows with the input.
   */
  private emit(buf: Buffer, s: number, e: number): void {
    const before = this.size;
    this.size = before + (e - s);
    const room = this.limit - before;
    if (room <= 0) return;
    if (e - s > room) e = s + room;
    if (this.copy === null) {
      if (++this.slices <= MAX_SLICES) {
        this.out.push(buf.subarray(s, e));
        return;
      }
      // At most 2 output bytes per input byte left, plus a completion from the previous chunk.
      this.copy = Buffer.allocUnsafe(2 * (this.chunk.length - this.seg) + 4);
      this.copyLen = 0;
    }
    let copy = this.copy;
    let at = this.copyLen;
    if (at + (e - s) > copy.length) {
      this.out.push(copy.subarray(0, at)); // unreachable by the bound above; kept safe
      this.copy = copy = Buffer.allocUnsafe(Math.max(e - s, 256));
      at = 0;
    }
    if (e - s < SHORT_COPY) {
      for (let k = s; k < e; k++) copy[at++] = buf[k]!;
    } else {
      at += buf.copy(copy, at, s, e);
    }
    this.copyLen = at;
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
