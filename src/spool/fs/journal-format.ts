/*
 * spool/fs/journal-format.ts — the records of the spool journal (pure).
 *
 * A journal segment, journal/<pid>-<seq>.jnl, is a sequence of records, each
 * a 20-byte header followed by its payload:
 *
 *    0  4  magic "PJR1"
 *    4  1  type: "M" (a message file) or "T" (a tombstone)
 *    5  3  reserved, zero
 *    8  8  msgid, ASCII hex
 *   16  4  payload length (uint32, big-endian); 0 for a tombstone
 *
 * An "M" payload is the exact bytes of the message file (body, envelope,
 * trailer: message-file.ts), whose own checksums prove it whole. A "T"
 * record says the message was removed (delivered, or refused after all), so
 * replaying the journal must not bring it back.
 *
 * Records are appended in batches, each batch made durable with one
 * fdatasync before any of its messages is acknowledged; a crash can only
 * tear the last batch, which no client was told about. parseSegment() stops
 * at the first record that is cut short or malformed.
 */
import { isMsgid } from './ids.js';

export const RECORD_MAGIC = Buffer.from('PJR1', 'latin1');
export const RECORD_HEADER_SIZE = 20;
/** Larger payloads never go through the journal (see writer.ts), so a larger length is damage. */
export const MAX_RECORD_PAYLOAD = 1024 * 1024 * 1024;

export type RecordType = 'M' | 'T';

export function encodeRecordHeader(type: RecordType, msgid: string, payloadLength: number): Buffer {
  if (!isMsgid(msgid)) throw new RangeError(`not a msgid: ${JSON.stringify(msgid)}`);
  if (!Number.isSafeInteger(payloadLength) || payloadLength < 0 || payloadLength > MAX_RECORD_PAYLOAD) throw new RangeError(`payload length ${payloadLength} out of range`);
  const h = Buffer.alloc(RECORD_HEADER_SIZE);
  RECORD_MAGIC.copy(h, 0);
  h.write(type, 4, 'latin1');
  h.write(msgid, 8, 'latin1');
  h.writeUInt32BE(payloadLength, 16);
  return h;
}

export interface JournalRecord {
  readonly type: RecordType;
  readonly msgid: string;
  /** The message file's bytes ("M"); empty for "T". */
  readonly payload: Buffer;
}

export interface ParsedSegment {
  readonly records: JournalRecord[];
  /** Bytes after the last whole record (a torn batch, or damage). */
  readonly trailing: number;
}

/** The whole records of a segment, in order. Payloads are views into `buf`. */
export function parseSegment(buf: Buffer): ParsedSegment {
  const records: JournalRecord[] = [];
  let pos = 0;
  while (pos + RECORD_HEADER_SIZE <= buf.length) {
    if (!buf.subarray(pos, pos + 4).equals(RECORD_MAGIC)) break;
    const type = String.fromCharCode(buf[pos + 4] as number);
    if ((type !== 'M' && type !== 'T') || buf[pos + 5] !== 0 || buf[pos + 6] !== 0 || buf[pos + 7] !== 0) break;
    const msgid = buf.toString('latin1', pos + 8, pos + 16);
    if (!isMsgid(msgid)) break;
    const len = buf.readUInt32BE(pos + 16);
    if (type === 'T' ? len !== 0 : len > MAX_RECORD_PAYLOAD) break;
    const end = pos + RECORD_HEADER_SIZE + len;
    if (end > buf.length) break;
    records.push({ type, msgid, payload: buf.subarray(pos + RECORD_HEADER_SIZE, end) });
    pos = end;
  }
  return { records, trailing: buf.length - pos };
}

/** Segment file names: <pid>-<seq>.jnl, seq in 8 hex digits so names sort in order. */
export function segmentName(pid: number, seq: number): string {
  return `${pid}-${seq.toString(16).padStart(8, '0')}.jnl`;
}

export const SEGMENT_RE = /^\d+-[0-9a-f]{8}\.jnl$/;
