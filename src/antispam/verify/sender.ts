/*
 * antispam/verify/sender.ts — `check sender-domain`: the envelope sender's
 * domain must exist for mail (an MX, or else an A or AAAA record: RFC 5321
 * §5.1's implicit MX). NXDOMAIN or no such record refuses (Postfix's
 * reject_unknown_sender_domain: 450/550 4.1.8/5.1.8); a lookup that fails
 * otherwise passes, with `failure` saying why. The null MX is refused
 * earlier (policy/null-mx.ts).
 *
 * SenderDomainCache keeps answers (found or not) for CACHE_MS, so a busy
 * sender domain costs a lookup every few minutes, not one per message;
 * failed lookups are not kept.
 */
import type { AddressDns } from './helo.js';

export interface SenderDns extends AddressDns {
  resolveMx(name: string): Promise<{ exchange: string; priority: number }[]>;
}

const NO_DATA = new Set(['ENOTFOUND', 'ENODATA']);

export async function senderDomainExists(dns: SenderDns, domain: string): Promise<{ exists: boolean; failure?: string }> {
  let failure: string | undefined;
  for (const q of [() => dns.resolveMx(domain), () => dns.resolve4(domain), () => dns.resolve6(domain)]) {
    try {
      if ((await q()).length > 0) return { exists: true };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (code === 'ENOTFOUND') return { exists: false };
      if (!NO_DATA.has(code)) failure ??= `${domain}: ${(e as Error).message}`;
    }
  }
  return failure !== undefined ? { exists: true, failure } : { exists: false };
}

const CACHE_MS = 10 * 60_000;
const CACHE_MAX = 50_000;

export class SenderDomainCache {
  private readonly cache = new Map<string, { readonly exists: boolean; readonly until: number }>();

  constructor(
    private readonly dns: SenderDns,
    private readonly now: () => number = Date.now,
  ) {}

  async exists(domain: string): Promise<{ exists: boolean; failure?: string }> {
    const hit = this.cache.get(domain);
    if (hit && hit.until > this.now()) return { exists: hit.exists };
    const r = await senderDomainExists(this.dns, domain);
    if (r.failure === undefined) {
      if (this.cache.size >= CACHE_MAX) this.cache.clear();
      this.cache.set(domain, { exists: r.exists, until: this.now() + CACHE_MS });
    }
    return r;
  }
}
