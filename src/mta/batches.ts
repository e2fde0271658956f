/*
 * mta/batches.ts — the encoded content of a message in write-sized
 * batches for the transaction (transaction.ts). The last batch is flagged,
 * so that it can leave in one write with the final "." (DATA) or as the
 * BDAT LAST chunk. A body that cannot be read whole is a BodyError: the
 * message must not be sent partly.
 */
import type { Readable } from 'node:stream';
import type { BodyEncoder } from './encoder.js';
import { wholeBody } from '../spool/whole-body.js';

export interface Batch {
  readonly data: Buffer;
  readonly last: boolean;
}

/** Encoded content in batches of about `size` bytes; the last one is flagged, so it can leave with the terminator. */
export async function* batches(body: Readable, enc: BodyEncoder, size: number): AsyncGenerator<Batch> {
  let acc: Buffer[] = [];
  let accLen = 0;
  let ready: Buffer | null = null;
  // A body the spool still holds in memory is taken whole, without the stream's async iterator.
  const chunks: Iterable<unknown> | AsyncIterable<unknown> = wholeBody(body) ?? body;
  for await (const chunk of chunks) {
    const out = enc.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
    if (out.length > 0) {
      acc.push(out);
      accLen += out.length;
    }
    if (accLen >= size) {
      const b = Buffer.concat(acc, accLen);
      acc = [];
      accLen = 0;
      if (ready !== null) yield { data: ready, last: false };
      ready = b;
    }
  }
  const tail = enc.end();
  if (tail.length > 0) {
    acc.push(tail);
    accLen += tail.length;
  }
  const rest = Buffer.concat(acc, accLen);
  if (ready === null) yield { data: rest, last: true };
  else if (rest.length === 0) yield { data: ready, last: true };
  else {
    yield { data: ready, last: false };
    yield { data: rest, last: true };
  }
}

/** A body read error: the message must not be sent partly. */
export class BodyError extends Error {}

/** The next batch; a read error, or an end before the last batch, is a BodyError. */
export async function nextBatch(it: AsyncGenerator<Batch>): Promise<Batch> {
  try {
    const r = await it.next();
    if (r.done === true) throw new BodyError('message body ended unexpectedly');
    return r.value;
  } catch (e) {
    if (e instanceof BodyError) throw e;
    throw new BodyError(`cannot read the queued message: ${(e as Error).message}`);
  }
}
