/*
 * filter/proc/spawn.ts — how a filter process (`filter NAME proc-exec`) is
 * started: `/bin/sh -c COMMAND` (configuration, never envelope data), as
 * `user` (default nobody) and its group (or `group`) when the starting
 * process is root.
 *
 * Under privilege separation the SMTP side runs as _postern and cannot
 * change users, so it does not start filters itself: setFilterSpawner()
 * (daemon/privsep/child.ts) makes it ask the privileged parent, which
 * starts the filter of that NAME from its own reading of the configuration
 * with spawnFilter() below, as the configured user, and relays its
 * standard input, output and error over the channel. What the SMTP side
 * gets looks like a child process (FilterChild).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { ProcDecl } from '../../config/filter-options.js';
import { NOBODY, SystemUsers } from '../../users/system-users.js';

/** What FilterProcess uses of a child process. */
export interface FilterChild {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  on(event: 'exit', fn: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  on(event: 'error', fn: (e: Error) => void): this;
  kill(signal?: NodeJS.Signals): boolean;
}

export type FilterSpawner = (decl: ProcDecl) => FilterChild;

let spawner: FilterSpawner | undefined;

export function setFilterSpawner(s: FilterSpawner | undefined): void {
  spawner = s;
}

/** Start the filter process of `decl`: through the privileged parent when one is set, else here. */
export function startFilter(decl: ProcDecl): FilterChild {
  return (spawner ?? spawnFilter)(decl);
}

/** Start it in this process (throws with one line when its user or group does not exist). */
export function spawnFilter(decl: ProcDecl): FilterChild {
  const ids = credentials(decl);
  const child = spawn('/bin/sh', ['-c', decl.command], { stdio: ['pipe', 'pipe', 'pipe'], ...(ids ?? {}) });
  return child as unknown as FilterChild;
}

/** The ids the process runs as: when this process is root, `user` (default nobody) and `group` (default the user's). */
function credentials(decl: ProcDecl): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const users = new SystemUsers();
  const u = users.lookup(decl.user ?? NOBODY);
  if (u === undefined || 'error' in u) throw new Error(`filter ${decl.name}: no user ${decl.user ?? NOBODY}`);
  let gid = u.gid;
  if (decl.group !== undefined) {
    const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.split(':')[0] === decl.group);
    if (line === undefined) throw new Error(`filter ${decl.name}: no group ${decl.group}`);
    gid = Number(line.split(':')[2]);
  }
  return { uid: u.uid, gid };
}
