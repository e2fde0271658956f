/*
 * antispam/header-checks/stream.ts — header checks on a message as it
 * streams by: the header section is held back until its end (the empty
 * line), checked and rewritten (apply.ts), and written out; the body
 * passes untouched. One instance per message.
 *
 * A header section longer than MAX_HEADER_BYTES is not checked (it goes
 * out as it came); a message without an empty line is all header.
 * Used on the way in (queue/enqueue.ts) and on the way out (mta/encoder.ts).
 */
import type { HeaderRule } from '../../config/antispam.js';
import { applyHeaderChecks, type HeaderRedirect, type HeaderVerdict } from './apply.js';

const MAX_HEADER_BYTES = 256 * 1024;
const CRLF = Buffer.from('\r\n');

export class HeaderCheckStream {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private passing = false;
  verdict: HeaderVerdict = { kind: 'none' };
  warnings: readonly string[] = [];
  redirect: HeaderRedirect | undefined;

  constructor(private readonly rules: readonly HeaderRule[]) {}

  /** A chunk of the message: what to pass on now. */
  push(chunk: Buffer): Buffer[] {
    if (this.passing) return [chunk];
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    const all = this.held.length === 1 ? chunk : Buffer.concat(this.held);
    this.held = [all];
    const end = headerEnd(all);
    if (end < 0) {
      if (this.heldBytes <= MAX_HEADER_BYTES) return [];
      return this.release(all, undefined);
    }
    return this.release(all, end);
  }

  /** The message is complete: whatever is still held. */
  end(): Buffer[] {
    if (this.passing) return [];
    const all = Buffer.concat(this.held);
    if (all.length === 0) return [];
    return this.check(all, all.length);
  }

  /** end: the offset just after the header section's last CR LF (before the empty line). */
  private release(all: Buffer, end: number | undefined): Buffer[] {
    this.passing = true;
    this.held = [];
    if (end === undefined) return [all];
    return [...this.check(all.subarray(0, end), end), all.subarray(end)];
  }

  private check(section: Buffer, _end: number): Buffer[] {
    this.passing = true;
    this.held = [];
    const text = section.toString('latin1');
    const trailing = text.endsWith('\r\n');
    const lines = (trailing ? text.slice(0, -2) : text).split('\r\n');
    const headers: string[] = [];
    for (const l of lines) {
      if ((l.startsWith(' ') || l.startsWith('\t')) && headers.length > 0) headers[headers.length - 1] += `\r\n${l}`;
      else headers.push(l);
    }
    const r = applyHeaderChecks(this.rules, headers);
    this.verdict = r.verdict;
    this.warnings = r.warnings;
    this.redirect = r.redirect;
    if (!r.changed) return [section];
    const body = r.headers.join('\r\n');
    return [Buffer.from(body.length > 0 ? body : '', 'latin1'), ...(body.length > 0 && trailing ? [CRLF] : [])];
  }
}

/** Offset just after the CR LF that ends the last header line (the empty line starts there); -1 when not yet seen. */
function headerEnd(b: Buffer): number {
  if (b.length >= 2 && b[0] === 13 && b[1] === 10) return 0;
  const i = b.indexOf('\r\n\r\n');
  return i < 0 ? -1 : i + 2;
}
