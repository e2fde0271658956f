/*
 * transport-security/dnssec-client.ts — DNS queries that tell whether the
 * answer was DNSSEC-validated: the AD ("authentic data") bit of the
 * response of a validating resolver (RFC 4035 §3.2.3, RFC 6840 §5.7).
 *
 * The query goes through dns/packet-client.ts (UDP, TCP on truncation)
 * with RD and AD set and an EDNS0 OPT with DO. The AD bit is believed only
 * because the administrator marked this resolver trusted (`mta dane
 * resolver … trusted`: a validating resolver on this host or reached over
 * a path no one else can write to); the caller does not ask otherwise.
 *
 * Results are values: { rcode, secure, answers } or an error with the
 * reason (timeout, malformed answer, unreachable resolver).
 */
import type * as packet from 'dns-packet';
import { queryServer, type DnsServer } from '../dns/packet-client.js';

export { parseServer } from '../dns/packet-client.js';
export type DnssecServer = DnsServer;

export type DnssecAnswer =
  | { readonly kind: 'answer'; readonly rcode: string; readonly secure: boolean; readonly answers: readonly packet.Answer[] }
  | { readonly kind: 'error'; readonly reason: string };

export class DnssecClient {
  constructor(
    private readonly server: DnssecServer,
    private readonly timeoutMs: number,
  ) {}

  async query(name: string, type: packet.RecordType): Promise<DnssecAnswer> {
    const r = await queryServer(this.server, this.timeoutMs, name, type, true);
    return r.kind === 'error' ? r : { kind: 'answer', rcode: r.rcode, secure: r.ad, answers: r.answers };
  }
}
