/*
 * spool/whole-body.ts — a body stream whose content is already whole in
 * memory (a message committed a moment ago, from the spool's cache of
 * recent bodies). It is an ordinary Readable for every reader; a reader on
 * the hot path (the relay client's batches) may take the pieces at once
 * instead, and skip the stream's async iterator: a few microseconds and
 * several promises per relayed message.
 */
import { Readable } from 'node:stream';

const PIECES = Symbol('whole body');

type Whole = Readable & { [PIECES]?: readonly Buffer[] };

/** A stream of `pieces` that wholeBody() can see through. */
export function wholeBodyStream(pieces: readonly Buffer[]): Readable {
  const r: Whole = Readable.from(pieces, { objectMode: false });
  r[PIECES] = pieces;
  return r;
}

/** The pieces of a stream made by wholeBodyStream() and not yet read from; undefined for any other. */
export function wholeBody(r: Readable): readonly Buffer[] | undefined {
  const w = r as Whole;
  return w[PIECES] !== undefined && w.readableLength === 0 && !w.readableDidRead ? w[PIECES] : undefined;
}

/** `pieces` as one Buffer: the piece itself when there is only one (no copy). */
export function joinPieces(pieces: readonly Buffer[], size?: number): Buffer {
  return pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces, size);
}
