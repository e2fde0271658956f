/*
 * antispam/verify/sender.ts — `check sender-domain`: the envelope sender's
 * domain must exist for mail (an MX, or else an A or AAAA record: RFC 5321
 * §5.1's implicit MX). NXDOMAIN or no such record refuses (Postfix's
 * reject_unknown_sender_domain: 450/550 4.1.8/5.1.8); a lookup that fails
 * otherwise passes, with `failure` saying why. The null MX is refused
 * earlier (policy/null-mx.ts).
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
