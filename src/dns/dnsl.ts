/*
 * dns/dnsl.ts — the one DNS-list (DNSBL/DNSWL/RHSBL) lookup every check
 * shares: smtpd.conf's `dnsbl`/`rhsbl` (antispam/dnsbl/), the Obtuse rules
 * file's RBL.zone pattern (policy/obtuse/match.ts) and ZMailer policydb's
 * test-dns-rbl (policy/zmailer/policydb.ts).
 *
 * RFC 5782 §2.1: an IPv4 address 1.2.3.4 is looked up as 4.3.2.1.ZONE, an
 * IPv6 address as its 32 nibbles reversed; §2.2: a domain (right-hand-side
 * list) as DOMAIN.ZONE. A listing is an A record (conventionally
 * 127.0.0.x); NXDOMAIN or no A record means "not listed".
 *
 * dnslQuery() answers the A records ([] when not listed) and throws
 * DnslFailure for anything else (timeout, SERVFAIL, refused): the caller
 * decides what a failed lookup means (the antispam checks pass, the rules
 * file answers 451).
 */
import ipaddr from 'ipaddr.js';
import { normalizeIp } from '../net/ip.js';

/** The part of a node:dns/promises Resolver a list lookup needs. */
export interface DnslResolver {
  resolve4(name: string): Promise<string[]>;
}

export class DnslFailure extends Error {}

/** "1.2.3.4" → "4.3.2.1"; IPv6 → its 32 nibbles reversed (RFC 5782 §2.4); undefined for a non-address. */
export function reversedIp(ip: string): string | undefined {
  let a: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    a = normalizeIp(ipaddr.parse(ip.replace(/^\[|\]$/g, '').replace(/%.*$/, '')));
  } catch {
    return undefined;
  }
  if (a.kind() === 'ipv4') return (a as ipaddr.IPv4).octets.slice().reverse().join('.');
  const hex = (a as ipaddr.IPv6).toNormalizedString().split(':').map((g) => g.padStart(4, '0')).join('');
  return [...hex].reverse().join('.');
}

const NOT_LISTED = new Set(['ENOTFOUND', 'ENODATA']);

function errCode(e: unknown): string {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
}

/** The A records of KEY.ZONE (key: reversedIp() or a domain); [] when not listed; throws DnslFailure when the lookup fails. */
export async function dnslQuery(dns: DnslResolver, key: string, zone: string): Promise<readonly string[]> {
  const name = `${key}.${zone.replace(/\.$/, '')}`;
  try {
    return await dns.resolve4(name);
  } catch (e) {
    if (NOT_LISTED.has(errCode(e))) return [];
    throw new DnslFailure(`${name}: ${(e as Error).message}`);
  }
}

/** Is the client address listed in ZONE? (the plain RBL question of the rules file and policydb). */
export async function ipListed(dns: DnslResolver, ip: string, zone: string): Promise<boolean> {
  const key = reversedIp(ip);
  if (key === undefined) return false;
  return (await dnslQuery(dns, key, zone)).length > 0;
}
