/*
 * smtp/transaction.ts — one mail transaction (MAIL … DATA/BDAT LAST).
 *
 * Kept apart from the session, as OpenSMTPD keeps smtp_tx apart from
 * smtp_session: RSET, EHLO and a finished message drop the transaction,
 * never the session.
 */
import type { Mailbox } from '../mail/address.js';
import type { MailParams, RcptParams } from '../mail/params.js';
import type { IncomingMessage } from '../queue/enqueue.js';
import type { LineEndingNormalizer } from '../wire/line-endings.js';
import type { Reply } from '../mail/reply.js';
import type { FromRewriter } from './masquerade.js';
import type { RcptTarget } from '../policy/policy.js';

export interface AcceptedRcpt {
  readonly mailbox: Mailbox;
  readonly address: string;
  readonly params: RcptParams;
  /** Where its copies go, after expansion (policy/policy.ts). */
  readonly targets: readonly RcptTarget[];
}

export interface BdatState {
  /** LAST was given on the chunk being received. */
  last: boolean;
  /** The reply owed for this chunk when it is not a 250 (sequence error, no recipients …). */
  failure?: Reply;
  normalizer?: LineEndingNormalizer;
}

export class Transaction {
  readonly rcpts: AcceptedRcpt[] = [];
  private readonly seen = new Set<string>();
  /** RCPT commands tried, accepted or not (for "no valid recipients"). */
  attempted = 0;
  /** The message on its way through the front door, from DATA / the first BDAT on. */
  message?: IncomingMessage;
  bdat?: BdatState;
  overflow = false;
  /** Message bytes received from the client (our Received: header not counted). */
  contentBytes = 0;
  /** `senders … masquerade`: rewrites the From: header on its way to the spool. */
  fromRewriter?: FromRewriter;

  constructor(
    readonly sender: Mailbox | null,
    readonly senderAddress: string,
    readonly params: MailParams,
    readonly startedAt: number,
  ) {}

  /** Add a recipient; a duplicate (same address, case-insensitively) is accepted but kept once. */
  addRcpt(r: AcceptedRcpt): void {
    const key = r.address.toLowerCase();
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.rcpts.push(r);
  }

  /** Throw away anything stored; nothing of this transaction will ever be delivered. */
  async abort(): Promise<void> {
    const m = this.message;
    this.message = undefined;
    if (m) await m.abort();
  }
}
