/*
 * mailauth/dns.ts — the DNS lookups of SPF, DKIM, DMARC and ARC, through
 * Postern's resolver (dns/resolver.ts: `resolver "IP:PORT"` in smtpd.conf).
 *
 * Answers and "no such name / no data" (ENOTFOUND, ENODATA) are kept for a
 * minute, so that SPF checked at MAIL and again at the end of the message,
 * or a burst of mail from one domain, asks once. Failures (ETIMEOUT,
 * ESERVFAIL, ECONNREFUSED …) are not kept: they reach the checks, which
 * report temperror (RFC 7208 §2.6.6, RFC 6376 §6.1.2), never pass or fail.
 */
import type { Resolver as DnsResolver } from 'node:dns/promises';
import type { MailAuthResolver } from './lib.js';

const TTL_MS = 60_000;
const MAX_ENTRIES = 10_000;
const NEGATIVE = new Set(['ENOTFOUND', 'ENODATA']);

type Entry = { readonly records: unknown[]; readonly expires: number } | { readonly code: string; readonly message: string; readonly expires: number };

export function cachingResolver(dns: Pick<DnsResolver, 'resolve'>, now: () => number = Date.now): MailAuthResolver {
  const cache = new Map<string, Entry>();
  const put = (key: string, e: Entry): void => {
    if (cache.size >= MAX_ENTRIES) cache.clear();
    cache.set(key, e);
  };
  return async (name, rrtype) => {
    const key = `${rrtype} ${name.toLowerCase()}`;
    const hit = cache.get(key);
    if (hit !== undefined && hit.expires > now()) {
      if ('records' in hit) return hit.records;
      throw dnsError(hit.code, hit.message);
    }
    try {
      const records = (await dns.resolve(name, rrtype as 'TXT')) as unknown[];
      put(key, { records, expires: now() + TTL_MS });
      return records;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'ESERVFAIL';
      if (NEGATIVE.has(code)) put(key, { code, message: (e as Error).message, expires: now() + TTL_MS });
      throw e;
    }
  };
}

/** A cached negative answer again, as Node's error; without a stack trace (its capture was most of a cache hit's cost, and nothing reads it). */
function dnsError(code: string, message: string): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const e = new Error(message) as NodeJS.ErrnoException;
  Error.stackTraceLimit = limit;
  e.code = code;
  return e;
}
