/*
 * mailauth/dns.ts — the DNS lookups of SPF, DKIM, DMARC and ARC, through
 * Postern's resolver settings (`resolver "IP:PORT"` in smtpd.conf) and its
 * TTL-honouring cache (dns/ttl-cache.ts): answers are kept as long as their
 * TTL says (5 s to 1 h), "no such name / no data" (ENOTFOUND, ENODATA) by
 * the zone's SOA (RFC 2308), so that SPF checked at MAIL and again at the
 * end of the message, or a burst of mail from one domain, asks once, and a
 * changed record is seen when its TTL has run out. Failures (ETIMEOUT,
 * ESERVFAIL, ECONNREFUSED …) are not kept: they reach the checks, which
 * report temperror (RFC 7208 §2.6.6, RFC 6376 §6.1.2), never pass or fail.
 * The resolver also tells which cached answer is behind a lookup (entry),
 * so that SPF and DMARC results can be kept exactly as long as those
 * answers (answer-memo.ts).
 */
import type { TtlCache } from '../dns/ttl-cache.js';
import type { MailAuthResolver } from './lib.js';

export function cachingResolver(cache: Pick<TtlCache, 'resolve' | 'entry'>): MailAuthResolver {
  return Object.assign((name: string, rrtype: string) => cache.resolve(name, rrtype), { entry: (name: string, rrtype: string) => cache.entry(name, rrtype) });
}
