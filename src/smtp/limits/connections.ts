/*
 * policy/limits/connections.ts — simultaneous connections, per client
 * address and in total.
 *
 * ZMailer's smtpserver (seed 000, smtpserver.c) counts the new connection
 * itself, then:
 *
 *   total > max + 100               close without a word
 *   from this address > 4 × limit   close without a word
 *   total > max                     "450 Too many simultaneous connections" and close
 *   from this address > limit       the same, naming the address
 *   otherwise                       accept
 *
 * So with a limit of 10 the 11th simultaneous connection from one address
 * is refused, and the 41st is dropped silently. Refused connections stay
 * counted until they are released (the reply is still being written, and
 * a client hammering the port keeps its count high); silently dropped ones
 * are never counted. Postern's smtpd.conf defaults answer 421 4.7.0 as
 * Postfix does; ZMailer files ask for 450.
 *
 * Pure: no sockets, no clock. open() returns a lease; the connection calls
 * release() once when it closes (a second call does nothing).
 */
import ipaddr from 'ipaddr.js';
import { closing, reply, type Reply } from '../../mail/reply.js';
import { normalizeIp } from '../../net/ip.js';
import { LIMIT_DEFAULTS, ConnectionLimits, DEFAULT_CONNECTION_LIMITS } from '../../config/limits.js';

export type ConnectionDecision =
  | { readonly kind: 'accept' }
  /** Write this (closing) reply, then close. */
  | { readonly kind: 'reply'; readonly reply: Reply; readonly close: true; readonly reason: string }
  /** Close at once without writing anything. */
  | { readonly kind: 'drop'; readonly reason: string };

export interface ConnectionLease {
  readonly decision: ConnectionDecision;
  /** The client address as counted (canonical form). */
  readonly client: string;
  /** Call when the connection closes; only the first call counts. */
  release(): void;
}

export class ConnectionLimiter {
  private readonly perClient = new Map<string, number>();
  private all = 0;

  constructor(private readonly limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS) {
    for (const k of ['maxPerClient', 'maxTotal', 'silentDropFactor'] as const) {
      if (!Number.isInteger(limits[k]) || limits[k] < 0) throw new RangeError(`connection limit ${k} must be a whole number ≥ 0`);
    }
  }

  /** A new connection from `ip`: decide, and count it unless it is dropped. */
  open(ip: string): ConnectionLease {
    const client = canonical(ip);
    const l = this.limits;
    const total = this.all + 1;
    // In a cluster, the other nodes' connections from this address count too (as last shared, about a second old).
    const same = (this.perClient.get(client) ?? 0) + 1 + (l.elsewhere?.(client) ?? 0);
    const perClientApplies = l.maxPerClient > 0 && !(l.exempt?.(client) ?? false);

    if (l.maxTotal > 0 && l.silentDropExtra >= 0 && total > l.maxTotal + l.silentDropExtra) {
      return this.lease(client, { kind: 'drop', reason: `${total} connections in total, limit ${l.maxTotal} + ${l.silentDropExtra}` }, false);
    }
    if (perClientApplies && l.silentDropFactor > 0 && same > l.silentDropFactor * l.maxPerClient) {
      return this.lease(client, { kind: 'drop', reason: `${same} connections from ${client}, ${l.silentDropFactor} × limit ${l.maxPerClient}` }, false);
    }
    if (l.maxTotal > 0 && total > l.maxTotal) {
      const r = this.refusal(`Too many simultaneous connections to this server (${total} max ${l.maxTotal})`, 'Error: too many connections');
      return this.lease(client, { kind: 'reply', reply: r, close: true, reason: `${total} connections in total, limit ${l.maxTotal}` }, true);
    }
    if (perClientApplies && same > l.maxPerClient && same > 1) {
      const r = this.refusal(`Too many simultaneous connections from same IP address (${same} max ${l.maxPerClient})`, `Error: too many connections from ${client}`);
      return this.lease(client, { kind: 'reply', reply: r, close: true, reason: `${same} connections from ${client}, limit ${l.maxPerClient}` }, true);
    }
    return this.lease(client, { kind: 'accept' }, true);
  }

  /** Connections counted now per client address (what a cluster node shares). */
  clients(): ReadonlyMap<string, number> {
    return this.perClient;
  }

  /** Connections counted now, from one address or in total. */
  count(ip?: string): number {
    return ip === undefined ? this.all : (this.perClient.get(canonical(ip)) ?? 0);
  }

  private refusal(zmailerText: string, postfixText: string): Reply {
    return this.limits.refusalCode === 450
      ? closing(reply(450, '4.7.0', zmailerText, 'Come again later'))
      : closing(reply(421, '4.7.0', postfixText));
  }

  private lease(client: string, decision: ConnectionDecision, counted: boolean): ConnectionLease {
    if (counted) {
      this.all++;
      this.perClient.set(client, (this.perClient.get(client) ?? 0) + 1);
    }
    let released = !counted;
    return {
      decision,
      client,
      release: () => {
        if (released) return;
        released = true;
        this.all--;
        const n = (this.perClient.get(client) ?? 1) - 1;
        if (n <= 0) this.perClient.delete(client);
        else this.perClient.set(client, n);
      },
    };
  }
}

function canonical(ip: string): string {
  try {
    return normalizeIp(ipaddr.parse(ip.replace(/%.*$/, ''))).toString();
  } catch {
    return ip.toLowerCase();
  }
}
