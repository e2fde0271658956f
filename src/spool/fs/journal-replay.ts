/*
 * spool/fs/journal-replay.ts — bringing the queue up to date from the
 * journal after a crash (run by FsSpool.open(), before recovery.ts).
 *
 * Every segment left in journal/ belongs to a process that stopped without
 * its last checkpoint, so the message files its records describe may be
 * missing, cut short, or not yet on stable storage. For each msgid, the last
 * record decides: a message record ("M") whose queue file is not there and
 * whole is written again (temp file, fdatasync, rename, folder fsync); a
 * tombstone ("T") means the message was removed, and it stays removed.
 * Then the segments are deleted. A record cut short by the crash belongs
 * to a batch no client was told about and is ignored.
 *
 * A message delivered and removed after the last checkpoint, whose
 * tombstone had not reached the disk, comes back: it is delivered twice
 * (the one cost of a crash the contract allows), never lost.
 */
import { closeSync, fdatasyncSync, openSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isErrno } from '../errors.js';
import { SEGMENT_RE, parseSegment, type JournalRecord } from './journal-format.js';
import type { Layout } from './layout.js';
import { checkMessageBytes } from './message-file.js';
import { fsyncPath } from './sync-path.js';

export interface ReplayReport {
  readonly segments: number;
  /** Message files written again from the journal. */
  readonly restored: number;
}

/** Whether the queue already holds exactly these bytes' length under msgid (a whole file was written). */
function alreadyThere(path: string, bytes: Buffer, msgid: string): boolean {
  try {
    if (statSync(path).size !== bytes.length) return false;
    return checkMessageBytes(readFileSync(path), msgid) === null;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

function writeDurably(tmp: string, final: string, bytes: Buffer): void {
  const fd = openSync(tmp, 'w', 0o600);
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, final);
}

/** Segment names in the order they were written: by pid, then by sequence number. */
function segmentOrder(a: string, b: string): number {
  const [pa, sa] = a.split('-') as [string, string];
  const [pb, sb] = b.split('-') as [string, string];
  return Number(pa) - Number(pb) || (sa < sb ? -1 : sa > sb ? 1 : 0);
}

export function replayJournal(layout: Layout, log: (line: string) => void): ReplayReport {
  const names = readdirSync(layout.journal).filter((n) => SEGMENT_RE.test(n)).sort(segmentOrder);
  if (names.length === 0) return { segments: 0, restored: 0 };
  const last = new Map<string, JournalRecord>();
  for (const name of names) {
    const { records, trailing } = parseSegment(readFileSync(join(layout.journal, name)));
    for (const r of records) last.set(r.msgid, r);
    if (trailing > 0) log(`spool: journal/${name}: ignored the last ${trailing} byte(s), a batch cut short (never acknowledged)`);
  }
  const touched = new Set<string>();
  let restored = 0;
  for (const [msgid, r] of last) {
    if (r.type !== 'M') continue;
    const bad = checkMessageBytes(r.payload, msgid);
    if (bad !== null) {
      log(`spool: journal: record of ${msgid} is damaged (${bad}); not restored`);
      continue;
    }
    const final = layout.messagePath(msgid);
    if (alreadyThere(final, r.payload, msgid)) continue;
    writeDurably(layout.incomingPath(msgid), final, r.payload);
    touched.add(dirname(final));
    restored++;
  }
  for (const dir of touched) fsyncPath(dir);
  for (const name of names) unlinkSync(join(layout.journal, name));
  fsyncPath(layout.journal);
  if (restored > 0) log(`spool: restored ${restored} message file(s) from the journal`);
  return { segments: names.length, restored };
}
