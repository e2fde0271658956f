/*
 * net/ident.ts — an RFC 1413 (ident) client: who, on the client's machine,
 * owns the TCP connection it made to us.
 *
 *   query:   "<port on their side> , <port on our side>\r\n"  to their port 113
 *   answer:  "<ports> : USERID : <opsys>[,<charset>] : <user id>"
 *         or "<ports> : ERROR : <NO-USER | HIDDEN-USER | UNKNOWN-ERROR | …>"
 *
 * parseIdentReply() is pure; identLookup() makes one connection from our
 * address of the session (so the answer is about the right connection),
 * waits at most `timeoutMs` (default 5 s: short, because the client is
 * waiting and most hosts run no identd), reads at most 1000 bytes, and
 * never throws: any failure is "no answer". The user id comes from the
 * client's own machine and proves nothing; it is for logs, Received:
 * (ZMailer's rcvd-ident) and Obtuse's user@host patterns only. The answer
 * is cut at 64 characters and stripped of everything but printable ASCII,
 * so it can go into a header or a log line as it is.
 */
import { connect } from 'node:net';

export type IdentResult = { readonly kind: 'user'; readonly user: string; readonly opsys: string } | { readonly kind: 'error'; readonly error: string } | { readonly kind: 'none'; readonly why: string };

export interface IdentQuery {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress?: string;
  readonly localPort: number;
  readonly timeoutMs?: number;
  /** The ident port (113; tests use another). */
  readonly identPort?: number;
}

/** Printable ASCII only, at most 64 characters. */
function clean(s: string): string {
  return s.replace(/[^\x21-\x7e]/g, '').slice(0, 64);
}

/** One reply line for the pair of ports we asked about. */
export function parseIdentReply(line: string, remotePort: number, localPort: number): IdentResult {
  const parts = line.replace(/\r?\n$/, '').split(':');
  if (parts.length < 3) return { kind: 'none', why: 'malformed reply' };
  const ports = (parts[0] ?? '').split(',').map((p) => Number(p.trim()));
  if (ports[0] !== remotePort || ports[1] !== localPort) return { kind: 'none', why: 'reply for other ports' };
  const type = (parts[1] ?? '').trim().toUpperCase();
  if (type === 'ERROR') return { kind: 'error', error: clean((parts[2] ?? '').trim()) };
  if (type !== 'USERID' || parts.length < 4) return { kind: 'none', why: 'malformed reply' };
  const opsys = clean((parts[2] ?? '').split(',')[0]?.trim() ?? '');
  // The user id is the rest of the line, colons included (RFC 1413: it may contain them).
  const user = clean(parts.slice(3).join(':').trim());
  return user === '' ? { kind: 'none', why: 'empty user id' } : { kind: 'user', user, opsys };
}

/** Ask the client's identd; never rejects. */
export function identLookup(q: IdentQuery): Promise<IdentResult> {
  return new Promise((resolve) => {
    let buf = '';
    let settled = false;
    const finish = (r: IdentResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const sock = connect({ host: q.remoteAddress.replace(/^::ffff:/, ''), port: q.identPort ?? 113, ...(q.localAddress ? { localAddress: q.localAddress.replace(/^::ffff:/, '') } : {}) });
    const timer = setTimeout(() => finish({ kind: 'none', why: 'timed out' }), q.timeoutMs ?? 5_000);
    sock.setEncoding('latin1');
    sock.on('connect', () => sock.write(`${q.remotePort} , ${q.localPort}\r\n`));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(parseIdentReply(buf.slice(0, nl), q.remotePort, q.localPort));
      else if (buf.length > 1000) finish({ kind: 'none', why: 'reply too long' });
    });
    sock.on('error', (e) => finish({ kind: 'none', why: e.message }));
    sock.on('close', () => finish(buf === '' ? { kind: 'none', why: 'no reply' } : parseIdentReply(buf, q.remotePort, q.localPort)));
  });
}

/** The user id of an answer, or undefined (an error, no answer). */
export function identUser(r: IdentResult): string | undefined {
  return r.kind === 'user' ? r.user : undefined;
}
