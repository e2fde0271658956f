/*
 * spool/fs/body-cache.ts — the bodies of messages committed lately, kept in
 * memory so that a delivery made soon after acceptance (a relay's usual
 * case) sends them without reading and checking the file again.
 *
 * Bounded by bytes, oldest out first; an entry leaves when its message is
 * removed. Only bodies that went through the journal are kept: they are
 * the exact bytes written, so there is nothing to check.
 */
export class BodyCache {
  private readonly bodies = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  put(msgid: string, body: Buffer): void {
    if (body.length > this.maxBytes / 8) return;
    this.delete(msgid);
    this.bodies.set(msgid, body);
    this.bytes += body.length;
    for (const [id, b] of this.bodies) {
      if (this.bytes <= this.maxBytes) break;
      this.bodies.delete(id);
      this.bytes -= b.length;
    }
  }

  get(msgid: string): Buffer | undefined {
    return this.bodies.get(msgid);
  }

  delete(msgid: string): void {
    const b = this.bodies.get(msgid);
    if (b === undefined) return;
    this.bodies.delete(msgid);
    this.bytes -= b.length;
  }

  get size(): number {
    return this.bytes;
  }
}
