/*
 * expand/forward-cache.ts — the privileged parent's memory of the
 * ~/.forward files it read (daemon/privsep/parent.ts asks it on every RCPT
 * to a user whose home the SMTP side cannot enter).
 *
 * Each lookup costs one lstat of ~/.forward: no such file is "missing" at
 * once (as readForwardFile() says for a missing home or file); otherwise a
 * remembered reading is used only while the file is the same one — same
 * device, inode, size, mtime and ctime (nanoseconds) — and the same user
 * (uid, home), and no older than MAX_AGE_MS. Any write, chmod, chown,
 * rename or replacement of the file changes one of them, so a changed
 * file is read again at once. A reading is only remembered when the file
 * was last changed more than RACY_MS before the lstat (taken before the
 * read): a change within the same clock tick as the lstat could otherwise
 * leave the identity unchanged (git's "racily clean" entries). A change
 * of the home folder alone (its owner or mode, which the safety rules
 * check) is seen within MAX_AGE_MS; replacing ~/.forward through it shows
 * at once. Errors (I/O) are never remembered. At most MAX_ENTRIES users;
 * the oldest reading goes first.
 */
import { lstatSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import type { UserInfo } from '../users/system-users.js';
import { readForwardFile, type ForwardRead } from './forward.js';

export const MAX_ENTRIES = 1024;
export const MAX_AGE_MS = 5_000;
const RACY_MS = 2_000;

interface Entry {
  readonly uid: number;
  readonly home: string;
  readonly id: string;
  readonly at: number;
  readonly read: ForwardRead;
}

export interface ForwardCacheOptions {
  readonly maxEntries?: number;
  readonly maxAgeMs?: number;
  /** The reading itself (tests count the reads). */
  readonly read?: (user: UserInfo) => ForwardRead;
  readonly now?: () => number;
}

/**
 * Was the file (or folder) changed less than RACY_MS before `now`? Its times then say too little: a change in
 * the same clock tick could leave them as they are (git's "racily clean" entries), so it is not remembered.
 */
export function racy(st: BigIntStats, now: number): boolean {
  const changedMs = Number((st.ctimeNs > st.mtimeNs ? st.ctimeNs : st.mtimeNs) / 1_000_000n);
  return now - changedMs <= RACY_MS;
}

const identity = (st: BigIntStats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;

export class ForwardCache {
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly maxAgeMs: number;
  private readonly readFile: (user: UserInfo) => ForwardRead;
  private readonly now: () => number;

  constructor(opts: ForwardCacheOptions = {}) {
    this.maxEntries = Math.max(1, opts.maxEntries ?? MAX_ENTRIES);
    this.maxAgeMs = opts.maxAgeMs ?? MAX_AGE_MS;
    this.readFile = opts.read ?? readForwardFile;
    this.now = opts.now ?? Date.now;
  }

  read(user: UserInfo): ForwardRead {
    if (!user.home.startsWith('/')) return { kind: 'missing' };
    let st: BigIntStats | undefined;
    try {
      // No file is the usual answer: told without an exception (and its stack).
      st = lstatSync(join(user.home, '.forward'), { bigint: true, throwIfNoEntry: false });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      this.entries.delete(user.name);
      if (code === 'ENOTDIR') return { kind: 'missing' };
      return this.readFile(user);
    }
    if (st === undefined) {
      this.entries.delete(user.name);
      return { kind: 'missing' };
    }
    const now = this.now();
    const id = identity(st);
    const hit = this.entries.get(user.name);
    if (hit !== undefined && hit.id === id && hit.uid === user.uid && hit.home === user.home && now - hit.at < this.maxAgeMs) return hit.read;
    this.entries.delete(user.name);
    const read = this.readFile(user);
    if (read.kind !== 'error' && !racy(st, now)) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
      this.entries.set(user.name, { uid: user.uid, home: user.home, id, at: now, read });
    }
    return read;
  }

  clear(): void {
    this.entries.clear();
  }
}
