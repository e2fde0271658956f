/*
 * table/table-static.ts — inline tables and text-file tables; tables from
 * configuration declarations.
 *
 * Inline: `table t { a, b }`, `table t { k = v }`, anonymous `<example.org>`.
 * Text files: the format of text-format.ts (table(5), aliases(5)); read at
 * start-up and by reload(). A file that cannot be read or parsed makes
 * the table unusable at start-up (every lookup answers 'error', and the
 * daemon refuses to start); on reload the previous contents stay in force
 * and reload() throws "FILE:LINE: message".
 */
import { readFileSync } from 'node:fs';
import type { TableDecl } from '../config/model.js';
import type { Lookup, Table } from './table.js';
import { NOT_FOUND } from './table.js';
import { DbTable } from './table-db.js';
import { parseTableText } from './text-format.js';

export { parseTableText } from './text-format.js';

export type StaticSource = { readonly kind: 'inline'; readonly entries: ReadonlyMap<string, string> } | { readonly kind: 'file'; readonly path: string };

export class StaticTable implements Table {
  private entries = new Map<string, string>();
  private loadError: string | undefined;

  constructor(
    readonly name: string,
    private readonly source: StaticSource,
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

  /** The file behind the table, if any. */
  get path(): string | undefined {
    return this.source.kind === 'file' ? this.source.path : undefined;
  }

  reload(): void {
    if (this.source.kind !== 'file') return;
    let text: string;
    try {
      text = readFileSync(this.source.path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(`${this.source.path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
    }
    this.entries = parseTableText(text, this.source.path);
    this.loadError = undefined;
  }
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
      return new DbTable(decl.name, decl.path);
  }
}
