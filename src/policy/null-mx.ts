/*
 * policy/null-mx.ts — refuse mail from a domain that says it sends none
 * (RFC 7505 §4.2: a "null MX", `MX 0 .`): replies to it could never be
 * delivered, so accepting it only makes backscatter. 550 5.7.27 at MAIL.
 *
 * Our own domains are not looked up. Given the daemon's TTL-honouring
 * lookups (dns/ttl-cache.ts) the answers are kept there, by the records'
 * TTLs (cacheMs 0 here); given a plain resolver, this phase keeps them 10
 * minutes (negative ones too), so a busy sender domain costs one query,
 * not one per message. A lookup that fails or is slow is not a reason to
 * refuse (the check is advisory): it passes, and is not cached.
 */
import type { PolicyPhase } from './policy.js';
import { PASS, reject, type Verdict } from './verdict.js';
import { reply } from '../mail/reply.js';
import { senderDomainHasNullMx } from '../dns/mx.js';
import type { MxDns } from '../dns/mx.js';
import type { LocalNames } from '../rules/localnames.js';

/** Answers are kept this long (positive and negative), per sender domain; failed lookups are not kept. */
const CACHE_MS = 10 * 60_000;
const CACHE_MAX = 50_000;

export function nullMxSenderPhase(dns: MxDns, local: LocalNames, timeoutMs = 3000, now: () => number = Date.now, cacheMs = CACHE_MS): PolicyPhase {
  const cache = new Map<string, { readonly nullMx: boolean; readonly until: number }>();
  const check = async (domain: string): Promise<boolean> => {
    const hit = cache.get(domain);
    if (hit && hit.until > now()) return hit.nullMx;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'error'>((res) => (timer = setTimeout(() => res('error'), timeoutMs)));
    // Cleared as soon as the answer is in: with cacheMs 0 every MAIL comes here, mostly for a cached answer.
    const r = await Promise.race([senderDomainHasNullMx(dns, domain), late]).finally(() => clearTimeout(timer));
    if (r === 'error') return false;
    if (cacheMs <= 0) return r === 'null-mx';
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(domain, { nullMx: r === 'null-mx', until: now() + cacheMs });
    return r === 'null-mx';
  };
  return {
    name: 'null-mx',
    async mail(_s, tx): Promise<Verdict> {
      const domain = tx.sender?.domain ?? '';
      if (domain === '' || domain.startsWith('[') || local.isLocalDomain(domain)) return PASS;
      if (!(await check(domain))) return PASS;
      return reject(reply(550, '5.7.27', 'Sender address has null MX'), `sender domain ${domain} has a null MX (RFC 7505)`);
    },
  };
}
