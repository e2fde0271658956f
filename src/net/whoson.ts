/*
 * net/whoson.ts — a WHOSON client: is this (dynamically allocated) address
 * currently logged in by a known user, and who? (The protocol of the
 * whoson project, which ZMailer's `smtpserver -w` asks; POP-before-SMTP
 * servers and dial-up concentrators LOGIN addresses into it.)
 *
 *   query:   "QUERY <address>\r\n\r\n"           to the whoson server (TCP 9876)
 *   answer:  "+<user data>\r\n\r\n"              logged in
 *         or "-<text>\r\n\r\n"                   not logged in
 *         or "*<text>\r\n\r\n"                   the server's error
 *
 * parseWhosonReply() is pure; whosonQuery() makes one connection, waits at
 * most `timeoutMs` (default 2 s), reads at most 1000 bytes and never
 * throws: a failure is "no answer" and trusts no one. The user data is cut
 * at 64 characters of printable ASCII, so it can go into a Received:
 * header (rcvd-whoson) or a log line as it is.
 *
 * The server: $WHOSON_SERVER ("HOST[:PORT]"), else 127.0.0.1:9876, the
 * protocol's well-known port.
 */
import { connect } from 'node:net';

export type WhosonAnswer = { readonly kind: 'user'; readonly user: string } | { readonly kind: 'none'; readonly why: string } | { readonly kind: 'error'; readonly error: string };

export interface WhosonServer {
  readonly host: string;
  readonly port: number;
}

export const WHOSON_PORT = 9876;

function clean(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '').trim().slice(0, 64);
}

/** The reply's first line: "+user", "-text" or "*text". */
export function parseWhosonReply(text: string): WhosonAnswer {
  const line = text.split(/\r?\n/)[0] ?? '';
  const body = clean(line.slice(1));
  switch (line[0]) {
    case '+':
      return body === '' ? { kind: 'none', why: 'empty user data' } : { kind: 'user', user: body };
    case '-':
      return { kind: 'none', why: body === '' ? 'not logged in' : body };
    case '*':
      return { kind: 'error', error: body === '' ? 'server error' : body };
    default:
      return { kind: 'none', why: 'malformed reply' };
  }
}

/** "HOST[:PORT]" or "[IPv6]:PORT"; undefined when malformed. */
export function parseWhosonServer(spec: string): WhosonServer | undefined {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec) ?? /^([^:\s]+)(?::(\d+))?$/.exec(spec);
  if (!m) return undefined;
  const port = m[2] === undefined ? WHOSON_PORT : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host: m[1] as string, port };
}

/** The server the environment names, else the well-known one on this host. */
export function whosonServerFromEnv(env: NodeJS.ProcessEnv = process.env): WhosonServer {
  const spec = env['WHOSON_SERVER'];
  return (spec !== undefined && parseWhosonServer(spec)) || { host: '127.0.0.1', port: WHOSON_PORT };
}

/** Ask the whoson server about `address`; never rejects. */
export function whosonQuery(q: { readonly address: string; readonly server: WhosonServer; readonly timeoutMs?: number }): Promise<WhosonAnswer> {
  const address = q.address.replace(/^::ffff:/, '');
  return new Promise((resolve) => {
    let buf = '';
    let settled = false;
    const finish = (r: WhosonAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const sock = connect({ host: q.server.host, port: q.server.port });
    const timer = setTimeout(() => finish({ kind: 'none', why: 'timed out' }), q.timeoutMs ?? 2_000);
    sock.setEncoding('latin1');
    sock.on('connect', () => sock.write(`QUERY ${address}\r\n\r\n`));
    sock.on('data', (d: string) => {
      buf += d;
      if (/\r?\n/.test(buf)) finish(parseWhosonReply(buf));
      else if (buf.length > 1000) finish({ kind: 'none', why: 'reply too long' });
    });
    sock.on('error', (e) => finish({ kind: 'none', why: e.message }));
    sock.on('close', () => finish(buf === '' ? { kind: 'none', why: 'no reply' } : parseWhosonReply(buf)));
  });
}
