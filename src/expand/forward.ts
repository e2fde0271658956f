/*
 * expand/forward.ts — reading a local user's ~/.forward, with the safety
 * rules of OpenSMTPD and Postfix (and sendmail before them):
 *
 *   - the home folder is owned by the user or root and not world-writable;
 *   - ~/.forward is a regular file (not a link: opened with O_NOFOLLOW,
 *     then checked on the open descriptor, so it cannot be swapped between
 *     check and read), owned by the user or root, and not writable by its
 *     group or others;
 *   - at most MAX_FORWARD_BYTES.
 * A file that breaks a rule is "unsafe": ignored (the mail goes to the
 * mailbox; the reason is among the expansion's dropped branches), as
 * sendmail does; so is one the daemon may not read (EACCES: a daemon run
 * by an ordinary user, `npm start`, cannot see into other homes). Under
 * privilege separation the SMTP side (_postern) cannot enter a 0700 home:
 * it asks the privileged parent (root), which runs this same function for
 * a user it looks up itself by name (forwardLookup(), set by
 * daemon/privsep/child.ts) — as OpenSMTPD's lookup process asks its
 * parent to open ~/.forward. A file
 * that cannot be read for another reason (I/O, a home on a server that
 * does not answer) is a temporary failure (the recipient is deferred, no
 * mail is misdelivered while it is fixed). The lines are parsed like an
 * :include: file (expand/include.ts); the :include: files it names are
 * read with the user's ids (include-as.ts) — by the parent, which sends
 * them along, under privilege separation.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { AliasNode } from '../table/aliases.js';
import type { UserInfo } from '../users/system-users.js';
import { parseDestinationLines } from './include.js';
import type { IncludeEntry } from './include-as.js';

export const MAX_FORWARD_BYTES = 64 * 1024;

export type ForwardRead =
  /** includes: the :include: files it names, read as the user (include-as.ts) by the privileged parent. */
  | { readonly kind: 'ok'; readonly path: string; readonly nodes: readonly AliasNode[]; readonly includes?: readonly IncludeEntry[] }
  | { readonly kind: 'missing' }
  /** denied: this process may not read it (EACCES); under privilege separation the parent may. */
  | { readonly kind: 'unsafe'; readonly path: string; readonly reason: string; readonly denied?: true }
  | { readonly kind: 'error'; readonly reason: string };

export function readForwardFile(user: UserInfo): ForwardRead {
  if (!user.home.startsWith('/')) return { kind: 'missing' };
  const path = join(user.home, '.forward');
  const owner = (uid: number): boolean => uid === user.uid || uid === 0;
  let home;
  try {
    home = statSync(user.home);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    if (code === 'EACCES') return { kind: 'unsafe', path, reason: `${user.home}: permission denied (a daemon not started as root cannot read other users' homes)`, denied: true };
    return { kind: 'error', reason: `${user.home}: ${(e as Error).message}` };
  }
  // A home this process cannot search is told by its mode, without an open that fails (an exception, a stack).
  const denied = { kind: 'unsafe', path, reason: `${path}: permission denied (a daemon not started as root cannot read other users' homes)`, denied: true } as const;
  if (!searchable(home)) return denied;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    if (code === 'ELOOP') return { kind: 'unsafe', path, reason: `${path} is a symbolic link` };
    if (code === 'EACCES') return denied;
    return { kind: 'error', reason: `${path}: ${(e as Error).message}` };
  }
  try {
    if (!owner(home.uid)) return { kind: 'unsafe', path, reason: `${user.home} belongs to uid ${home.uid}, not to ${user.name} or root` };
    if (home.mode & 0o002) return { kind: 'unsafe', path, reason: `${user.home} is world-writable` };
    const st = fstatSync(fd);
    if (!st.isFile()) return { kind: 'unsafe', path, reason: `${path} is not a regular file` };
    if (!owner(st.uid)) return { kind: 'unsafe', path, reason: `${path} belongs to uid ${st.uid}, not to ${user.name} or root` };
    if (st.mode & 0o022) return { kind: 'unsafe', path, reason: `${path} is writable by its group or others (mode ${(st.mode & 0o777).toString(8)})` };
    if (st.size > MAX_FORWARD_BYTES) return { kind: 'unsafe', path, reason: `${path} is larger than ${MAX_FORWARD_BYTES} bytes` };
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    const r = parseDestinationLines(path, buf.subarray(0, got).toString('utf8'));
    if (typeof r === 'string') return { kind: 'error', reason: r };
    return { kind: 'ok', path, nodes: r };
  } catch (e) {
    return { kind: 'error', reason: `${path}: ${(e as Error).message}` };
  } finally {
    closeSync(fd);
  }
}

/**
 * May this process enter the folder? False only when its mode says so for certain: not root, and the owner's
 * search bit unset for its owner, or neither the group's nor others' set for anyone else (the group check is
 * left to open(2)).
 */
function searchable(st: Stats): boolean {
  const euid = process.geteuid?.();
  if (euid === undefined || euid === 0) return true;
  if (st.uid === euid) return (st.mode & 0o100) !== 0;
  return (st.mode & 0o011) !== 0;
}

/** Under privilege separation: the privileged parent's reading of a user's ~/.forward, by user name (never a path). */
export type ForwardLookup = (user: string) => Promise<ForwardRead>;

let lookup: ForwardLookup | undefined;

export function setForwardLookup(l: ForwardLookup | undefined): void {
  lookup = l;
}

export function forwardLookup(): ForwardLookup | undefined {
  return lookup;
}
