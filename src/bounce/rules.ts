/*
 * bounce/rules.ts — who is owed which delivery status notification
 * (RFC 3461 §4.1 NOTIFY, §4.3 RET; RFC 3834 §2 no reports to <>).
 *
 *  - Never a DSN for a message from the null sender: it is itself a report
 *    (or must not cause one); failures of such messages are logged only.
 *  - NOTIFY absent  = FAILURE,DELAY (RFC 3461 §4.1: "the default … is
 *    either FAILURE or FAILURE,DELAY"); NOTIFY=NEVER = no report at all.
 *  - failure: when NOTIFY includes FAILURE (or is absent).
 *  - delay:   when NOTIFY includes DELAY (or is absent), at each warn interval.
 *  - success: only when NOTIFY includes SUCCESS. A local delivery reports
 *    "delivered". A relay reports "relayed" only when the relay agent says
 *    the next hop does not do DSN (result.relayed, RFC 3461 §5.2.2.2);
 *    otherwise the next hop got NOTIFY along and success notices are its
 *    job (RFC 3461 §6.2.7.1).
 *  - What is returned: failures return the full message unless RET=HDRS
 *    (RET absent ⇒ FULL), capped by size (headers beyond it); delay and
 *    success reports return headers only. BINARYMIME content (RFC 3030) is
 *    never returned whole: a report must travel without BINARYMIME.
 */
import type { RecipientResult } from '../delivery/agent.js';
import type { Envelope, EnvelopeRecipient, NotifyKind } from '../mail/envelope.js';

export type DsnKind = 'failure' | 'delay' | 'success';

/** What a relay agent may add to a RecipientResult for the DSN rules (mta/agent.ts RelayResult). */
export interface DsnResultHint {
  /** Accepted by a next hop without DSN while NOTIFY asked for SUCCESS: we report "relayed". */
  readonly relayed?: true;
}

export function notifyAllows(rcpt: Pick<EnvelopeRecipient, 'notify'>, kind: NotifyKind): boolean {
  const n = rcpt.notify;
  if (n === 'NEVER') return false;
  if (n === undefined) return kind !== 'SUCCESS';
  return n.includes(kind);
}

const NOTIFY_OF: Record<DsnKind, NotifyKind> = { failure: 'FAILURE', delay: 'DELAY', success: 'SUCCESS' };

/** Is a report of `kind` owed to the sender of `env` for `rcpt`? */
export function dsnOwed(env: Pick<Envelope, 'sender'>, rcpt: Pick<EnvelopeRecipient, 'notify'>, kind: DsnKind): boolean {
  return env.sender !== '' && notifyAllows(rcpt, NOTIFY_OF[kind]);
}

/** The DSN action for a successful delivery, or undefined when none is ours to send. */
export function successAction(agent: 'mda' | 'mta', result: RecipientResult & DsnResultHint): 'delivered' | 'relayed' | undefined {
  if (agent === 'mda') return 'delivered';
  return result.relayed === true ? 'relayed' : undefined;
}

/** Return the whole message ('full') or its header section ('headers')? */
export function returnMode(env: Pick<Envelope, 'ret' | 'body'>, kind: DsnKind): 'full' | 'headers' {
  if (kind !== 'failure' || env.body === 'BINARYMIME') return 'headers';
  return env.ret === 'HDRS' ? 'headers' : 'full';
}
