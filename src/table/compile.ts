/*
 * table/compile.ts — what makemap does: text table → compiled table, and back.
 *
 * Types (makemap -t): 'map' (default: key value, or a list of keys — the
 * first entry decides), 'aliases' (every value must be a valid aliases(5)
 * list: table/aliases.ts), 'set' (keys only). Errors are TableSyntaxError
 * ("FILE:LINE: message"); nothing is written unless the whole file is good,
 * and the output replaces the old table atomically (table-db.ts).
 */
import { readFileSync, statSync } from 'node:fs';
import { parseAliasValue } from './aliases.js';
import { CompiledTable, writeCompiledTable, type CompiledType } from './table-db.js';
import { formatTableLine, parseTableEntries, TableSyntaxError, type TextEntry } from './text-format.js';

/** Parse and check a text table for a compiled type. */
export function compileEntries(text: string, file: string, type: CompiledType): TextEntry[] {
  const entries = parseTableEntries(text, file, { shape: type === 'set' ? 'set' : type === 'aliases' ? 'map' : 'any' });
  if (type === 'aliases') {
    for (const e of entries) {
      const nodes = parseAliasValue(e.value);
      if (typeof nodes === 'string') throw new TableSyntaxError(file, e.line, `invalid entry for "${e.key}": ${nodes}`);
    }
  }
  return entries;
}

/**
 * Build `out` from the text table `source` ("-" = standard input). Returns
 * the number of entries. A new output file takes the source's mode and
 * owner (a 0600 secrets file gives a 0600 secrets.db); an existing one
 * keeps its own.
 */
export function buildCompiledTable(source: string, out: string, type: CompiledType): number {
  let text: string;
  let owner: { mode: number; uid: number; gid: number } | undefined;
  try {
    if (source === '-') {
      text = readFileSync(0, 'utf8');
    } else {
      const st = statSync(source);
      if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      owner = { mode: st.mode & 0o777, uid: st.uid, gid: st.gid };
      text = readFileSync(source, 'utf8');
    }
  } catch (e) {
    throw new Error(fsMessage(source, e));
  }
  const entries = compileEntries(text, source === '-' ? '<stdin>' : source, type);
  try {
    writeCompiledTable(out, entries, type, owner ?? {});
  } catch (e) {
    throw new Error(fsMessage(out, e));
  }
  return entries.length;
}

/** The text of a compiled table (makemap -U): one line per entry, readable by makemap again. */
export function dumpCompiledTable(path: string): string[] {
  const t = CompiledTable.open(path);
  try {
    return [...t.entries()].map((e) => formatTableLine(e.key, e.value));
  } finally {
    t.close();
  }
}

function fsMessage(path: string, e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT':
      return `${path}: no such file or directory`;
    case 'EACCES':
    case 'EPERM':
      return `${path}: permission denied`;
    case 'EISDIR':
      return `${path}: is a directory`;
    case 'ENOSPC':
      return `${path}: no space left on device`;
    default:
      return err.message.startsWith(path) ? err.message : `${path}: ${err.message}`;
  }
}
