/*
 * smtp/bdat.ts — the words of CHUNKING (RFC 3030) the session decides
 * with: the BDAT argument, the replies a chunk that cannot be stored gets,
 * and how large a chunk may be to be read and thrown away.
 *
 * RFC 3030 §4.1: a chunk is read whatever the reply, else the rest of the
 * stream cannot be framed. A chunk that would take the message past the
 * size limit is answered 552 before it is read (issue 14: waiting for
 * bytes a client may never send held the connection until it timed out);
 * one larger than bdatReadLimit() is not read at all: 552 and the end of
 * the session.
 */
import { reply, type Reply } from '../mail/reply.js';
import type { Transaction } from './transaction.js';

/** The least bdatReadLimit() can be: a chunk this size is read and thrown away even under a smaller size limit. */
export const BDAT_DISCARD_MIN = 64 * 1024 * 1024;

/** The largest chunk read when it cannot be stored: the message size limit, or 64 MiB if more. */
export function bdatReadLimit(maxMessageSize: number): number {
  return Math.max(maxMessageSize, BDAT_DISCARD_MIN);
}

/** `BDAT size [LAST]`; undefined when the size cannot be read. */
export function parseBdat(arg: string): { readonly n: number; readonly last: boolean } | undefined {
  const m = /^(\d{1,15})(?:\s+(LAST))?\s*$/i.exec(arg.trim());
  if (!m || m[1] === undefined) return undefined;
  return { n: Number(m[1]), last: m[2] !== undefined };
}

/** What happens to the BDAT chunk being read: stored, or read and thrown away (and the reply owed after it, if any). */
export type ChunkFate = { readonly store: true } | { readonly store: false; readonly reply?: Reply; readonly last: boolean };

export const tooBig = (): Reply => reply(552, '5.3.4', 'Message size exceeds fixed maximum message size');

/** Why a BDAT chunk cannot be stored, given the transaction (or its absence); undefined when it can. */
export function bdatFailure(tx: Transaction | undefined): Reply | undefined {
  if (!tx) return reply(503, '5.5.1', 'Need MAIL command');
  if (tx.phase === 'bdat-refused') return tx.failure;
  if (tx.phase === 'data') return reply(503, '5.5.1', 'Bad sequence of commands');
  if (tx.rcpts.length === 0) return tx.attempted > 0 ? reply(554, '5.5.1', 'No valid recipients') : reply(503, '5.5.1', 'Need RCPT command');
  return undefined;
}
