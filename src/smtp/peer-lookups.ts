/*
 * smtp/peer-lookups.ts — what is asked about a client when it connects,
 * besides its reverse DNS: its identd (RFC 1413, smtpserver -a) and the
 * whoson server (smtpserver -w). Both start at accept and run while the
 * session greets; each answer is logged once and kept for Received:
 * (rcvd-ident, rcvd-whoson) and for policy (policydb's trust-whoson).
 * One place for the daemon's listener and for a session on stdin/stdout
 * (inetd, -n).
 */
import { identLookup } from '../net/ident.js';
import { whosonQuery, type WhosonServer } from '../net/whoson.js';
import type { MailLog } from '../log/maillog.js';

export interface PeerLookupOptions {
  /** Ask the client's identd at accept. */
  readonly ident?: { readonly timeoutMs: number; readonly port?: number };
  /** Ask the whoson server whether the client's address is logged in. */
  readonly whoson?: { readonly server: WhosonServer; readonly timeoutMs: number };
}

export interface PeerLookups {
  readonly ident?: Promise<string | undefined>;
  readonly whoson?: Promise<string | undefined>;
}

export interface PeerEnds {
  readonly session: string;
  readonly client: { readonly address: string; readonly port: number };
  readonly localAddress?: string;
  readonly localPort?: number;
}

export function startPeerLookups(o: PeerLookupOptions, ends: PeerEnds, log: MailLog): PeerLookups {
  const { session, client } = ends;
  const ident =
    o.ident && ends.localPort !== undefined
      ? identLookup({ remoteAddress: client.address, remotePort: client.port, ...(ends.localAddress ? { localAddress: ends.localAddress } : {}), localPort: ends.localPort, timeoutMs: o.ident.timeoutMs, ...(o.ident.port ? { identPort: o.ident.port } : {}) }).then((r) => {
          log.event('smtp', 'ident', { session, address: client.address, ...(r.kind === 'user' ? { user: r.user, opsys: r.opsys } : r.kind === 'error' ? { error: r.error } : { result: 'none', why: r.why }) });
          return r.kind === 'user' ? r.user : undefined;
        })
      : undefined;
  const whoson = o.whoson
    ? whosonQuery({ address: client.address, server: o.whoson.server, timeoutMs: o.whoson.timeoutMs }).then((r) => {
        log.event('smtp', 'whoson', { session, address: client.address, ...(r.kind === 'user' ? { user: r.user } : r.kind === 'error' ? { error: r.error } : { result: 'none', why: r.why }) });
        return r.kind === 'user' ? r.user : undefined;
      })
    : undefined;
  return { ...(ident ? { ident } : {}), ...(whoson ? { whoson } : {}) };
}
