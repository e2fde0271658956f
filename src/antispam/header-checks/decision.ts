/*
 * antispam/header-checks/decision.ts — what the header checks' verdict on
 * a received message means at commit (queue/enqueue.ts): REJECT is
 * 550 5.7.1 with the rule's text (mail variables expanded), HOLD keeps the
 * message on hold, DISCARD tells the client 250 and drops it; a pattern
 * that ran out of time is 451 4.3.0 (logged with the reason).
 */
import { reply } from '../../mail/reply.js';
import type { CommitDecision, SessionFacts, TxFacts } from '../../policy/policy.js';
import { expandVariables, mailVariables } from '../variables.js';
import type { HeaderVerdict } from './apply.js';

export function headerCheckDecision(v: HeaderVerdict, s: SessionFacts, tx: TxFacts): CommitDecision | undefined {
  switch (v.kind) {
    case 'none':
      return undefined;
    case 'error':
      return { kind: 'reject', verdict: { kind: 'reject', reply: reply(451, '4.3.0', 'Temporary failure in header checks, try again later'), reason: v.reason } };
    case 'reject': {
      const text = v.text === '' ? 'Message content rejected' : expandVariables(v.text, mailVariables(s, tx));
      return { kind: 'reject', verdict: { kind: 'reject', reply: reply(550, '5.7.1', text), reason: `header checks ${v.rule}: REJECT on "${v.header}"` } };
    }
    case 'hold':
      return { kind: 'accept', hold: `header checks ${v.rule}: HOLD on "${v.header}"${v.text ? `: ${v.text}` : ''}` };
    case 'discard':
      return { kind: 'discard', reply: reply(250, '2.0.0', 'Message accepted for delivery'), reason: `header checks ${v.rule}: DISCARD on "${v.header}"${v.text ? `: ${v.text}` : ''}` };
  }
}
