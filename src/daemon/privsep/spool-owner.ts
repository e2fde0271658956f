/*
 * daemon/privsep/spool-owner.ts — the spool made the unprivileged user's
 * before the SMTP side starts (run by the privileged parent, as root).
 *
 *   QUEUE          owner USER:GROUP, 0711 (users reach offline/ and enqueue.sock, nothing else)
 *   QUEUE/offline  owner USER:GROUP, 1733 (anyone drops a file, nobody lists; made by the spool)
 *   everything else under QUEUE: USER:GROUP, as the SMTP side writes it (0700 folders, 0600 files)
 *
 * A spool that belonged to root (Postern before privilege separation, or
 * a daemon run as root without it) is given to the user once, whole — but
 * for offline/'s files, whose owner is the identity of the user who ran
 * sendmail. Each folder above the spool must let the user through (search
 * permission): otherwise the start is refused, naming the folder.
 */
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export interface SpoolOwner {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Make `root` the user's; throws with the reason (one line). */
export function prepareSpool(queuePath: string, u: SpoolOwner): void {
  const root = resolve(queuePath);
  // Folders made above a new spool let everyone through (as /var/spool); the spool itself is given below.
  mkdirSync(dirname(root), { recursive: true, mode: 0o755 });
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const wall = firstBlocked(dirname(root), u);
  if (wall !== undefined) throw new Error(`spool ${root}: the folder ${wall} does not let ${u.name} through (chmod o+x ${wall}, or move the queue)`);
  const before = lstatSync(root);
  if (!before.isDirectory()) throw new Error(`spool ${root} is not a folder`);
  if (before.uid !== u.uid || before.gid !== u.gid) giveAll(root, u, true);
  else for (const n of readdirSync(root)) give(join(root, n), u);
  chownSync(root, u.uid, u.gid);
  chmodSync(root, 0o711);
  // offline/ is made by the spool at its first start, and given mode 1733 by the SMTP side (daemon.ts).
  const offline = join(root, 'offline');
  if (existsSync(offline)) {
    chownSync(offline, u.uid, u.gid);
    chmodSync(offline, 0o1733);
  }
}

/** The first folder from `dir` up to / that the user may not pass (search permission), or undefined. */
export function firstBlocked(dir: string, u: { readonly uid: number; readonly gid: number }): string | undefined {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const st = statSync(d);
    const through = st.mode & 0o001 || (st.uid === u.uid && st.mode & 0o100) || (st.gid === u.gid && st.mode & 0o010);
    if (!through) return d;
    if (d === dirname(d)) return undefined;
  }
}

function give(path: string, u: SpoolOwner): void {
  const st = lstatSync(path);
  if (st.uid !== u.uid || st.gid !== u.gid) chownSync(path, u.uid, u.gid);
}

function giveAll(dir: string, u: SpoolOwner, top: boolean): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isSymbolicLink()) continue;
    if (top && e.name === 'offline' && e.isDirectory()) continue; // its files keep their owners
    give(p, u);
    if (e.isDirectory()) giveAll(p, u, false);
  }
}
