/*
 * delivery/local/user-groups.ts — a system user's supplementary groups as
 * initgroups(3) finds them, kept for GROUPS_TTL_MS.
 *
 * initgroups reads the group database at every call: a fifth of a delivery
 * worker's time when it switches users for every delivery (effective-ids.ts),
 * and about 1 ms of every command the parent starts when setpriv does it
 * (`--init-groups`, mda.ts). Both keep the list it gave for a few seconds
 * and then pass exactly those ids (setgroups, `setpriv --groups=LIST`); a
 * change of a user's groups is seen after GROUPS_TTL_MS, as with a running
 * Postfix local(8) for the length of its process.
 *
 * groupsOf() is the root parent's side: it has no user's ids of its own to
 * switch, so it calls initgroups on itself, reads the kernel's list from
 * /proc/self/status (Node's getgroups() adds the effective gid, root's 0,
 * which the user may or may not have) and puts its own list back — all in
 * one synchronous step, so no command is started in between. Meanwhile the
 * thread pool's file calls keep root's uid, gid and capabilities: extra
 * groups change nothing for them.
 */
import { readFileSync } from 'node:fs';

/** initgroups/setgroups (Linux; optional in Node's types — effective-ids.ts has the full set and imports this file). */
const posix = process as unknown as { initgroups(user: string, extraGroup: number): void; setgroups(groups: readonly number[]): void };

export const GROUPS_TTL_MS = 5000;
const GROUP_CACHE_MAX = 1000;
const cache = new Map<string, { readonly groups: readonly number[]; readonly until: number }>();

function key(user: string, gid: number): string {
  return `${gid}:${user}`;
}

/** The list kept for this user and primary group, if still fresh. */
export function cachedGroups(user: string, gid: number, now = performance.now()): readonly number[] | undefined {
  const hit = cache.get(key(user, gid));
  return hit !== undefined && hit.until > now ? hit.groups : undefined;
}

/** Keep a list initgroups(user, gid) just gave, for GROUPS_TTL_MS. */
export function keepGroups(user: string, gid: number, groups: readonly number[], now = performance.now()): void {
  if (cache.size >= GROUP_CACHE_MAX) cache.clear();
  cache.set(key(user, gid), { groups, until: now + GROUPS_TTL_MS });
}

/** This process's supplementary groups as the kernel holds them (no effective gid added). */
export function kernelGroups(): number[] {
  const line = /^Groups:(.*)$/m.exec(readFileSync('/proc/self/status', 'latin1'));
  if (!line) throw new Error('no Groups: line in /proc/self/status');
  return (line[1] as string).trim().split(/\s+/).filter((w) => w !== '').map(Number);
}

/**
 * A root process's way to the user's groups without becoming the user: the kept list, else initgroups on
 * itself, the kernel's list, and its own groups back. Undefined when the lookup fails (the caller then lets
 * setpriv --init-groups look, and fail, itself); throws only if its own groups could not be put back.
 */
export function groupsOf(user: string, gid: number): readonly number[] | undefined {
  const now = performance.now();
  const hit = cachedGroups(user, gid, now);
  if (hit) return hit;
  const own = kernelGroups();
  let groups: number[] | undefined;
  try {
    posix.initgroups(user, gid);
    groups = kernelGroups();
  } catch {
    groups = undefined;
  } finally {
    posix.setgroups(own);
  }
  if (kernelGroups().join(',') !== own.join(',')) throw new Error('could not restore the process groups');
  if (groups === undefined || groups.length === 0) return undefined;
  keepGroups(user, gid, groups, now);
  return groups;
}
