/*
 * delivery/local/lmtp-wire.ts — the bytes of an LMTP (RFC 2033) client,
 * without a socket: the reply parser, DATA dot-stuffing, destinations.
 *
 * Replies (RFC 5321 §4.2): "250-first line", …, "250 last line"; a line is
 * three digits, then "-" (more follow), " " or nothing. Anything else is a
 * protocol error, reported rather than guessed at.
 *
 * DATA (RFC 5321 §4.5.2): every line end becomes CRLF (a bare CR or LF
 * never reaches the server), a line starting with "." gets one more ".",
 * the content ends with CRLF, then ".\r\n".
 */

export interface LmtpReply {
  readonly code: number;
  /** RFC 3463 code from the first line, when it carries one of the reply's class. */
  readonly enhanced?: string;
  /** Text of every line, without code and separator. */
  readonly lines: readonly string[];
}

export class LmtpProtocolError extends Error {}

const MAX_LINE = 4096;
const MAX_LINES = 200;

/** Incremental reply parser: push bytes, take complete replies. */
export class ReplyParser {
  private buf = '';
  private lines: string[] = [];
  private code = -1;
  private readonly ready: LmtpReply[] = [];

  push(chunk: Buffer | string): void {
    this.buf += typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl < 0) {
        if (this.buf.length > MAX_LINE) throw new LmtpProtocolError('reply line too long');
        return;
      }
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      this.line(line);
    }
  }

  /** The next complete reply, if any. */
  take(): LmtpReply | undefined {
    return this.ready.shift();
  }

  /** A reply, or a part of one, waits to be taken. */
  pending(): boolean {
    return this.ready.length > 0 || this.buf !== '' || this.lines.length > 0;
  }

  private line(line: string): void {
    const m = /^([2-5]\d\d)(?:([- ])(.*))?$/s.exec(line);
    if (!m) throw new LmtpProtocolError(`malformed reply line "${line.slice(0, 80)}"`);
    const code = Number(m[1]);
    if (this.code >= 0 && code !== this.code) throw new LmtpProtocolError(`reply code changed from ${this.code} to ${code} inside a reply`);
    this.code = code;
    this.lines.push(m[3] ?? '');
    if (this.lines.length > MAX_LINES) throw new LmtpProtocolError('reply has too many lines');
    if (m[2] === '-') return;
    const first = this.lines[0] ?? '';
    const e = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/.exec(first);
    const enhanced = e && e[1] === String(code)[0] ? `${e[1]}.${e[2]}.${e[3]}` : undefined;
    const lines = enhanced ? [first.slice(enhanced.length).trimStart(), ...this.lines.slice(1)] : this.lines;
    this.ready.push(enhanced ? { code, enhanced, lines } : { code, lines });
    this.lines = [];
    this.code = -1;
  }
}

/** "250 2.1.5 text" on one line, for details and DSN diagnostics. */
export function replyText(r: LmtpReply): string {
  return `${r.code}${r.enhanced ? ` ${r.enhanced}` : ''} ${r.lines.join(' ').trim()}`.trim();
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const DOTB = Buffer.from('.');

/** DATA content encoder: line ends to CRLF, dot-stuffing, the terminator. */
export class DotStuffer {
  private atLineStart = true;
  private pendingCR = false;

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const n = chunk.length;
    let i = 0;
    let nextCR = -2;
    let nextLF = -2;
    while (i < n) {
      if (this.pendingCR) {
        this.pendingCR = false;
        out.push(CRLF);
        this.atLineStart = true;
        if (chunk[i] === LF) {
          i++;
          continue;
        }
      }
      if (this.atLineStart && chunk[i] === DOT) out.push(DOTB);
      this.atLineStart = false;
      if (nextCR !== -1 && nextCR < i) nextCR = chunk.indexOf(CR, i);
      if (nextLF !== -1 && nextLF < i) nextLF = chunk.indexOf(LF, i);
      const e = nextCR < 0 ? (nextLF < 0 ? n : nextLF) : nextLF < 0 ? nextCR : Math.min(nextCR, nextLF);
      if (e > i) out.push(chunk.subarray(i, e));
      if (e === n) break;
      if (chunk[e] === LF) {
        out.push(CRLF);
        this.atLineStart = true;
        i = e + 1;
      } else if (e + 1 < n) {
        out.push(CRLF);
        this.atLineStart = true;
        i = chunk[e + 1] === LF ? e + 2 : e + 1;
      } else {
        this.pendingCR = true;
        i = e + 1;
      }
    }
    return out;
  }

  /** The end of the content and the terminating ".\r\n". */
  end(): Buffer[] {
    const out: Buffer[] = [];
    if (this.pendingCR || !this.atLineStart) out.push(CRLF);
    this.pendingCR = false;
    this.atLineStart = true;
    out.push(Buffer.from('.\r\n'));
    return out;
  }
}

/** Encode a whole message (tests). */
export function dotStuff(b: Buffer): Buffer {
  const s = new DotStuffer();
  return Buffer.concat([...s.push(b), ...s.end()]);
}

export type LmtpDestination = { readonly kind: 'unix'; readonly path: string } | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** "/path/to/socket", "host:port", "[::1]:24", "host" (port 24). */
export function parseDestination(d: string): LmtpDestination | { readonly error: string } {
  if (d.startsWith('/')) return { kind: 'unix', path: d };
  let host = d;
  let port = '24';
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(d);
  if (v6) {
    host = v6[1] as string;
    port = v6[2] ?? port;
  } else {
    const colon = d.lastIndexOf(':');
    if (colon >= 0 && d.indexOf(':') === colon) {
      host = d.slice(0, colon);
      port = d.slice(colon + 1);
    }
  }
  const p = Number(port);
  if (host === '' || !/^\d+$/.test(port) || p < 1 || p > 65535) return { error: `invalid lmtp destination "${d}"` };
  return { kind: 'tcp', host, port: p };
}
