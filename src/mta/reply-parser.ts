/*
 * mta/reply-parser.ts — the server's replies, as the SMTP client reads them.
 *
 * RFC 5321 §4.2: a reply is one or more lines "ddd-text" ending with one
 * "ddd text" (or a bare "ddd"); every line carries the same code. Pure and
 * pull-based like the server's framer: push() what the socket delivered,
 * next() returns one complete reply, null (need more input), or a
 * protocol error after which the connection is not usable.
 *
 * A server is not trusted:
 *  - a line ends at LF, the CR before it is optional (bare-LF replies exist
 *    in the wild); a CR or other control character inside the text is kept
 *    as it was received here and removed by whoever records the text
 *    (delivery/agent.ts oneLine(), log/maillog.ts clean());
 *  - each line keeps at most MAX_LINE_TEXT characters (the rest is dropped
 *    as it arrives), a reply at most MAX_LINES lines, and at most
 *    MAX_PENDING bytes of an unfinished line are buffered: a server that
 *    streams garbage costs bounded memory;
 *  - a line that does not start with three digits and a space or hyphen,
 *    or a continuation line with another code, is a protocol error.
 *
 * The enhanced status code (RFC 3463 / RFC 2034) is taken from the start
 * of the first line's text when its class matches the reply code.
 */

export interface ServerReply {
  readonly code: number;
  /** "5.1.1" when the server gave one of the matching class. */
  readonly enhanced?: string;
  /** Text of each line (enhanced code included), as received, decoded as UTF-8. */
  readonly lines: readonly string[];
}

export type ParseEvent = { readonly kind: 'reply'; readonly reply: ServerReply } | { readonly kind: 'error'; readonly message: string };

export const MAX_LINE_TEXT = 1000;
export const MAX_LINES = 200;
const MAX_PENDING = 4096;

export class ReplyParser {
  private buf: Buffer = Buffer.alloc(0);
  private lines: string[] = [];
  private code = 0;
  /** Inside a line longer than MAX_PENDING: drop bytes through its LF. */
  private skipping = false;
  private failed: string | null = null;

  /** Bytes not yet consumed (for "nothing may follow the STARTTLS reply"). */
  get buffered(): number {
    return this.buf.length + (this.lines.length > 0 ? 1 : 0);
  }

  push(chunk: Buffer): void {
    if (this.failed !== null || chunk.length === 0) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** The next complete reply, a protocol error (final), or null. */
  next(): ParseEvent | null {
    if (this.failed !== null) return { kind: 'error', message: this.failed };
    for (;;) {
      const lf = this.buf.indexOf(10);
      if (lf < 0) {
        if (this.buf.length > MAX_PENDING && !this.skipping) {
          // A line longer than any sane reply: keep its start, drop the rest as it comes.
          const done = this.takeLine(this.buf.subarray(0, MAX_PENDING));
          this.skipping = true;
          this.buf = Buffer.alloc(0);
          if (this.failed !== null) return { kind: 'error', message: this.failed };
          if (done !== null) return { kind: 'reply', reply: done };
        } else if (this.skipping) {
          this.buf = Buffer.alloc(0);
        }
        return null;
      }
      const raw = this.buf.subarray(0, lf > 0 && this.buf[lf - 1] === 13 ? lf - 1 : lf);
      this.buf = this.buf.subarray(lf + 1);
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      const done = this.takeLine(raw);
      if (this.failed !== null) return { kind: 'error', message: this.failed };
      if (done !== null) return { kind: 'reply', reply: done };
    }
  }

  /** One line of a reply; the whole reply when it was the last line. */
  private takeLine(raw: Buffer): ServerReply | null {
    const head = raw.subarray(0, 4).toString('latin1');
    const m = /^([2-5][0-9][0-9])([ -]|$)/.exec(head);
    if (m === null) {
      this.failed = `malformed reply line "${raw.subarray(0, 40).toString('latin1')}"`;
      return null;
    }
    const code = Number(m[1]);
    if (this.lines.length > 0 && code !== this.code) {
      this.failed = `reply code changed from ${this.code} to ${code} inside a multi-line reply`;
      return null;
    }
    this.code = code;
    let text = raw.subarray(4).toString('utf8');
    if (text.length > MAX_LINE_TEXT) text = text.slice(0, MAX_LINE_TEXT);
    this.lines.push(text);
    if (m[2] === '-') {
      if (this.lines.length >= MAX_LINES) {
        this.failed = `multi-line reply longer than ${MAX_LINES} lines`;
      }
      return null;
    }
    const lines = this.lines;
    this.lines = [];
    return makeReply(code, lines);
  }
}

/** Build a reply value, finding its enhanced status code. */
export function makeReply(code: number, lines: readonly string[]): ServerReply {
  const first = lines[0] ?? '';
  const e = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/.exec(first);
  if (e !== null && e[1] === String(code)[0]) return { code, enhanced: `${e[1]}.${e[2]}.${e[3]}`, lines };
  return { code, lines };
}

/** The reply as one line of text: "550 5.1.1 text text …" (not yet cleaned of control characters). */
export function replyText(r: ServerReply): string {
  return `${r.code} ${r.lines.join(' ')}`.trim();
}

/** The enhanced code to record: the server's, or class.0.0. */
export function enhancedOf(r: ServerReply): string {
  return r.enhanced ?? `${String(r.code)[0]}.0.0`;
}

export function isPositive(r: ServerReply): boolean {
  return r.code >= 200 && r.code < 400;
}

export function isTransient(r: ServerReply): boolean {
  return r.code >= 400 && r.code < 500;
}
