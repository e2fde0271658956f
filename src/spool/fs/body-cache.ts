/*
 * spool/fs/body-cache.ts — the bodies of messages committed lately, kept in
 * memory so that a delivery made soon after acceptance (a relay's usual
 * case) sends them without reading and checking the file again.
 *
 * A body is kept as the pieces the SMTP session wrote (views of what it
 * received), not as a copy: nothing writes into them after the commit. But
 * a view keeps all of the memory it is a view of: a small message that
 * came in one read with much else (pipelining, or a client's padding)
 * would hold the whole read. So the pieces are kept only when what they
 * hold is at most about twice the body (a large message, read in large
 * chunks, where not copying matters); otherwise, or when the body is in
 * many pieces, it is copied into one buffer of its own, exactly its size.
 * The budget counts what each entry holds either way.
 *
 * Bounded by bytes, oldest out first; an entry leaves when its message is
 * removed. Only bodies that went through the journal are kept: they are
 * the exact bytes written, so there is nothing to check.
 */
/** More pieces than this are joined into one buffer. */
const MAX_PIECES = 16;
/** Pieces that hold more than twice the body plus this are copied. */
const SLACK = 4096;

/** The bytes of memory that `pieces` (at most MAX_PIECES) keep alive, each ArrayBuffer once. Runs per commit: no allocation. */
function held(pieces: readonly Buffer[]): number {
  let n = 0;
  outer: for (let i = 0; i < pieces.length; i++) {
    const ab = (pieces[i] as Buffer).buffer;
    for (let j = 0; j < i; j++) if ((pieces[j] as Buffer).buffer === ab) continue outer;
    n += ab.byteLength;
  }
  return n;
}

/** One buffer of its own, exactly the body. */
function join(pieces: readonly Buffer[], bytes: number): Buffer {
  const out = Buffer.allocUnsafeSlow(bytes);
  let at = 0;
  for (const p of pieces) at += p.copy(out, at);
  return out;
}

interface Entry {
  readonly pieces: readonly Buffer[];
  /** The memory it holds (counted against maxBytes). */
  readonly bytes: number;
  /** Which put() made it (a msgid cached, dropped and cached again has a new one). */
  readonly seq: number;
}

export class BodyCache {
  private readonly bodies = new Map<string, Entry>();
  private bytes = 0;
  private seq = 0;
  /**
   * What was put, in order, oldest from `head`; some are gone since
   * (removed: skipped, and compacted away once they outnumber the rest).
   * Not the Map's own order: finding its oldest key walks past every entry
   * deleted since the Map last rehashed, on every put.
   */
  private order: { readonly msgid: string; readonly seq: number }[] = [];
  private head = 0;

  constructor(private readonly maxBytes: number) {}

  put(msgid: string, pieces: readonly Buffer[], bytes: number): void {
    if (bytes > this.maxBytes / 8) return;
    this.delete(msgid);
    const seq = ++this.seq;
    let cost = pieces.length > MAX_PIECES ? Infinity : held(pieces);
    if (cost > 2 * bytes + SLACK) {
      pieces = [join(pieces, bytes)];
      cost = bytes;
    }
    this.bodies.set(msgid, { pieces, bytes: cost, seq });
    this.order.push({ msgid, seq });
    this.bytes += cost;
    while (this.bytes > this.maxBytes && this.head < this.order.length) {
      const oldest = this.order[this.head++] as { msgid: string; seq: number };
      if (this.bodies.get(oldest.msgid)?.seq === oldest.seq) this.delete(oldest.msgid);
    }
    // Drop what eviction walked past and what removals left behind, once either outnumbers the rest.
    const ahead = this.order.length - this.head;
    if ((this.head >= 1024 && this.head >= ahead) || ahead > 2 * this.bodies.size + 64) {
      this.order = this.order.slice(this.head).filter((o) => this.bodies.get(o.msgid)?.seq === o.seq);
      this.head = 0;
    }
  }

  /** The body's pieces, in order. */
  get(msgid: string): readonly Buffer[] | undefined {
    return this.bodies.get(msgid)?.pieces;
  }

  delete(msgid: string): void {
    const e = this.bodies.get(msgid);
    if (e === undefined) return;
    this.bodies.delete(msgid);
    this.bytes -= e.bytes;
  }

  get size(): number {
    return this.bytes;
  }

  /** Bookkeeping entries held (tests: bounded by about twice the entries cached, or 2,048). */
  get tracked(): number {
    return this.order.length;
  }
}
