/*
 * policy/obtuse/ident.ts — the rules file's ident user (user@host sources,
 * USER@ addresses, %U) for a session: an RFC 1413 query (net/ident.ts) to
 * the client, naming the connection by the client's port and the port of
 * the listener it reached, sent from the listener's address when it is
 * not a wildcard. The phase asks at most once per recipient, and only
 * when a rule or a message needs it; no answer in time is "unknown".
 */
import { identLookup, identUser } from '../../net/ident.js';
import type { SessionFacts } from '../policy.js';

export interface SessionIdentOptions {
  /** identd's port on clients; 113. */
  readonly port?: number;
  /** Default 3000 ms: short, since most hosts run no identd any more. */
  readonly timeoutMs?: number;
}

/** The ident function the rules-file phase takes, for sessions of this server. */
export function sessionIdent(o: SessionIdentOptions = {}): (s: SessionFacts) => Promise<string | undefined> {
  return async (s) => {
    const m = /^\[?(.*?)\]?:(\d+)$/.exec(s.listener);
    if (m === null || s.fromSocket) return undefined;
    const local = m[1] ?? '';
    const r = await identLookup({
      remoteAddress: s.clientAddress,
      remotePort: s.clientPort,
      localPort: Number(m[2]),
      ...(local !== '' && local !== '0.0.0.0' && local !== '::' ? { localAddress: local } : {}),
      identPort: o.port ?? 113,
      timeoutMs: o.timeoutMs ?? 3000,
    });
    return identUser(r);
  };
}
