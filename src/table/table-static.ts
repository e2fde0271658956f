/*
 * table/table-static.ts — inline tables and text-file tables.
 *
 * Text file format (OpenSMTPD table(5), aliases(5)):
 *   # comment
 *   key value            one entry per line; "key: value" is accepted too
 *   key                  a list entry (value "")
 *   key value, value2,   a trailing comma, or a following line that starts
 *       value3           with whitespace, continues the value
 * Keys are lowercased. A line that cannot be parsed is an error naming
 * FILE:LINE; the previous contents stay in force on a failed reload.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { TableDecl } from '../config/model.js';
import type { Lookup, Table } from './table.js';
import { NOT_FOUND } from './table.js';

export class StaticTable implements Table {
  private entries = new Map<string, string>();
  private loadError: string | undefined;

  constructor(
    readonly name: string,
    private readonly source: { readonly kind: 'inline'; readonly entries: ReadonlyMap<string, string> } | { readonly kind: 'file'; readonly path: string },
  ) {
    if (source.kind === 'inline') {
      for (const [k, v] of source.entries) this.entries.set(k.toLowerCase(), v);
    } else {
      try {
        this.reload();
      } catch (e) {
        this.loadError = (e as Error).message;
      }
    }
  }

  get(key: string): Lookup {
    if (this.loadError) return { kind: 'error', reason: this.loadError };
    const v = this.entries.get(key);
    return v === undefined ? NOT_FOUND : { kind: 'found', value: v };
  }

  keys(): readonly string[] | { readonly error: string } {
    if (this.loadError) return { error: this.loadError };
    return [...this.entries.keys()];
  }

  /** Why the table is unusable, if it is (reported at start-up). */
  get error(): string | undefined {
    return this.loadError;
  }

  reload(): void {
    if (this.source.kind !== 'file') return;
    let text: string;
    try {
      text = readFileSync(this.source.path, 'utf8');
    } catch (e) {
      throw new Error(`${this.source.path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    this.entries = parseTableText(text, this.source.path);
    this.loadError = undefined;
  }
}

/** Parse the text table format above; throws "FILE:LINE: message" on a bad line. */
export function parseTableText(text: string, file: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  let current: { key: string; value: string; line: number } | undefined;
  const flush = (): void => {
    if (!current) return;
    const value = current.value.trim().replace(/,\s*$/, '');
    out.set(current.key, value);
    current = undefined;
  };
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? '';
    const line = stripComment(raw);
    if (line.trim() === '') continue;
    if (/^\s/.test(line) && current) {
      current.value += ' ' + line.trim();
      continue;
    }
    if (/^\s/.test(line)) throw new Error(`${file}:${i + 1}: continuation line without an entry before it`);
    flush();
    const m = /^("(?:[^"\\]|\\.)*"|[^\s:]+)\s*(?::\s*|\s+|$)(.*)$/.exec(line);
    if (!m || m[1] === undefined) throw new Error(`${file}:${i + 1}: cannot parse line`);
    let key = m[1];
    if (key.startsWith('"')) key = key.slice(1, -1).replace(/\\(.)/g, '$1');
    if (key === '') throw new Error(`${file}:${i + 1}: empty key`);
    current = { key: key.toLowerCase(), value: m[2] ?? '', line: i + 1 };
    if (!/,\s*$/.test(current.value)) flush();
  }
  flush();
  return out;
}

function stripComment(line: string): string {
  const i = line.indexOf('#');
  return i < 0 ? line : line.slice(0, i);
}

/** Build a Table for a configuration declaration. */
export function tableFromDecl(decl: TableDecl): Table {
  switch (decl.kind) {
    case 'list':
      return new StaticTable(decl.name, { kind: 'inline', entries: new Map(decl.values.map((v) => [v, ''])) });
    case 'map':
      return new StaticTable(decl.name, { kind: 'inline', entries: decl.entries });
    case 'file':
      return new StaticTable(decl.name, { kind: 'file', path: decl.path });
    case 'db':
      // The compiled format (makemap) is read by table-db.ts when it exists; until then a
      // text file beside it ("aliases" for "aliases.db") is used, as newaliases would build it from.
      return new StaticTable(decl.name, { kind: 'file', path: decl.path.endsWith('.db') && !existsSync(decl.path) ? decl.path.slice(0, -3) : decl.path });
  }
}

