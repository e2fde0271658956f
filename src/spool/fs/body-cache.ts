/*
 * spool/fs/body-cache.ts — the bodies of messages committed lately, kept in
 * memory so that a delivery made soon after acceptance (a relay's usual
 * case) sends them without reading and checking the file again.
 *
 * A body is kept as the pieces the SMTP session wrote (views of what it
 * received), not as a copy: nothing writes into them after the commit.
 * A body in many pieces is joined into one first, so an entry stays cheap
 * to stream whatever the client's packet sizes were.
 *
 * Bounded by bytes, oldest out first; an entry leaves when its message is
 * removed. Only bodies that went through the journal are kept: they are
 * the exact bytes written, so there is nothing to check.
 */
/** More pieces than this are joined into one buffer. */
const MAX_PIECES = 16;

interface Entry {
  readonly pieces: readonly Buffer[];
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
    this.bodies.set(msgid, { pieces: pieces.length > MAX_PIECES ? [Buffer.concat(pieces, bytes)] : pieces, bytes, seq });
    this.order.push({ msgid, seq });
    this.bytes += bytes;
    while (this.bytes > this.maxBytes && this.head < this.order.length) {
      const oldest = this.order[this.head++] as { msgid: string; seq: number };
      if (this.bodies.get(oldest.msgid)?.seq === oldest.seq) this.delete(oldest.msgid);
    }
    if (this.order.length - this.head > 2 * this.bodies.size + 64) {
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

  /** Bookkeeping entries held (tests: bounded by about twice the entries cached). */
  get tracked(): number {
    return this.order.length - this.head;
  }
}
