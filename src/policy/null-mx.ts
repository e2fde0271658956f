/*
 * policy/null-mx.ts — refuse mail from a domain that says it sends none
 * (RFC 7505 §4.2: a "null MX", `MX 0 .`): replies to it could never be
 * delivered, so accepting it only makes backscatter. 550 5.7.27 at MAIL.
 *
 * Our own domains are not looked up. A lookup that fails or is slow is
 * not a reason to refuse (the check is advisory): it passes.
 */
import type { PolicyPhase } from './policy.js';
import { PASS, reject, type Verdict } from './verdict.js';
import { reply } from '../smtp/reply.js';
import { senderDomainHasNullMx } from '../mta/mx.js';
import type { MxDns } from '../mta/mx.js';
import type { LocalNames } from './localnames.js';

export function nullMxSenderPhase(dns: MxDns, local: LocalNames, timeoutMs = 3000): PolicyPhase {
  return {
    name: 'null-mx',
    async mail(_s, tx): Promise<Verdict> {
      const domain = tx.sender?.domain ?? '';
      if (domain === '' || domain.startsWith('[') || local.isLocalDomain(domain)) return PASS;
      const check = await Promise.race([senderDomainHasNullMx(dns, domain), new Promise<'error'>((r) => setTimeout(() => r('error'), timeoutMs).unref())]);
      if (check !== 'null-mx') return PASS;
      return reject(reply(550, '5.7.27', 'Sender address has null MX'), `sender domain ${domain} has a null MX (RFC 7505)`);
    },
  };
}
