/*
 * bench/users.ts — the unprivileged local users mail is delivered to:
 * pbench0 … pbench99 (system users with no login shell), created by the
 * harness when missing (useradd, as root), their homes under
 * /var/tmp/postern-bench-users/, 0700 and their own, each with a
 * ~/.procmailrc that files everything into ~/Maildir/ (the mda scenario).
 * Plus one user, pbenchmail, that owns the harness's Dovecot mailboxes
 * (Dovecot's mail_uid, as a virtual-mail setup has).
 *
 * Between cells each used user's ~/Maildir is renamed into a trash folder
 * (a rename, not a deletion: see bench/run.ts's trash) so that the next
 * server starts from empty mailboxes. Counting a maildir is listing its
 * new/ (nobody reads these mailboxes, so messages stay there).
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, run } from './util.js';

export const USER_PREFIX = 'pbench';
/** One message to 100 users needs 100. */
export const USER_COUNT = 100;
export const MAIL_OWNER = 'pbenchmail';
export const HOMES = '/var/tmp/postern-bench-users';

export const userName = (i: number): string => `${USER_PREFIX}${i}`;
export const homeOf = (name: string): string => join(HOMES, name);

/** The procmailrc of every bench user: everything into ~/Maildir/ (a trailing slash: maildir delivery). */
export const PROCMAILRC = '# Written by bench/users.ts.\nDEFAULT=$HOME/Maildir/\n';

export interface Ids {
  readonly uid: number;
  readonly gid: number;
}

/** uid and gid of a user, or undefined when there is none. */
export function idsOf(name: string): Ids | undefined {
  const r = run('getent', ['passwd', name]);
  if (r.status !== 0) return undefined;
  const f = r.stdout.trim().split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

function ensureUser(name: string, home: string, log: string[]): Ids | string {
  let ids = idsOf(name);
  if (!ids) {
    const r = run('useradd', ['--system', '--no-create-home', '--home-dir', home, '--shell', '/usr/sbin/nologin', '--user-group', name]);
    if (r.status !== 0) return `useradd ${name} failed: ${r.stderr.trim()}`;
    log.push(`created user ${name}`);
    ids = idsOf(name);
    if (!ids) return `${name}: created but not found`;
  }
  mkdirSync(home, { recursive: true });
  chownSync(home, ids.uid, ids.gid);
  chmodSync(home, 0o700);
  return ids;
}

/**
 * Makes the bench users and their homes (idempotent); undefined when done,
 * else why not. Needs root.
 */
export function ensureBenchUsers(log: string[]): string | undefined {
  if (!isRoot()) return 'needs root (creates the local users mail is delivered to)';
  mkdirSync(HOMES, { recursive: true });
  chmodSync(HOMES, 0o755);
  let created = 0;
  for (let i = 0; i < USER_COUNT; i++) {
    const name = userName(i);
    const had = idsOf(name) !== undefined;
    const ids = ensureUser(name, homeOf(name), []);
    if (typeof ids === 'string') return ids;
    if (!had) created++;
    const rc = join(homeOf(name), '.procmailrc');
    writeFileSync(rc, PROCMAILRC, { mode: 0o644 });
    chownSync(rc, ids.uid, ids.gid);
    chmodSync(rc, 0o644);
  }
  if (created > 0) log.push(`created ${created} users ${userName(0)}…${userName(USER_COUNT - 1)} (homes in ${HOMES})`);
  return ensureMailOwner(log);
}

/** The owner of the harness's Dovecot mailboxes (idempotent); undefined when done, else why not. */
export function ensureMailOwner(log: string[]): string | undefined {
  if (!isRoot()) return 'needs root';
  mkdirSync(HOMES, { recursive: true });
  chmodSync(HOMES, 0o755);
  const owner = ensureUser(MAIL_OWNER, join(HOMES, MAIL_OWNER), log);
  return typeof owner === 'string' ? owner : undefined;
}

/** Why the users are not there, or undefined when they are (no changes made). */
export function benchUsersMissing(): string | undefined {
  if (!isRoot()) return 'needs root (delivers as unprivileged local users)';
  if (!idsOf(userName(USER_COUNT - 1)) || !idsOf(MAIL_OWNER)) return `the bench users (${userName(0)}…) are missing (bench/setup.ts creates them)`;
  return undefined;
}

/** Files in DIR/new (0 when it is missing). */
export function countNew(maildir: string): number {
  try {
    return readdirSync(join(maildir, 'new')).length;
  } catch {
    return 0;
  }
}

/** Messages in the ~/Maildir of users 0 … n-1. */
export function countUserMail(n: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += countNew(join(homeOf(userName(i)), 'Maildir'));
  return total;
}

/** The newest inode change time (ms since the epoch: the rename or link into new/) of a file in the given maildirs' new/ (0 if none). */
export function newestCtimeMs(maildirs: readonly string[]): number {
  let newest = 0;
  for (const m of maildirs) {
    const dir = join(m, 'new');
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const f of names) {
      try {
        const t = statSync(join(dir, f)).ctimeMs;
        if (t > newest) newest = t;
      } catch {
        /* gone */
      }
    }
  }
  return newest;
}

export const userMaildirs = (n: number): string[] => Array.from({ length: n }, (_, i) => join(homeOf(userName(i)), 'Maildir'));

/** Moves every bench user's ~/Maildir into `trashDir` (created), so that the next cell starts empty. */
export function retireUserMail(trashDir: string): void {
  for (let i = 0; i < USER_COUNT; i++) {
    const m = join(homeOf(userName(i)), 'Maildir');
    if (!existsSync(m)) continue;
    mkdirSync(trashDir, { recursive: true });
    renameSync(m, join(trashDir, userName(i)));
  }
}
