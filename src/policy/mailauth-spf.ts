/*
 * policy/mailauth-spf.ts — `mailauth verify spf-reject`: SPF at MAIL FROM
 * (src/mailauth/verify/verifier.ts decides; this adapts it to a phase).
 */
import type { PolicyPhase } from './policy.js';
import { PASS, reject, type Verdict } from './verdict.js';
import { formatMailbox } from '../mail/address.js';
import type { InboundVerifier } from '../mailauth/verify/verifier.js';

export function spfAtMailPhase(v: Pick<InboundVerifier, 'spfAtMail'>): PolicyPhase {
  return {
    name: 'mailauth-spf',
    async mail(s, tx): Promise<Verdict> {
      const r = await v.spfAtMail({ ...s, sender: tx.sender ? formatMailbox(tx.sender) : '' });
      return r.kind === 'reject' ? reject(r.reply, r.reason) : PASS;
    },
  };
}
