/*
 * spool/fs/outcome-log.ts — the per-message, append-only outcome records.
 *
 * File queue/<bucket>/<msgid>.log, one record per line (version 1):
 *
 *   <16 hex: first 8 bytes of SHA-256(json)> SP <json> LF
 *   json = {"v":1,"evpid":"<16 hex>","outcome":<RecipientOutcome>}
 *
 * JSON never contains a raw LF, so a line is a record and a detail text
 * cannot forge another one. A line that does not end in LF is a record torn
 * by a crash during its append: it is ignored. Before appending, the writer
 * checks the last byte of the file and starts with an LF if it is not one,
 * so a record written after a torn one is never glued to it. A complete
 * line that fails its checksum or schema is skipped and counted ("bad"):
 * losing a record can only make the scheduler try a recipient again (a
 * duplicate), never lose one; the latest valid record for an evpid wins.
 *
 * Appends to one log from one process go through a LogAppender: records
 * that arrive while an append is in flight are written together by the
 * next one (one write, one fdatasync), and only the batch that created the
 * file (found it empty) makes its folder entry durable, before anyone in
 * it (or after it) is answered. Several processes appending to the same
 * log at once are not expected (one scheduler owns a message).
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import type { RecipientOutcome } from '../../mail/envelope.js';
import { checkOutcome } from './envelope-check.js';
import { SpoolError } from '../errors.js';
import { isEvpid } from './ids.js';

export interface OutcomeRecord {
  readonly evpid: string;
  readonly outcome: RecipientOutcome;
}

export interface ParsedLog {
  readonly records: OutcomeRecord[];
  /** Complete lines that failed their checksum, JSON or schema check. */
  readonly bad: number;
  /** The file ended inside a record (crash during an append). */
  readonly torn: boolean;
}

function tag(json: string): string {
  return createHash('sha256').update(json).digest('hex').slice(0, 16);
}

/** One record line, LF included. Throws INVALID for what parseLog() would refuse. */
export function encodeRecord(evpid: string, outcome: RecipientOutcome): string {
  const json = JSON.stringify({ v: 1, evpid, outcome });
  const line = `${tag(json)} ${json}\n`;
  if (decodeLine(line.slice(0, -1)) === null) {
    const why = isEvpid(evpid) ? checkOutcome(JSON.parse(json).outcome) : 'not an evpid';
    throw new SpoolError('INVALID', `outcome record for ${JSON.stringify(evpid)}: ${why ?? 'unreadable'}`);
  }
  return line;
}

function decodeLine(line: string): OutcomeRecord | null {
  if (line.length < 18 || line[16] !== ' ') return null;
  const json = line.slice(17);
  if (tag(json) !== line.slice(0, 16)) return null;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const r = v as { v?: unknown; evpid?: unknown; outcome?: unknown };
  if (r.v !== 1 || typeof r.evpid !== 'string' || !isEvpid(r.evpid) || checkOutcome(r.outcome) !== null) return null;
  return { evpid: r.evpid, outcome: r.outcome as RecipientOutcome };
}

export function parseLog(data: Buffer): ParsedLog {
  const records: OutcomeRecord[] = [];
  let bad = 0;
  let start = 0;
  for (;;) {
    const nl = data.indexOf(0x0a, start);
    if (nl < 0) break;
    if (nl > start) {
      const rec = decodeLine(data.toString('utf8', start, nl));
      if (rec) records.push(rec);
      else bad++;
    }
    start = nl + 1;
  }
  return { records, bad, torn: start < data.length };
}

/**
 * Append `line` to the log at `path` and fdatasync it. Returns true if the
 * file was empty before (just created): its folder then needs an fsync.
 */
async function appendRecord(path: string, line: string): Promise<boolean> {
  const fh: FileHandle = await open(path, 'a+', 0o600);
  try {
    const { size } = await fh.stat();
    let data = Buffer.from(line, 'utf8');
    if (size > 0) {
      const last = Buffer.alloc(1);
      await fh.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) data = Buffer.concat([Buffer.from('\n'), data]);
    }
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await fh.write(data, off, data.length - off, null);
      off += bytesWritten;
    }
    await fh.datasync();
    return size === 0;
  } finally {
    await fh.close();
  }
}

interface Pending {
  lines: string[];
  waiters: { resolve(): void; reject(err: unknown): void }[];
  whenCreated: () => Promise<void>;
  running: boolean;
}

/** Batches appends per log file (see the file header). */
export class LogAppender {
  private readonly logs = new Map<string, Pending>();

  /**
   * Append `line` to `path`; resolves once it is fdatasynced. If the batch
   * finds the file new, `whenCreated` (check the message, fsync the folder)
   * runs first, and its failure fails the batch.
   */
  append(path: string, line: string, whenCreated: () => Promise<void>): Promise<void> {
    let p = this.logs.get(path);
    if (p === undefined) {
      p = { lines: [], waiters: [], whenCreated, running: false };
      this.logs.set(path, p);
    }
    p.lines.push(line);
    const done = new Promise<void>((resolve, reject) => (p as Pending).waiters.push({ resolve, reject }));
    if (!p.running) void this.run(path, p);
    return done;
  }

  private async run(path: string, p: Pending): Promise<void> {
    p.running = true;
    while (p.lines.length > 0) {
      const text = p.lines.join('');
      const waiters = p.waiters;
      p.lines = [];
      p.waiters = [];
      try {
        if (await appendRecord(path, text)) await p.whenCreated();
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    }
    p.running = false;
    this.logs.delete(path);
  }
}
