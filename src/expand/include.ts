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
 */
import { readFileSync, statSync } from 'node:fs';
import { parseAliasValue, type AliasNode } from '../table/aliases.js';

export type IncludeRead =
  | { readonly kind: 'ok'; readonly nodes: readonly AliasNode[]; readonly unsafe: boolean }
  /** The file does not exist: an error of the alias, dropped with a log. */
  | { readonly kind: 'missing'; readonly reason: string }
  /** Unreadable or unparsable: a temporary failure, so no mail is lost while it is fixed. */
  | { readonly kind: 'error'; readonly reason: string };

export function readIncludeFile(path: string): IncludeRead {
  let text: string;
  let mode: number;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing', reason: `${path}: no such file` };
    return { kind: 'error', reason: `${path}: ${code === 'EACCES' ? 'permission denied' : (e as Error).message}` };
  }
  const nodes = parseDestinationLines(path, text);
  if (typeof nodes === 'string') return { kind: 'error', reason: nodes };
  return { kind: 'ok', nodes, unsafe: (mode & 0o022) !== 0 };
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
