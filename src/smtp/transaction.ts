/*
 * smtp/transaction.ts — one mail transaction (MAIL … DATA/BDAT LAST).
 *
 * Kept apart from the session, as OpenSMTPD keeps smtp_tx apart from
 * smtp_session: RSET, EHLO and a finished message drop the transaction,
 * never the session.
 *
 * A transaction is a union by phase, so the compiler knows what exists when:
 *
 *   envelope ──DATA──> data            (the message at the front door, byte count)
 *   envelope ──BDAT──> bdat            (the same, and the line-ending normalizer)
 *   envelope|bdat ──BDAT refused──> bdat-refused   (the reply every further chunk gets)
 *
 * A phase change makes a new object; the recipients array is shared.
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

/** What every phase has: the envelope so far. */
interface TxEnvelope {
  readonly sender: Mailbox | null;
  readonly senderAddress: string;
  readonly params: MailParams;
  readonly startedAt: number;
  readonly rcpts: AcceptedRcpt[];
  /** Lower-cased addresses of rcpts (a duplicate RCPT is accepted but kept once). */
  readonly seen: Set<string>;
  /** RCPT commands tried, accepted or not (for "no valid recipients"). */
  attempted: number;
}

/** MAIL and RCPT: nothing stored yet. */
export interface EnvelopeTx extends TxEnvelope {
  readonly phase: 'envelope';
}

/** The message being stored: it is on its way through the front door (queue/enqueue.ts). */
export interface MessageContent {
  readonly message: IncomingMessage;
  /** `senders … masquerade`: rewrites the From: header on its way to the spool. */
  readonly fromRewriter?: FromRewriter;
  /** Message bytes received from the client (our Received: header not counted). */
  contentBytes: number;
  overflow: boolean;
}

export interface DataTx extends TxEnvelope, MessageContent {
  readonly phase: 'data';
}

export interface BdatTx extends TxEnvelope, MessageContent {
  readonly phase: 'bdat';
  readonly normalizer: LineEndingNormalizer;
  /** LAST was given on the chunk being received. */
  last: boolean;
}

/** A BDAT chunk was refused: nothing is stored, every further chunk up to LAST gets `failure`. */
export interface BdatRefusedTx extends TxEnvelope {
  readonly phase: 'bdat-refused';
  readonly failure: Reply;
}

export type Transaction = EnvelopeTx | DataTx | BdatTx | BdatRefusedTx;
/** The phases that store content. */
export type ContentTx = DataTx | BdatTx;

export function newTransaction(sender: Mailbox | null, senderAddress: string, params: MailParams, startedAt: number): EnvelopeTx {
  return { phase: 'envelope', sender, senderAddress, params, startedAt, rcpts: [], seen: new Set(), attempted: 0 };
}

/** Add a recipient; a duplicate (same address, case-insensitively) is accepted but kept once. */
export function addRcpt(tx: EnvelopeTx, r: AcceptedRcpt): void {
  const key = r.address.toLowerCase();
  if (tx.seen.has(key)) return;
  tx.seen.add(key);
  tx.rcpts.push(r);
}

/** The envelope of any phase, to start another phase from. */
export function envelopeOf(tx: Transaction): TxEnvelope {
  const { sender, senderAddress, params, startedAt, rcpts, seen, attempted } = tx;
  return { sender, senderAddress, params, startedAt, rcpts, seen, attempted };
}

/** Throw away anything stored; nothing of this transaction will ever be delivered. */
export async function abortTransaction(tx: Transaction): Promise<void> {
  if (tx.phase === 'data' || tx.phase === 'bdat') await tx.message.abort();
}
