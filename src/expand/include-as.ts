/*
 * expand/include-as.ts — the :include: files named in a user's ~/.forward
 * (and in the files those include), read with the user's ids, never
 * root's, as Postfix's local(8) reads them with the recipient's
 * privileges: a user must not make the daemon read /etc/shadow, another
 * user's list or the spool on their behalf.
 *
 * Root cannot switch ids for one read in a Node.js process (seteuid would
 * switch every thread of libuv's pool at once), so a small reader
 * (include-reader.ts) runs as the user — through setpriv with the user's
 * groups and no capabilities, as mda.ts runs commands, or with Node's uid
 * and gid options where setpriv is missing — reads the tree of include
 * files with include.ts's rules (regular file, size, group/world-writable
 * = unsafe) and prints what it read: the raw text and the mode bits, one
 * JSON document. The caller (root) trusts none of it but the text, which
 * it parses itself; a reader that prints nonsense is a temporary failure.
 *
 * A process that is not root reads the files itself: it holds no more than
 * its own rights (a daemon started by an ordinary user, `npm start`).
 * Under privilege separation the SMTP side never reads them: the
 * privileged parent sends them along with the ~/.forward (forward.ts).
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { UserInfo } from '../users/system-users.js';
import type { AliasNode } from '../table/aliases.js';
import { parseDestinationLines, readIncludeText, MAX_INCLUDE_BYTES, type IncludeRead } from './include.js';

export const READER_PATH = fileURLToPath(new URL('./include-reader.js', import.meta.url));
const SETPRIV = '/usr/bin/setpriv';
/** Include files read for one ~/.forward, nested ones counted. */
export const MAX_INCLUDE_FILES = 32;
const READER_TIMEOUT_MS = 10_000;

export interface IncludeEntry {
  readonly path: string;
  readonly read: IncludeRead;
}

/** What the reader prints per file: the raw text, never parsed destinations (those the caller makes). */
export type RawRead = { readonly path: string; readonly kind: 'ok'; readonly text: string; readonly unsafe: boolean } | { readonly path: string; readonly kind: 'missing' | 'error'; readonly reason: string };

/** The :include: paths in a list of destinations. */
export function includePaths(nodes: readonly AliasNode[]): string[] {
  return nodes.flatMap((n) => (n.kind === 'include' ? [n.path] : []));
}

/** Every include file reachable from `paths`, at most MAX_INCLUDE_FILES, read as whoever runs this (the reader's work). */
export function readIncludeTree(paths: readonly string[]): RawRead[] {
  const out: RawRead[] = [];
  const queue = [...new Set(paths)];
  const seen = new Set(queue);
  while (queue.length > 0 && out.length < MAX_INCLUDE_FILES) {
    const path = queue.shift() as string;
    const r = readIncludeText(path);
    if (r.kind !== 'ok') {
      out.push({ path, kind: r.kind, reason: r.reason });
      continue;
    }
    out.push({ path, kind: 'ok', text: r.text, unsafe: r.unsafe });
    const nodes = parseDestinationLines(path, r.text);
    if (typeof nodes === 'string') continue;
    for (const p of includePaths(nodes)) {
      if (seen.has(p)) continue;
      queue.push(p);
      seen.add(p);
    }
  }
  return out;
}

/** The reader's output, checked and parsed here; a string says what is wrong. */
export function parseReaderOutput(stdout: string): IncludeEntry[] | string {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    return 'the include reader printed no JSON';
  }
  if (!Array.isArray(doc) || doc.length > MAX_INCLUDE_FILES) return 'the include reader printed nonsense';
  const out: IncludeEntry[] = [];
  for (const e of doc as Record<string, unknown>[]) {
    const path = e['path'];
    if (typeof path !== 'string' || !path.startsWith('/')) return 'the include reader printed nonsense';
    if (e['kind'] === 'ok' && typeof e['text'] === 'string' && e['text'].length <= MAX_INCLUDE_BYTES && typeof e['unsafe'] === 'boolean') {
      const nodes = parseDestinationLines(path, e['text']);
      out.push({ path, read: typeof nodes === 'string' ? { kind: 'error', reason: nodes } : { kind: 'ok', nodes, unsafe: e['unsafe'] } });
    } else if ((e['kind'] === 'missing' || e['kind'] === 'error') && typeof e['reason'] === 'string') {
      out.push({ path, read: { kind: e['kind'], reason: e['reason'].slice(0, 500) } });
    } else return 'the include reader printed nonsense';
  }
  return out;
}

function readerCommand(user: UserInfo, paths: readonly string[]): { file: string; args: string[]; ids: { uid?: number; gid?: number } } {
  const node = [process.execPath, READER_PATH, '--', ...paths];
  if (existsSync(SETPRIV)) return { file: SETPRIV, args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--inh-caps=-all', '--', ...node], ids: {} };
  return { file: node[0] as string, args: node.slice(1), ids: { uid: user.uid, gid: user.gid } };
}

function answer(user: UserInfo, status: number | null, stdout: string, stderr: string): IncludeEntry[] | { error: string } {
  if (status !== 0) return { error: `:include: files of ${user.name}'s ~/.forward: the reader (as ${user.name}) failed: ${stderr.trim().split('\n')[0] ?? ''}` };
  const r = parseReaderOutput(stdout);
  return typeof r === 'string' ? { error: `:include: files of ${user.name}'s ~/.forward: ${r}` } : r;
}

/** The include tree read as `user` (the privileged parent, for the SMTP side). */
export function readIncludesAs(user: UserInfo, paths: readonly string[]): Promise<IncludeEntry[] | { error: string }> {
  if (process.getuid?.() !== 0) return Promise.resolve(local(paths));
  const c = readerCommand(user, paths);
  return new Promise((resolve) => {
    execFile(c.file, c.args, { ...c.ids, env: {}, timeout: READER_TIMEOUT_MS, maxBuffer: 4 * MAX_INCLUDE_BYTES, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve(answer(user, err ? 1 : 0, stdout, stderr || (err?.message ?? '')));
    });
  });
}

/** The same, synchronously (the parent's re-check of a delivery, daemon/privsep/verify.ts). */
export function readIncludesAsSync(user: UserInfo, paths: readonly string[]): IncludeEntry[] | { error: string } {
  if (process.getuid?.() !== 0) return local(paths);
  const c = readerCommand(user, paths);
  const r = spawnSync(c.file, c.args, { ...c.ids, env: {}, timeout: READER_TIMEOUT_MS, maxBuffer: 4 * MAX_INCLUDE_BYTES, encoding: 'utf8' });
  return answer(user, r.status, r.stdout ?? '', r.stderr || (r.error?.message ?? ''));
}

function local(paths: readonly string[]): IncludeEntry[] | { error: string } {
  const r = parseReaderOutput(JSON.stringify(readIncludeTree(paths)));
  return typeof r === 'string' ? { error: r } : r;
}

/** One include file of `user`'s ~/.forward, read as the user (an include not among those the parent sent). */
export function readIncludeAsUser(user: UserInfo, path: string): IncludeRead {
  const r = readIncludesAsSync(user, [path]);
  if ('error' in r) return { kind: 'error', reason: r.error };
  return r.find((e) => e.path === path)?.read ?? { kind: 'error', reason: `${path}: not read` };
}
