/*
 * bounce/original.ts — read what a report returns of the original message:
 * the whole message when allowed and small enough, else its header section.
 *
 * Memory is bounded by the larger of the two caps: a message is read whole
 * only when its stored size is at most maxWhole; otherwise reading stops at
 * the empty line after the header section, or at maxHeader bytes (then cut
 * after the last complete line).
 */
import type { Readable } from 'node:stream';

export const DEFAULT_MAX_RETURN_BYTES = 1024 * 1024;
export const DEFAULT_MAX_HEADER_BYTES = 256 * 1024;

export interface Returned {
  readonly bytes: Buffer;
  readonly whole: boolean;
}

export async function readReturned(
  stream: Readable,
  opts: { readonly mode: 'full' | 'headers'; readonly size: number; readonly maxWhole?: number; readonly maxHeader?: number },
): Promise<Returned> {
  const maxWhole = opts.maxWhole ?? DEFAULT_MAX_RETURN_BYTES;
  const maxHeader = opts.maxHeader ?? DEFAULT_MAX_HEADER_BYTES;
  const whole = opts.mode === 'full' && opts.size <= maxWhole;
  const limit = whole ? maxWhole : maxHeader;
  const chunks: Buffer[] = [];
  let got = 0;
  let done = false;
  try {
    for await (const c of stream) {
      const b = c as Buffer;
      chunks.push(b);
      got += b.length;
      if (!whole) {
        // Look for the end of the header section near the new bytes only.
        const all = Buffer.concat(chunks);
        chunks.length = 0;
        chunks.push(all);
        const from = Math.max(0, all.length - b.length - 3);
        if (all.subarray(0, 2).toString('latin1') === '\r\n') return { bytes: Buffer.alloc(0), whole: false };
        const end = all.indexOf('\r\n\r\n', from);
        if (end >= 0) return { bytes: all.subarray(0, end + 2), whole: false };
      }
      if (got > limit) break;
    }
    done = got <= limit;
  } finally {
    stream.destroy();
  }
  const all = Buffer.concat(chunks);
  if (whole && done) return { bytes: all, whole: true };
  if (all.subarray(0, 2).toString('latin1') === '\r\n') return { bytes: Buffer.alloc(0), whole: false };
  const end = all.indexOf('\r\n\r\n');
  if (end >= 0 && end + 2 <= maxHeader) return { bytes: all.subarray(0, end + 2), whole: false };
  // No body, or headers longer than the cap: keep complete lines.
  const cut = all.subarray(0, Math.min(all.length, maxHeader));
  const lastLf = cut.lastIndexOf('\r\n');
  return { bytes: lastLf < 0 ? Buffer.alloc(0) : cut.subarray(0, lastLf + 2), whole: false };
}
