/*
 * mta/transaction.ts — one message over an open session: MAIL, RCPT…,
 * DATA or BDAT, and one outcome per recipient.
 *
 * Before anything is sent, the message is checked against what the server
 * offered (all permanent, for every recipient): a message larger than the
 * server's SIZE (5.3.4); a message that needs SMTPUTF8 to a server without
 * it (5.6.7, RFC 6531 §3.2 — Postern does not downgrade); BINARYMIME
 * without BINARYMIME and CHUNKING (5.6.3). 8BITMIME content to a server
 * that does not offer 8BITMIME is sent as it is, without BODY=, as Postfix
 * does when it cannot convert.
 *
 * With PIPELINING (RFC 2920) MAIL, every RCPT and DATA leave in one write
 * and the replies are read in order; with CHUNKING (RFC 3030) the first
 * BDAT chunk — the whole message when it is small — goes in that same
 * write, so a small message costs one round trip. Without PIPELINING each
 * command waits for its reply. The last content and the final "." (or the
 * last BDAT chunk and its command) are always written together.
 *
 * Outcomes:
 *  - MAIL 5xx: every recipient fails permanently; MAIL 4xx: the session is
 *    given up and the next host may take the recipients;
 *  - RCPT: each recipient on its own (2xx accepted, 4xx tempfail, 5xx
 *    permfail);
 *  - DATA/BDAT refused, or the reply after the content: applies to every
 *    accepted recipient (LMTP: one reply per accepted recipient);
 *  - the connection lost (or timed out) before the final dot was sent:
 *    nothing was delivered, the next host may take the undecided
 *    recipients; after the final dot was sent: tempfail, and no other host
 *    is tried — the message may have been delivered (at worst a
 *    duplicate, never a loss).
 *
 * The transaction is a state machine: one function per step (STEPS), each
 * doing its part on the wire and naming the next step, or ending with the
 * result; a Tx holds what the steps know. The steps
 * (tx-steps.ts; Tx and the state names in tx-state.ts):
 *
 *   prepare → [rset] → pipeline → [rsetReply] → mailReply → rcptReplies → dataReply
 *                                 dataReply → content | bdat | bdatLastReply | (refused)
 *   prepare → [rset] → mail → rcpt → data → content          (without PIPELINING)
 *                             rcpt → bdat
 *   content | bdat → final
 *
 * pipeline writes [RSET,] MAIL, every RCPT and DATA (or the first BDAT
 * chunk) in one write; rset is a cached session's RSET on its own, when it
 * cannot travel in that group (no PIPELINING, or a pipelined BDAT).
 */
import type { EnvelopeRecipient } from '../mail/envelope.js';
import { BodyError } from './batches.js';
import { ClientError } from './client.js';
import { safeValue } from './commands.js';
import { has } from './ehlo.js';
import { errorVerdict, peerName, type ClientSession } from './session.js';
import { Tx, type Next, type RcptOutcome, type TxParams, type TxResult } from './tx-state.js';
import { STEPS } from './tx-steps.js';

export type { RcptOutcome, TxParams, TxResult } from './tx-state.js';

/** What the server must support, and what can be sent at all, checked before a byte is sent: a final result, or the recipients that go. */
function preflight(session: ClientSession, p: TxParams, outcomes: RcptOutcome[]): TxResult | EnvelopeRecipient[] {
  const env = p.envelope;
  const caps = session.caps;
  const who = peerName(session.target);
  const refuse = (enhanced: string, detail: string): TxResult => {
    for (const rcpt of p.recipients) outcomes.push({ status: 'permfail', enhanced, detail, rcpt });
    return { outcomes, undecided: [], nextHost: false };
  };
  if (caps.maxSize > 0 && env.size > caps.maxSize) return refuse('5.3.4', `message size ${env.size} exceeds size limit ${caps.maxSize} of server ${who}`);
  if (env.smtputf8 && !has(caps, 'SMTPUTF8')) return refuse('5.6.7', `message requires SMTPUTF8 (internationalized addresses or headers), but server ${who} does not support SMTPUTF8`);
  if (env.body === 'BINARYMIME' && !(has(caps, 'BINARYMIME') && has(caps, 'CHUNKING'))) return refuse('5.6.3', `message has binary content (BINARYMIME), but server ${who} does not support BINARYMIME with CHUNKING`);
  if (!safeValue(p.sender)) return refuse('5.1.7', 'invalid sender address in the queue (control characters)');
  const rcpts: EnvelopeRecipient[] = [];
  for (const r of p.recipients) {
    if (safeValue(r.address) && (r.orcpt === undefined || safeValue(r.orcpt))) rcpts.push(r);
    else outcomes.push({ rcpt: r, status: 'permfail', enhanced: '5.1.3', detail: 'invalid recipient address in the queue (control characters)' });
  }
  if (rcpts.length === 0) return { outcomes, undecided: [], nextHost: false };
  return rcpts;
}

/** One message over `session`: the steps from prepare on, each naming the next, until one gives the result. */
export async function sendMessage(session: ClientSession, p: TxParams): Promise<TxResult> {
  const outcomes: RcptOutcome[] = [];
  const rcpts = preflight(session, p, outcomes);
  if (!Array.isArray(rcpts)) return rcpts;
  const tx = new Tx(session, p, rcpts, outcomes);
  try {
    let next: Next = 'prepare';
    while (typeof next === 'string') next = await STEPS[next](tx);
    return next.result;
  } catch (e) {
    return broken(tx, e);
  } finally {
    void tx.body?.return(undefined).catch(() => undefined);
  }
}

/** The connection broke (or the body could not be read) in the middle of the steps. */
function broken(tx: Tx, e: unknown): TxResult {
  if (e instanceof BodyError) {
    // Never end a message we could not read whole: drop the connection so the server discards it.
    tx.session.destroy();
    tx.all({ status: 'tempfail', enhanced: '4.3.0', detail: e.message }, tx.undecided());
    return tx.done().result;
  }
  if (!(e instanceof ClientError)) throw e;
  tx.session.destroy();
  const t = tx.session.target;
  if (tx.dotSent) {
    const v = errorVerdict(e, t, `after end of data`);
    tx.all({ ...v, detail: `${v.detail}: the message may have been delivered (a possible duplicate; retrying)` }, tx.undecided());
    return { outcomes: tx.outcomes, undecided: [], nextHost: false, failure: v };
  }
  const v = errorVerdict(e, t, `while sending ${tx.stage}`);
  return { outcomes: tx.outcomes.filter((o) => o.status !== 'ok'), undecided: tx.undecided(), failure: v, nextHost: e.kind !== 'aborted' };
}
