/*
 * cli/install/system-user.ts — the system user install creates.
 *
 * `_postern` (and its group) is the unprivileged user smtpd's SMTP side
 * runs as when smtpd is started as root (docs/architecture.md, "Privilege
 * separation"); smtpd refuses to start as root without it. Created
 * with useradd(8) (shadow) as a system account without a home or a login
 * shell; into a staging root with `useradd --prefix ROOT`, which edits
 * ROOT/etc/passwd and friends without chrooting. Always an argument vector,
 * never a shell line.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Ids {
  readonly uid: number;
  readonly gid: number;
}

/** uid/gid of a user in ROOT/etc/passwd (undefined if absent). */
export function passwdEntry(root: string, name: string): Ids | undefined {
  for (const line of readText(join(root, 'etc/passwd')).split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 7) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

/** gid of a group in ROOT/etc/group (undefined if absent). */
export function groupId(root: string, name: string): number | undefined {
  for (const line of readText(join(root, 'etc/group')).split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 3) return Number(f[2]);
  }
  return undefined;
}

export function createSystemUser(root: string, name: string): void {
  const prefix = root === '/' ? [] : ['--prefix', root];
  run('useradd', [...prefix, '--system', '--user-group', '--home-dir', '/nonexistent', '--no-create-home', '--shell', '/usr/sbin/nologin', '--comment', 'Postern MTA', name]);
}

export function removeSystemUser(root: string, name: string): void {
  const prefix = root === '/' ? [] : ['--prefix', root];
  run('userdel', [...prefix, name]);
  // userdel removes the user's own group when USERGROUPS_ENAB is on; make sure.
  if (groupId(root, name) !== undefined) run('groupdel', [...prefix, name]);
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || `exit ${r.status}`).trim()}`);
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
