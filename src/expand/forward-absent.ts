/*
 * expand/forward-absent.ts — the SMTP side's memory of the users the
 * privileged parent said have no ~/.forward (expandRecipientAsync()).
 *
 * Under privilege separation the SMTP side cannot enter a 0700 home, so
 * every RCPT to a local user used to cost a round trip to the parent (a
 * channel message each way, the parent's lstat, the expansion run twice),
 * although nearly every user has no ~/.forward. A "missing" answer is
 * remembered with the identity of the home folder as the SMTP side sees
 * it (stat of the folder itself, which needs no right inside it): device,
 * inode, mtime and ctime, in nanoseconds. Creating, renaming or linking a
 * ~/.forward into the folder changes its mtime; a chown or chmod of it,
 * its ctime; pointing a home symlink elsewhere, its device or inode: the
 * next RCPT asks the parent again. The stat is taken before asking, and
 * only a folder last changed more than 2 s before it is remembered (forward-cache.ts's racy()) (a
 * change within the same clock tick could leave the times unchanged: git's
 * "racily clean" entries). A remembered answer is asked again after
 * MAX_AGE_MS anyway, and at most MAX_ENTRIES users are kept, the oldest
 * going first. Anything but "missing" (a file, unsafe, an error) is never
 * remembered here: the parent reads it at every RCPT (it has its own cache,
 * forward-cache.ts, which checks the file itself).
 */
import { statSync } from 'node:fs';
import type { UserInfo } from '../users/system-users.js';
import { racy } from './forward-cache.js';

export const MAX_ENTRIES = 4096;
export const MAX_AGE_MS = 60_000;

/** A "missing" answer and the home it was given for. */
type Entry = { readonly stamp: string; readonly at: number };

export class ForwardAbsent {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly maxEntries = MAX_ENTRIES,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The identity of user's home folder now, or undefined when it cannot be
   * remembered (no such folder, an error, or changed within the last 2 s: racy()).
   */
  stamp(user: UserInfo): string | undefined {
    if (!user.home.startsWith('/')) return undefined;
    let st;
    try {
      st = statSync(user.home, { bigint: true, throwIfNoEntry: false });
    } catch {
      return undefined;
    }
    if (st === undefined || !st.isDirectory()) return undefined;
    if (racy(st, this.now())) return undefined;
    return `${user.uid}\0${user.home}\0${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}`;
  }

  /** Did the parent say user has no ~/.forward, with the home folder as it is now? */
  known(user: UserInfo): boolean {
    const e = this.entries.get(user.name);
    if (e === undefined) return false;
    if (this.now() - e.at < MAX_AGE_MS && this.stamp(user) === e.stamp) return true;
    this.entries.delete(user.name);
    return false;
  }

  /** The parent answered "missing" for user, whose home had `stamp` (from stamp(), taken before asking). */
  remember(name: string, stamp: string): void {
    this.entries.delete(name);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(name, { stamp, at: this.now() });
  }

  clear(): void {
    this.entries.clear();
  }
}
