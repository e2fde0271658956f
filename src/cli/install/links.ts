/*
 * cli/install/links.ts — the wrappers and the MTA names on the PATH.
 *
 * A wrapper is a three-line sh script, LIBEXEC/NAME, that runs the
 * package's bin/postern.js with the absolute path of the interpreter that
 * ran `postern install` (process.execPath): cron's PATH, sendmail called
 * from PHP or a MUA, and systemd all find it without `node` on their PATH.
 * Its only words are the two paths (single-quoted) and the command name.
 *
 * The names (/usr/sbin/sendmail, /usr/bin/mailq …) are symbolic links to
 * the wrappers: through Debian's update-alternatives (one group named
 * "sendmail" with the others as slaves) when ROOT/var/lib/dpkg/alternatives
 * exists, else plain links. A name that exists and is not ours (another
 * MTA's sendmail) is a conflict: install stops before changing anything,
 * unless --force, which moves the file aside (NAME.postern-saved) and says
 * so; uninstall puts it back.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { staged, type Layout } from './layout.js';

export const SAVED_SUFFIX = '.postern-saved';
export const ALTERNATIVE_NAME = 'sendmail';
const PRIORITY = '25';

export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function wrapperText(l: Layout, name: string): string {
  const sub = name === 'postern' ? '' : ` ${name}`;
  return `#!/bin/sh
# ${name} — Postern's ${name === 'postern' ? 'commands' : name}; written by "postern install" (removed by "postern uninstall").
# The interpreter's absolute path, so that it runs from cron's PATH too.
exec ${shQuote(l.node)} ${shQuote(l.postern)}${sub} "$@"
`;
}

export function wrapperPath(l: Layout, name: string): string {
  return join(l.libexec, name);
}

/** Does update-alternatives manage links under this root? */
export function useAlternatives(l: Layout): boolean {
  return existsSync(staged(l, '/var/lib/dpkg/alternatives')) && existsSync('/usr/bin/update-alternatives');
}

/** Names that exist and are not ours; empty = no conflict. */
export function conflicts(l: Layout, alternatives: boolean): string[] {
  const out: string[] = [];
  for (const link of l.links) {
    const p = staged(l, link.path);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) {
      const t = readlinkSync(p);
      if (t === wrapperPath(l, link.name)) continue;
      if (alternatives && t === `/etc/alternatives/${link.name}`) continue;
      out.push(`${link.path} (a link to ${t})`);
    } else out.push(`${link.path} (${st.isDirectory() ? 'a folder' : 'a file'})`);
  }
  return out;
}

/** update-alternatives --install with every name; root's flags when staged. */
export function installAlternatives(l: Layout): void {
  const [master, ...slaves] = l.links;
  if (!master) return;
  const args = [...rootArgs(l), '--install', master.path, ALTERNATIVE_NAME, wrapperPath(l, master.name), PRIORITY];
  for (const s of slaves) args.push('--slave', s.path, s.name, wrapperPath(l, s.name));
  alternatives(args);
}

export function removeAlternatives(l: Layout, path: string): void {
  alternatives([...rootArgs(l), '--remove', ALTERNATIVE_NAME, path]);
}

function rootArgs(l: Layout): string[] {
  return l.root === '/' ? [] : ['--root', l.root];
}

function alternatives(args: string[]): void {
  const r = spawnSync('/usr/bin/update-alternatives', ['--quiet', ...args], { encoding: 'utf8' });
  if (r.error) throw new Error(`update-alternatives: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`update-alternatives ${args.join(' ')}: ${(r.stderr || `exit ${r.status}`).trim()}`);
}
