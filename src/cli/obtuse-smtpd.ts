/*
 * cli/obtuse-smtpd.ts — `smtpd -c HOME …` (Obtuse smtpd, seed 001), the
 * launcher: run as root, it checks what it was given — the home, its rules
 * file, the -u/-g user and group — and starts the confined receiver in a
 * private mount namespace (daemon/obtuse/confine.ts says how), staying in
 * the foreground as its parent: SIGTERM/SIGINT are passed on, and its exit
 * status is the receiver's.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObtuseSmtpdOptions } from './smtpd-mode.js';
import { RULES_FILE } from '../daemon/obtuse/receiver.js';

/** The stage script (confine, receive) beside this file. */
export const STAGE_SCRIPT = fileURLToPath(new URL('./obtuse-stage.js', import.meta.url));

/** A user's or group's number from its name or number (getent), or undefined. */
export function resolveId(db: 'passwd' | 'group', name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  const r = spawnSync('getent', [db, name], { encoding: 'utf8' });
  const id = r.status === 0 ? Number(r.stdout.split(':')[2]) : NaN;
  return Number.isInteger(id) ? id : undefined;
}

/** What the confine stage needs, as one JSON argument. */
export interface StageSpec extends ObtuseSmtpdOptions {
  readonly uid: number;
  readonly gid: number;
  readonly root: string;
}

export function obtuseSmtpdMain(o: ObtuseSmtpdOptions, fail: (msg: string) => never): void {
  if (process.getuid?.() !== 0) fail('Obtuse smtpd (-c) must be started as root: it binds the SMTP port, confines itself to the home and then runs as -u/-g');
  if (!existsSync(o.home) || !statSync(o.home).isDirectory()) fail(`-c ${o.home}: no such folder`);
  if (/["\\\n]/.test(o.home + o.spool)) fail(`-c/-d: the path may not contain quotes, backslashes or newlines`);
  if (!existsSync(join(o.home, RULES_FILE))) fail(`${join(o.home, RULES_FILE)}: no such file (every recipient is checked against it)`);
  const uid = resolveId('passwd', o.user);
  if (uid === undefined) fail(`-u ${o.user}: no such user`);
  const gid = resolveId('group', o.group);
  if (gid === undefined) fail(`-g ${o.group}: no such group`);
  if (uid === 0) fail(`-u ${o.user}: the receiver must not run as root`);
  const root = mkdtempSync(join(tmpdir(), 'postern-obtuse-root-'));
  const spec: StageSpec = { ...o, uid, gid, root };
  const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, STAGE_SCRIPT, 'confine', JSON.stringify(spec)], { stdio: 'inherit' });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => fail(`cannot run unshare: ${e.message}`));
  child.on('exit', (code, signal) => {
    // The mounts lived in the namespace; on the host the folder was always empty.
    try {
      rmdirSync(root);
    } catch {
      /* left behind: an empty folder */
    }
    process.exit(code ?? (signal ? 1 : 0));
  });
}
