/*
 * table/cdb.ts — the constant database format (D. J. Bernstein's cdb).
 *
 * Postern's compiled tables (makemap) are cdb files: built once, replaced
 * by rename, read with positioned reads. The format (cr.yp.to/cdb/cdb.txt,
 * public domain), all numbers 32-bit little-endian:
 *
 *   header   256 × (position, slots)  — one hash table per low byte of the hash
 *   records  klen, dlen, key, data     — in insertion order
 *   tables   slots × (hash, record position); position 0 = empty slot
 *
 *   hash(k) = h0 = 5381, h = ((h << 5) + h) ^ byte, mod 2^32
 *   lookup: table (hash & 255), first slot (hash >>> 8) % slots, then
 *   linear probing until an empty slot.
 *
 * The writer lays the 256 tables out in order right after the records, so
 * the last one ends exactly at the end of the file; the reader checks that
 * (a truncated or overwritten file is refused) and bounds-checks every
 * read, so a damaged file yields an error, never a wrong answer or a crash.
 * Files are limited to 4 GiB. Files written here are readable by other cdb
 * tools (`cdb -d`, tinycdb) and the reverse.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const HEADER = 2048;
const MAX_SIZE = 0xffffffff;

export function cdbHash(key: Uint8Array): number {
  let h = 5381;
  for (const b of key) h = (((h << 5) + h) >>> 0) ^ b;
  return h >>> 0;
}

/** The file's bytes, as chunks to write in order. Throws if the result would exceed 4 GiB. */
export function buildCdb(records: Iterable<readonly [Uint8Array, Uint8Array]>): Buffer[] {
  const chunks: Buffer[] = [Buffer.alloc(HEADER)];
  const buckets: [number, number][][] = Array.from({ length: 256 }, () => []);
  let pos = HEADER;
  for (const [key, data] of records) {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(key.length, 0);
    head.writeUInt32LE(data.length, 4);
    chunks.push(head, Buffer.from(key), Buffer.from(data));
    const h = cdbHash(key);
    (buckets[h & 255] as [number, number][]).push([h, pos]);
    pos += 8 + key.length + data.length;
    if (pos > MAX_SIZE) throw new Error('table too large for the compiled format (4 GiB)');
  }
  const header = chunks[0] as Buffer;
  for (let i = 0; i < 256; i++) {
    const bucket = buckets[i] as [number, number][];
    const slots = bucket.length * 2;
    header.writeUInt32LE(pos, i * 8);
    header.writeUInt32LE(slots, i * 8 + 4);
    const table = Buffer.alloc(slots * 8);
    for (const [h, p] of bucket) {
      let s = (h >>> 8) % slots;
      while (table.readUInt32LE(s * 8 + 4) !== 0) s = (s + 1) % slots;
      table.writeUInt32LE(h, s * 8);
      table.writeUInt32LE(p, s * 8 + 4);
    }
    chunks.push(table);
    pos += slots * 8;
    if (pos > MAX_SIZE) throw new Error('table too large for the compiled format (4 GiB)');
  }
  return chunks;
}

/** A cdb file open for reading. Every method throws an Error naming the file on I/O errors or damage. */
export class CdbReader {
  private readonly tables: { pos: number; slots: number }[] = [];
  /** End of the record section. */
  private readonly recordsEnd: number;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly size: number,
  ) {
    if (size < HEADER) throw this.damaged('shorter than a cdb header');
    const header = this.read(0, HEADER);
    let end = HEADER;
    let first = size;
    for (let i = 0; i < 256; i++) {
      const pos = header.readUInt32LE(i * 8);
      const slots = header.readUInt32LE(i * 8 + 4);
      if (pos < HEADER || pos + slots * 8 > size) throw this.damaged('hash table outside the file');
      this.tables.push({ pos, slots });
      end = Math.max(end, pos + slots * 8);
      first = Math.min(first, pos);
    }
    if (end !== size) throw this.damaged(`${size - end} bytes after the last hash table (overwritten or appended to?)`);
    this.recordsEnd = first;
  }

  static open(path: string): CdbReader {
    const fd = openSync(path, 'r');
    try {
      return new CdbReader(path, fd, fstatSync(fd).size);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** The data of the first record with this key, or undefined. */
  get(key: Uint8Array): Buffer | undefined {
    const h = cdbHash(key);
    const t = this.tables[h & 255] as { pos: number; slots: number };
    if (t.slots === 0) return undefined;
    let s = (h >>> 8) % t.slots;
    for (let n = 0; n < t.slots; n++) {
      const slot = this.read(t.pos + s * 8, 8);
      const sh = slot.readUInt32LE(0);
      const rp = slot.readUInt32LE(4);
      if (rp === 0) return undefined;
      if (sh === h) {
        const rec = this.record(rp);
        if (rec.key.equals(key)) return rec.data;
      }
      s = (s + 1) % t.slots;
    }
    return undefined;
  }

  /** Every record, in file order. */
  *entries(): Generator<{ key: Buffer; data: Buffer }> {
    let pos = HEADER;
    while (pos < this.recordsEnd) {
      const rec = this.record(pos);
      yield rec;
      pos += 8 + rec.key.length + rec.data.length;
    }
    if (pos !== this.recordsEnd) throw this.damaged('records overrun the hash tables');
  }

  close(): void {
    closeSync(this.fd);
  }

  private record(pos: number): { key: Buffer; data: Buffer } {
    if (pos < HEADER || pos + 8 > this.recordsEnd) throw this.damaged(`record position ${pos} out of range`);
    const head = this.read(pos, 8);
    const klen = head.readUInt32LE(0);
    const dlen = head.readUInt32LE(4);
    if (pos + 8 + klen + dlen > this.recordsEnd) throw this.damaged(`record at ${pos} overruns the records`);
    const body = this.read(pos + 8, klen + dlen);
    return { key: body.subarray(0, klen), data: body.subarray(klen) };
  }

  private read(pos: number, len: number): Buffer {
    const buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(this.fd, buf, got, len - got, pos + got);
      if (n === 0) throw this.damaged(`short read at ${pos + got} (file truncated?)`);
      got += n;
    }
    return buf;
  }

  private damaged(why: string): Error {
    return new Error(`${this.path}: damaged compiled table: ${why}`);
  }
}
