/*
 * expand/include.ts — reading an aliases(5) ":include:/path" file.
 *
 * One destination per line, or several separated by commas; "#" starts a
 * comment (at the start of a line or after a blank); blank lines are
 * skipped. Destinations have the syntax of table/aliases.ts.
 *
 * A file that group or others may write is "unsafe": its plain addresses
 * and users are used, but the files and commands it names are not (such a
 * list is often kept by someone who must not run commands as its users).
 * It must be a regular file (opened without blocking, then checked on the
 * descriptor: a FIFO or a device is never read) of at most
 * MAX_INCLUDE_BYTES, as Postfix's local(8) requires.
 *
 * An :include: named in a user's ~/.forward (or in a file that one
 * includes) is read with the user's ids, never root's: a user must not make
 * the daemon read /etc/shadow or the spool for them. include-as.ts does
 * that; this file reads as whoever runs it.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { parseAliasValue, type AliasNode } from '../table/aliases.js';

export const MAX_INCLUDE_BYTES = 1024 * 1024;

export type IncludeRead =
  | { readonly kind: 'ok'; readonly nodes: readonly AliasNode[]; readonly unsafe: boolean }
  /** The file does not exist: an error of the alias, dropped with a log. */
  | { readonly kind: 'missing'; readonly reason: string }
  /** Unreadable or unparsable: a temporary failure, so no mail is lost while it is fixed. */
  | { readonly kind: 'error'; readonly reason: string };

export function readIncludeFile(path: string): IncludeRead {
  const r = readIncludeText(path);
  if (r.kind !== 'ok') return r;
  const nodes = parseDestinationLines(path, r.text);
  if (typeof nodes === 'string') return { kind: 'error', reason: nodes };
  return { kind: 'ok', nodes, unsafe: r.unsafe };
}

/** The file's text, unparsed (include-reader.ts prints it for a root caller to parse). */
export function readIncludeText(path: string): { readonly kind: 'ok'; readonly text: string; readonly unsafe: boolean } | Exclude<IncludeRead, { kind: 'ok' }> {
  let text: string;
  let mode: number;
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile()) return { kind: 'error', reason: `${path}: not a regular file` };
    if (st.size > MAX_INCLUDE_BYTES) return { kind: 'error', reason: `${path}: larger than ${MAX_INCLUDE_BYTES} bytes` };
    mode = st.mode;
    const buf = Buffer.alloc(st.size);
    let got = 0;
    for (let n = 1; got < buf.length && n > 0; got += n) n = readSync(fd, buf, got, buf.length - got, got);
    text = buf.subarray(0, got).toString('utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing', reason: `${path}: no such file` };
    return { kind: 'error', reason: `${path}: ${code === 'EACCES' ? 'permission denied' : (e as Error).message}` };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return { kind: 'ok', text, unsafe: (mode & 0o022) !== 0 };
}

/** The destinations of an include or ~/.forward file; a string says what is wrong ("PATH:LINE: …"). */
export function parseDestinationLines(path: string, text: string): AliasNode[] | string {
  const nodes: AliasNode[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = stripComment((lines[i] ?? '').replace(/\r$/, '')).trim();
    if (line === '') continue;
    const parsed = parseAliasValue(line);
    if (typeof parsed === 'string') return `${path}:${i + 1}: ${parsed}`;
    nodes.push(...parsed);
  }
  return nodes;
}

function stripComment(line: string): string {
  const m = /(^|\s)#/.exec(line);
  return m ? line.slice(0, m.index) : line;
}
