/*
 * net/ident.ts — an RFC 1413 (ident) client: who, on the client's machine,
 * owns the TCP connection that reached us?
 *
 * The query goes to port 113 of the client's address and names the
 * connection by its two ports, the client's first ("<port-on-server> ,
 * <port-on-client>", §6: the identd host is the "server" of the query):
 *
 *   → 6191, 25\r\n
 *   ← 6191 , 25 : USERID : UNIX : joe\r\n        (or … : ERROR : NO-USER)
 *
 * queryLine() and parseReply() are pure; identLookup() is their socket
 * adapter, with one deadline for connect, query and answer (Obtuse waited
 * up to 10 s; the default here is 3 s). Every failure is "no answer"
 * (undefined): ident only ever narrows what a rules file grants.
 */
import { connect } from 'node:net';

/** The query for a connection from `clientPort` (the identd host's) to our `localPort`. */
export function queryLine(clientPort: number, localPort: number): string {
  return `${clientPort}, ${localPort}\r\n`;
}

const MAX_LINE = 1000;

/**
 * The user of a reply line (without its CRLF), or undefined for ERROR,
 * a reply about other ports, or anything malformed. The user id is the
 * text after the third colon (§6: it may itself contain colons), trimmed,
 * stripped of control characters, at most 512 octets.
 */
export function parseReply(line: string, clientPort: number, localPort: number): string | undefined {
  const parts = line.split(':');
  if (parts.length < 4) return undefined;
  const ports = (parts[0] ?? '').split(',').map((p) => p.trim());
  if (ports.length !== 2 || Number(ports[0]) !== clientPort || Number(ports[1]) !== localPort) return undefined;
  if ((parts[1] ?? '').trim().toUpperCase() !== 'USERID') return undefined;
  if ((parts[2] ?? '').trim() === '') return undefined;
  // eslint-disable-next-line no-control-regex
  const user = parts.slice(3).join(':').replace(/[\x00-\x1f\x7f]/g, '').trim();
  return user === '' || user.length > 512 ? undefined : user;
}

export interface IdentQuery {
  /** The client's address (where identd listens) and its port. */
  readonly address: string;
  readonly clientPort: number;
  /** Our port the client connected to (25). */
  readonly localPort: number;
  /** Our address the client reached, to send the query from (so the identd sees the same pair of hosts). */
  readonly localAddress?: string;
  /** identd's port: 113 (tests use another). */
  readonly port?: number;
  /** One deadline for the whole exchange; default 3000 ms. */
  readonly timeoutMs?: number;
}

/** Ask the client's identd; undefined when it does not answer with a user in time. */
export function identLookup(q: IdentQuery): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: q.address, port: q.port ?? 113, ...(q.localAddress ? { localAddress: q.localAddress } : {}) });
    let buf = '';
    let done = false;
    const finish = (user: string | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(user);
    };
    const timer = setTimeout(() => finish(undefined), q.timeoutMs ?? 3000);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(queryLine(q.clientPort, q.localPort)));
    socket.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(parseReply(buf.slice(0, nl).replace(/\r$/, ''), q.clientPort, q.localPort));
      else if (buf.length > MAX_LINE) finish(undefined);
    });
    socket.on('end', () => finish(buf.length > 0 ? parseReply(buf.replace(/\r$/, ''), q.clientPort, q.localPort) : undefined));
    socket.on('error', () => finish(undefined));
  });
}
