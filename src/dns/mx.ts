/*
 * mta/mx.ts — DNS for relaying: the mail exchangers of a domain and the
 * addresses of a host.
 *
 * RFC 5321 §5.1: MX records are tried in order of preference, hosts of
 * equal preference in random order; a domain without MX records (but
 * with the name itself existing) is its own "implicit MX" of preference 0,
 * reached through its A/AAAA records. RFC 7505: a single MX record whose
 * exchange is the root "." (the null MX) says the domain accepts no mail
 * at all. A null MX mixed with real ones is a misconfiguration; the real
 * ones are used.
 *
 * Lookups go through the resolver Postern is configured with
 * (dns/resolver.ts `raw`: the `resolver` servers of the configuration, or
 * the system's), so tests serve their own zones on loopback.
 *
 * Failures are classified, never swallowed: "nxdomain" (the name does not
 * exist: permanent), "error" (SERVFAIL, timeout, refused…: temporary).
 */
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import type { TtlCache } from './ttl-cache.js';

/** The part of node:dns/promises' Resolver that relaying uses. */
export interface MxDns {
  resolveMx(name: string): Promise<{ exchange: string; priority: number }[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

export interface MxHost {
  /** Host name, lower case, no trailing dot. */
  readonly name: string;
  readonly preference: number;
  /** The domain itself, used because it has no MX records. */
  readonly implicit?: boolean;
}

export type MxLookup =
  | { readonly kind: 'mx'; readonly hosts: readonly MxHost[] }
  | { readonly kind: 'null-mx' }
  | { readonly kind: 'nxdomain'; readonly message: string }
  | { readonly kind: 'error'; readonly message: string };

export type AddressLookup =
  | { readonly kind: 'ok'; readonly addresses: readonly string[] }
  | { readonly kind: 'not-found'; readonly message: string }
  | { readonly kind: 'error'; readonly message: string };

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME']);

function codeOf(e: unknown): string {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : 'EUNKNOWN';
}

/** The name as DNS wants it: A-labels, no trailing dot. */
export function dnsName(domain: string): string {
  const d = domain.replace(/\.$/, '');
  return /^[\x00-\x7f]*$/.test(d) ? d.toLowerCase() : domainToASCII(d) || d.toLowerCase();
}

function isNullExchange(exchange: string): boolean {
  return exchange === '' || exchange === '.';
}

/** Sort by preference and shuffle within each preference (rnd in [0, 1) for tests). */
export function orderMx(records: readonly MxHost[], rnd: () => number = Math.random): MxHost[] {
  const shuffled = [...records];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = shuffled[i] as MxHost;
    shuffled[i] = shuffled[j] as MxHost;
    shuffled[j] = t;
  }
  // Array.prototype.sort is stable: equal preferences keep their shuffled order.
  return shuffled.sort((a, b) => a.preference - b.preference);
}

/** The mail exchangers of a domain, in the order to try them. */
export async function lookupMx(dns: MxDns, domain: string, rnd: () => number = Math.random): Promise<MxLookup> {
  const name = dnsName(domain);
  let records: { exchange: string; priority: number }[];
  try {
    records = await dns.resolveMx(name);
  } catch (e) {
    const code = codeOf(e);
    if (code === 'ENOTFOUND') return { kind: 'nxdomain', message: `domain ${name} not found (NXDOMAIN)` };
    if (code === 'ENODATA') return { kind: 'mx', hosts: [{ name, preference: 0, implicit: true }] };
    return { kind: 'error', message: `MX lookup of ${name} failed: ${code}` };
  }
  if (records.length === 0) return { kind: 'mx', hosts: [{ name, preference: 0, implicit: true }] };
  const real = records.filter((r) => !isNullExchange(r.exchange));
  if (real.length === 0) return { kind: 'null-mx' };
  const hosts = real.map((r) => ({ name: r.exchange.replace(/\.$/, '').toLowerCase(), preference: r.priority }));
  return { kind: 'mx', hosts: orderMx(hosts, rnd) };
}

/** IPv4 and IPv6 addresses of a host (an IP address stands for itself). */
export async function lookupAddresses(dns: MxDns, host: string): Promise<AddressLookup> {
  if (isIP(host) !== 0) return { kind: 'ok', addresses: [host] };
  const name = dnsName(host);
  const [v4, v6] = await Promise.allSettled([dns.resolve4(name), dns.resolve6(name)]);
  const addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (addresses.length > 0) return { kind: 'ok', addresses };
  const codes = [v4, v6].map((r) => (r.status === 'rejected' ? codeOf(r.reason) : 'ENODATA'));
  if (codes.every((c) => NOT_FOUND.has(c))) {
    return { kind: 'not-found', message: `host ${name} has no address (${codes.includes('ENOTFOUND') ? 'NXDOMAIN' : 'no A or AAAA record'})` };
  }
  return { kind: 'error', message: `address lookup of ${name} failed: ${codes.find((c) => !NOT_FOUND.has(c))}` };
}

export type NullMxCheck = 'null-mx' | 'not-null' | 'error';

/**
 * For the SMTP server at MAIL FROM (RFC 7505 §4.2: mail from a domain that
 * receives none cannot be answered, refuse it with 550 5.7.27). A failed
 * lookup is 'error', never 'not-null' read as a verdict; a domain that does
 * not exist is 'not-null' here (other checks judge unknown domains).
 */
export async function senderDomainHasNullMx(dns: MxDns & Partial<Pick<TtlCache, 'answer'>>, domain: string): Promise<NullMxCheck> {
  if (domain === '' || domain.startsWith('[')) return 'not-null';
  const name = dnsName(domain);
  // The TTL cache answers with a value (a shared frozen entry when cached): no Error per message for the common "no MX" hit.
  if (dns.answer !== undefined) {
    const a = await dns.answer(name, 'MX');
    return 'code' in a ? (NOT_FOUND.has(a.code) ? 'not-null' : 'error') : nullMxVerdict(a.records as readonly { exchange: string }[]);
  }
  try {
    return nullMxVerdict(await dns.resolveMx(name));
  } catch (e) {
    return NOT_FOUND.has(codeOf(e)) ? 'not-null' : 'error';
  }
}

function nullMxVerdict(records: readonly { exchange: string }[]): NullMxCheck {
  return records.length > 0 && records.every((r) => isNullExchange(r.exchange)) ? 'null-mx' : 'not-null';
}
