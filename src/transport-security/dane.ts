/*
 * transport-security/dane.ts — the DANE state of one MX host (RFC 7672
 * §2.2), looked up through the trusted validating resolver
 * (dnssec-client.ts):
 *
 *   the host's address records are not secure  → none (no DANE, §2.2.2)
 *   TLSA _PORT._tcp.HOST secure, usable records → usable: authenticated
 *                                                 TLS required
 *   secure, none usable                         → unusable: TLS required,
 *                                                 not authenticated (§2.2)
 *   insecure, NXDOMAIN or NODATA                → none
 *   SERVFAIL, timeout, malformed                → error: this host is not
 *                                                 used now (§2.2: a failed
 *                                                 lookup is not "no TLSA")
 */
import type { Answer } from 'dns-packet';
import type { DnssecClient } from './dnssec-client.js';
import { unusable, type TlsaRecord } from './tlsa.js';

export type DaneState =
  | { readonly kind: 'usable'; readonly records: readonly TlsaRecord[] }
  | { readonly kind: 'unusable'; readonly records: readonly TlsaRecord[]; readonly reason: string }
  | { readonly kind: 'none'; readonly reason: string }
  | { readonly kind: 'error'; readonly reason: string };

export async function daneState(client: DnssecClient, host: string, port: number, family: 'A' | 'AAAA' = 'A'): Promise<DaneState> {
  const addr = await client.query(host, family);
  if (addr.kind === 'error') return { kind: 'error', reason: addr.reason };
  if (addr.rcode !== 'NOERROR' && addr.rcode !== 'NXDOMAIN') return { kind: 'error', reason: `${family} ${host}: ${addr.rcode}` };
  if (!addr.secure) return { kind: 'none', reason: `the address records of ${host} are not DNSSEC-signed` };
  const name = `_${port}._tcp.${host}`;
  const r = await client.query(name, 'TLSA');
  if (r.kind === 'error') return { kind: 'error', reason: r.reason };
  if (r.rcode === 'NXDOMAIN') return { kind: 'none', reason: `no TLSA record at ${name}` };
  if (r.rcode !== 'NOERROR') return { kind: 'error', reason: `TLSA ${name}: ${r.rcode} (a DNSSEC validation failure looks like this)` };
  if (!r.secure) return { kind: 'none', reason: `the TLSA records of ${name} are not DNSSEC-signed` };
  const records = r.answers.filter((a): a is Extract<Answer, { type: 'TLSA' }> => a.type === 'TLSA').map((a) => ({ usage: a.data.usage, selector: a.data.selector, matchingType: a.data.matchingType, data: Buffer.from(a.data.certificate) }));
  if (records.length === 0) return { kind: 'none', reason: `no TLSA record at ${name}` };
  const usable = records.filter((x) => unusable(x) === undefined);
  if (usable.length === 0) return { kind: 'unusable', records, reason: records.map((x) => unusable(x)).join('; ') };
  return { kind: 'usable', records: usable };
}
