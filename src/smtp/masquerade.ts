/*
 * smtp/masquerade.ts — `listen … senders <table> masquerade` (OpenSMTPD):
 * an authenticated user's From: header is rewritten to the envelope
 * sender the senders table allowed, so the visible author matches.
 *
 * The header section is held (at most MAX_HELD bytes; beyond that the
 * message goes through unchanged) until the empty line that ends it; the
 * address of the first From: field is replaced, its display name kept.
 */

export const MAX_HELD = 256 * 1024;

export class FromRewriter {
  private held: Buffer[] = [];
  private size = 0;
  private done = false;

  constructor(private readonly sender: string) {}

  /** Feed content; returns what may be written now. */
  push(chunk: Buffer): Buffer[] {
    if (this.done) return [chunk];
    this.held.push(chunk);
    this.size += chunk.length;
    const all = Buffer.concat(this.held);
    const end = all.indexOf('\r\n\r\n');
    if (end >= 0) return this.release(all, end + 2);
    if (this.size > MAX_HELD) {
      this.done = true;
      this.held = [];
      return [all];
    }
    return [];
  }

  /** End of message: whatever is still held (a message without a body). */
  end(): Buffer[] {
    if (this.done) return [];
    const all = Buffer.concat(this.held);
    return this.release(all, all.length);
  }

  private release(all: Buffer, headerEnd: number): Buffer[] {
    this.done = true;
    this.held = [];
    const headers = rewriteFrom(all.subarray(0, headerEnd).toString('latin1'), this.sender);
    return [Buffer.from(headers, 'latin1'), all.subarray(headerEnd)];
  }
}

/** Replace the address of the first From: field of a CRLF header block. */
export function rewriteFrom(headers: string, sender: string): string {
  const m = /(^|\r\n)(From[ \t]*:)((?:[^\r]|\r(?!\n)|\r\n[ \t])*)/i.exec(headers);
  if (!m || m[2] === undefined || m[3] === undefined) return headers;
  const value = m[3];
  const angle = value.lastIndexOf('<');
  const close = value.indexOf('>', angle);
  const rewritten = angle >= 0 && close > angle ? `${value.slice(0, angle)}<${sender}>${value.slice(close + 1)}` : ` <${sender}>`;
  const start = m.index + (m[1] ?? '').length;
  return headers.slice(0, start) + m[2] + rewritten + headers.slice(start + m[2].length + value.length);
}
