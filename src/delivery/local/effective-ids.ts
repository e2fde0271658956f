/*
 * delivery/local/effective-ids.ts — switch a root process's EFFECTIVE ids
 * to a recipient's for one job and back (the delivery worker's side,
 * deliver-worker.ts), as Postfix's local(8) does per delivery.
 *
 *   enter:  setgroups (initgroups(3) — its list kept for a few seconds,
 *           user-groups.ts —,
 *           or [gid] for virtual users; plus the
 *           mail spool's group in 'user+group' mode), setegid, seteuid —
 *           in 'root-open' mode (mbox in a root-only spool) the last two
 *           wait until the mailbox is locked and open (hooks);
 *   leave:  seteuid(0), setegid(0), setgroups([]);
 *   switch: seteuid(0), then enter the next user (rootAgain(): between two
 *           users of a worker's batch, whose groups and egid enter replaces).
 *
 * The real and saved ids stay 0, which is what lets the worker come back;
 * so nothing the job starts may run with them (commands go through setpriv,
 * mda.ts). On Linux, glibc applies every set*id call to all the threads of
 * the process (the kernel keeps credentials per thread), so libuv's thread
 * pool, where Node's fs calls run, uses the same ids as the main thread —
 * and that is why a worker runs ONE job at a time: two jobs in one process
 * would share one set of ids.
 */
import type { MboxHooks } from './mbox.js';
import type { Credentials } from './job.js';
import { cachedGroups, keepGroups } from './user-groups.js';

/** The POSIX credential calls (present on Linux; optional in Node's types). */
export interface Posix {
  initgroups(user: string, extraGroup: number): void;
  setgroups(groups: number[]): void;
  getgroups(): number[];
  setgid(id: number): void;
  setuid(id: number): void;
  setegid(id: number): void;
  seteuid(id: number): void;
  getuid(): number;
  geteuid(): number;
  getgid(): number;
  getegid(): number;
}
export const posix = process as unknown as Posix;

/** Is this process root, real and effective? */
export function isRoot(): boolean {
  return posix.getuid() === 0 && posix.geteuid() === 0;
}

function toUser(c: Credentials): void {
  posix.setegid(c.gid);
  posix.seteuid(c.uid);
  if (posix.geteuid() !== c.uid || posix.getegid() !== c.gid) throw new Error('could not switch to the user');
}

/**
 * The supplementary groups this process was last given by setGroups(), as a key; undefined when not known
 * (at start, after initgroups(3) or any other change).
 */
let supplementary: string | undefined;

/**
 * Set the supplementary groups to `groups` less `egid`, unless they are that already. The effective gid (which
 * enterUser() sets next) grants what membership of it would, so a user whose only group is its own gets none —
 * as root has none between jobs — and a switch between two such users, or from root to one, makes no setgroups
 * call: glibc signals each set*id call to every thread of the process (deliver-worker.ts).
 */
function setGroups(groups: readonly number[], egid: number): void {
  const list = groups.filter((g) => g !== egid);
  const key = list.join(',');
  if (key === supplementary) return;
  supplementary = undefined;
  posix.setgroups(list);
  supplementary = key;
}

/** Become the user for one job (effective ids only); the hooks a root-open mbox job needs. */
export function enterUser(c: Credentials, kind: string): MboxHooks {
  const now = performance.now();
  const cacheable = c.initgroups && c.mode === 'user';
  const cached = cacheable ? cachedGroups(c.user, c.gid, now) : undefined;
  const fresh = cached !== undefined;
  if (fresh) setGroups(cached, c.gid);
  else if (c.initgroups) {
    supplementary = undefined;
    posix.initgroups(c.user, c.gid);
  } else setGroups([c.gid], c.gid);
  if (c.mode === 'user+group' && c.spoolGid !== undefined) {
    // Node's getgroups() adds the effective gid when it is not a member: switch it first, or root's group would come along.
    posix.setegid(c.gid);
    supplementary = undefined;
    posix.setgroups([...new Set([...posix.getgroups(), c.spoolGid])]);
  }
  if (c.mode === 'root-open' && kind === 'mbox') {
    // Lock and open with root's rights, write with the user's (quota), unlock with root's again.
    return { afterOpen: () => toUser(c), beforeUnlock: () => backToRoot() };
  }
  toUser(c);
  // Read once the egid is the user's own (Node's getgroups() adds the egid: root's group must not come along).
  if (cacheable && !fresh) keepGroups(c.user, c.gid, posix.getgroups(), now);
  return {};
}

function backToRoot(): void {
  if (posix.geteuid() !== 0) posix.seteuid(0);
  posix.setegid(0);
}

/** Root's effective uid again, keeping the user's groups and egid until enterUser() replaces them (a switch between two users). */
export function rootAgain(): void {
  if (posix.geteuid() !== 0) posix.seteuid(0);
  if (posix.geteuid() !== 0) throw new Error('could not switch back to root');
}

/** Root again, with no supplementary groups; throws if that did not work (the worker must then exit). */
export function leaveUser(): void {
  backToRoot();
  setGroups([], 0);
  // getgroups() reports the effective gid (0) too: nothing else may be left.
  if (posix.geteuid() !== 0 || posix.getegid() !== 0 || posix.getgroups().some((g) => g !== 0)) throw new Error('could not switch back to root');
}
