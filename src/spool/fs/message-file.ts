/*
 * spool/fs/message-file.ts — the message file: body, envelope, trailer.
 *
 * Format (version 1; see docs/spool-format.md):
 *
 *   +-----------------------+----------------------+------------------+
 *   | body (B bytes, as is) | envelope (E bytes)   | trailer (88)     |
 *   +-----------------------+----------------------+------------------+
 *
 *   envelope: one JSON document (UTF-8, no BOM, no trailing newline). JSON
 *             escaping means no field value can ever end a field or start
 *             another one, whatever bytes a client smuggles into it.
 *   trailer, big-endian:
 *     0  8  magic "POSTERN1" (the "1" is the format version)
 *     8  8  B, body length (uint64; must be a safe integer)
 *    16  4  E, envelope length (uint32)
 *    20  4  reserved, zero
 *    24 32  SHA-256 of the body
 *    56 32  SHA-256 of trailer bytes 0..55 followed by the envelope bytes
 *
 * A file is valid iff its size is exactly B + E + 88, the magic and the
 * reserved bytes match, the second hash matches, the envelope parses and
 * passes checkEnvelope() for the file's own name, and envelope.size == B.
 * Anything else is corrupt. The trailer is written last, in the same
 * writev as the envelope, so a file cut short anywhere has no trailer.
 *
 * The body hash is not checked when the spool opens (that would read the
 * whole queue at every start); openBody() checks it while streaming and
 * fails the stream in place of its last chunk on a mismatch, so a delivery
 * never completes with damaged bytes (the client side aborts before the
 * final dot). It costs one native SHA-256 update per written chunk.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Envelope } from '../../mail/envelope.js';
import { checkEnvelope } from './envelope-check.js';
import { SpoolError, isErrno } from '../errors.js';

export const MAGIC = Buffer.from('POSTERN1', 'latin1');
export const TRAILER_SIZE = 88;
/** Upper bound for E; a larger value can only be damage. */
export const MAX_ENVELOPE_BYTES = 256 * 1024 * 1024;

/** The trailer that closes a message file. */
export function encodeTrailer(bodyLength: number, bodySha256: Buffer, envelope: Buffer): Buffer {
  const t = Buffer.alloc(TRAILER_SIZE);
  MAGIC.copy(t, 0);
  t.writeBigUInt64BE(BigInt(bodyLength), 8);
  t.writeUInt32BE(envelope.length, 16);
  bodySha256.copy(t, 24);
  createHash('sha256').update(t.subarray(0, 56)).update(envelope).digest().copy(t, 56);
  return t;
}

export interface MessageHead {
  readonly envelope: Envelope;
  readonly bodyLength: number;
  readonly bodySha256: Buffer;
}

function corrupt(reason: string): SpoolError {
  return new SpoolError('CORRUPT', reason);
}

/** Read exactly buf.length bytes at `position`; a short file is corrupt. */
async function readExact(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw corrupt('file shorter than its trailer says');
    done += bytesRead;
  }
}

/** Body and envelope lengths from a trailer, checked against the file size; else why not. */
function trailerLengths(t: Buffer, size: number): { bodyLength: number; envLength: number } | string {
  if (!t.subarray(0, 8).equals(MAGIC)) return t.subarray(0, 7).equals(MAGIC.subarray(0, 7)) ? 'unknown format version in trailer' : 'no trailer: magic missing';
  if (t.readUInt32BE(20) !== 0) return 'trailer: reserved bytes not zero';
  const bodyBig = t.readBigUInt64BE(8);
  const envLength = t.readUInt32BE(16);
  if (bodyBig > BigInt(Number.MAX_SAFE_INTEGER) || envLength > MAX_ENVELOPE_BYTES) return 'trailer: lengths out of range';
  const bodyLength = Number(bodyBig);
  if (bodyLength + envLength + TRAILER_SIZE !== size) return `trailer: body ${bodyLength} + envelope ${envLength} + ${TRAILER_SIZE} != file size ${size}`;
  return { bodyLength, envLength };
}

/** The envelope, checked against the trailer's checksum, the file's name and the body length; else why not. */
function trailerEnvelope(t: Buffer, envBytes: Buffer, bodyLength: number, msgid: string): Envelope | string {
  const sum = createHash('sha256').update(t.subarray(0, 56)).update(envBytes).digest();
  if (!sum.equals(t.subarray(56, 88))) return 'trailer: envelope checksum mismatch';
  let envelope: unknown;
  try {
    envelope = JSON.parse(envBytes.toString('utf8'));
  } catch {
    return 'envelope: not JSON';
  }
  const bad = checkEnvelope(envelope, msgid);
  if (bad !== null) return `envelope: ${bad}`;
  if ((envelope as Envelope).size !== bodyLength) return `envelope: size ${(envelope as Envelope).size} != body length ${bodyLength}`;
  return envelope as Envelope;
}

/** Validate trailer and envelope of an open message file named `msgid`. */
export async function readHead(fh: FileHandle, msgid: string): Promise<MessageHead> {
  const { size } = await fh.stat();
  if (size < TRAILER_SIZE) throw corrupt(`no trailer: file is ${size} bytes`);
  const t = Buffer.alloc(TRAILER_SIZE);
  await readExact(fh, t, size - TRAILER_SIZE);
  const lengths = trailerLengths(t, size);
  if (typeof lengths === 'string') throw corrupt(lengths);
  const envBytes = Buffer.alloc(lengths.envLength);
  await readExact(fh, envBytes, lengths.bodyLength);
  const envelope = trailerEnvelope(t, envBytes, lengths.bodyLength, msgid);
  if (typeof envelope === 'string') throw corrupt(envelope);
  return { envelope, bodyLength: lengths.bodyLength, bodySha256: Buffer.from(t.subarray(24, 56)) };
}

/** Open `path`, validate it, close it. ENOENT becomes NOT_FOUND. */
export async function readHeadAt(path: string, msgid: string): Promise<MessageHead> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new SpoolError('NOT_FOUND', `no message ${msgid}`);
    throw err;
  }
  try {
    return await readHead(fh, msgid);
  } finally {
    await fh.close();
  }
}

/** checkMessageBytes()'s reason for a body that differs from its trailer's hash. */
const BODY_MISMATCH = 'body checksum mismatch';

/** Files up to this size are read whole, at once, by readSmall(). */
export const SMALL_FILE_BYTES = 512 * 1024;

/**
 * A small message file (the usual case), read with three system calls in
 * this thread and checked whole — cheaper than a round of hand-offs to
 * libuv's threads per read; the file was usually written moments ago and is
 * in the page cache. Returns the body, an error, or undefined for a larger
 * file (streamed instead).
 */
function readSmall(path: string, msgid: string): Buffer | Error | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    return isErrno(err, 'ENOENT') ? new SpoolError('NOT_FOUND', `no message ${msgid}`) : (err as Error);
  }
  try {
    const size = fstatSync(fd).size;
    if (size > SMALL_FILE_BYTES) return undefined;
    const buf = Buffer.allocUnsafe(size);
    for (let off = 0; off < size; ) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) return corrupt('file shorter than its size');
      off += n;
    }
    const bad = checkMessageBytes(buf, msgid);
    if (bad !== null) return corrupt(bad === BODY_MISMATCH ? `body checksum mismatch in ${msgid}` : bad);
    return buf.subarray(0, Number(buf.readBigUInt64BE(size - TRAILER_SIZE + 8)));
  } catch (err) {
    return err as Error;
  } finally {
    closeSync(fd);
  }
}

/**
 * A stream of exactly the body bytes of the message file at `path`. Errors
 * (NOT_FOUND, CORRUPT, I/O) are emitted on the stream; a body whose SHA-256
 * differs from the trailer's fails in place of its last chunk, so a consumer
 * never receives all of a damaged body.
 */
export function bodyStream(path: string, msgid: string, highWaterMark = 64 * 1024): Readable {
  const small = readSmall(path, msgid);
  if (small !== undefined) {
    let sent = false;
    return new Readable({
      highWaterMark,
      read() {
        if (small instanceof Error) return void this.destroy(small);
        if (!sent && small.length > 0) this.push(small);
        sent = true;
        this.push(null);
      },
    });
  }
  let fh: FileHandle | undefined;
  let pos = 0;
  let end = 0;
  let expected: Buffer = Buffer.alloc(0);
  const hash = createHash('sha256');
  return new Readable({
    highWaterMark,
    construct(callback) {
      (async () => {
        try {
          fh = await open(path, 'r');
        } catch (err) {
          throw isErrno(err, 'ENOENT') ? new SpoolError('NOT_FOUND', `no message ${msgid}`) : err;
        }
        const head = await readHead(fh, msgid);
        end = head.bodyLength;
        expected = head.bodySha256;
      })().then(() => callback(), (err: Error) => callback(err));
    },
    read(size) {
      if (pos >= end) {
        // Only an empty body gets here; others end with their last chunk.
        if (hash.digest().equals(expected)) this.push(null);
        else this.destroy(corrupt(`body checksum mismatch in ${msgid}`));
        return;
      }
      const want = Math.min(Math.max(size, 1), end - pos, 1024 * 1024);
      const buf = Buffer.allocUnsafe(want);
      (fh as FileHandle).read(buf, 0, want, pos).then(
        ({ bytesRead }) => {
          if (bytesRead === 0) {
            this.destroy(corrupt(`body of ${msgid} shorter than its trailer says`));
            return;
          }
          pos += bytesRead;
          const chunk = bytesRead === want ? buf : buf.subarray(0, bytesRead);
          hash.update(chunk);
          if (pos < end) {
            this.push(chunk);
          } else if (hash.digest().equals(expected)) {
            this.push(chunk);
            this.push(null);
          } else {
            // Withhold the last chunk: nobody ever sees a complete damaged body.
            this.destroy(corrupt(`body checksum mismatch in ${msgid}`));
          }
        },
        (err: Error) => this.destroy(err),
      );
    },
    destroy(err, callback) {
      const h = fh;
      fh = undefined;
      if (h === undefined) callback(err);
      else h.close().then(() => callback(err), () => callback(err));
    },
  });
}

/**
 * Check a whole message file held in memory (a journal record): trailer,
 * envelope checksum and content, and the body's SHA-256. null when valid,
 * else the reason.
 */
export function checkMessageBytes(buf: Buffer, msgid: string): string | null {
  if (buf.length < TRAILER_SIZE) return `no trailer: ${buf.length} bytes`;
  const t = buf.subarray(buf.length - TRAILER_SIZE);
  const lengths = trailerLengths(t, buf.length);
  if (typeof lengths === 'string') return lengths;
  const { bodyLength, envLength } = lengths;
  const envelope = trailerEnvelope(t, buf.subarray(bodyLength, bodyLength + envLength), bodyLength, msgid);
  if (typeof envelope === 'string') return envelope;
  if (!createHash('sha256').update(buf.subarray(0, bodyLength)).digest().equals(t.subarray(24, 56))) return BODY_MISMATCH;
  return null;
}
