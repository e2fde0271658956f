/*
 * table/table.ts — one lookup interface for every table backend.
 *
 * Lookups are tri-state, as OpenSMTPD's: found, not found, or a temporary
 * error. A failed lookup must make the caller defer (4xx), never read as
 * "not found". Keys are compared case-insensitively (lowercased by the
 * backend), values are returned as written.
 *
 * Backends: table-static.ts (inline lists/maps and text files, format in
 * text-format.ts) and table-db.ts (compiled tables built by makemap).
 * What a value means depends on the lookup service (services.ts: domain,
 * netaddr, mailaddr, credentials, userinfo; aliases.ts: alias), as in
 * OpenSMTPD's table(5). docs/tables.md describes formats and services.
 */

export type Lookup =
  | { readonly kind: 'found'; readonly value: string }
  | { readonly kind: 'notfound' }
  | { readonly kind: 'error'; readonly reason: string };

export const NOT_FOUND: Lookup = Object.freeze({ kind: 'notfound' });

export interface Table {
  readonly name: string;
  /** Exact lookup of a (lowercased) key. */
  get(key: string): Lookup;
  /** Every key, for pattern matching (domains with wildcards, CIDRs …); an error when unavailable. */
  keys(): readonly string[] | { readonly error: string };
  /**
   * Re-read the backing file, if any. On a bad file the previous contents
   * stay in force and this throws "FILE:LINE: message" ("FILE: message"
   * for a compiled table).
   */
  reload(): void;
  /** Why the table is unusable right now (every lookup answers 'error'), for start-up checks. */
  readonly error?: string | undefined;
}

export class TableRegistry {
  private readonly tables = new Map<string, Table>();

  /** Swap in a whole new set of tables at once (`smtpctl reload`); holders of this registry see them. */
  replace(tables: Iterable<Table>): void {
    this.tables.clear();
    for (const t of tables) this.tables.set(t.name, t);
  }

  add(t: Table): void {
    this.tables.set(t.name, t);
  }

  get(name: string): Table | undefined {
    return this.tables.get(name);
  }

  /** A missing table is a configuration bug; treat it as a temporary failure so no mail is lost. */
  lookup(name: string, key: string): Lookup {
    const t = this.tables.get(name);
    if (!t) return { kind: 'error', reason: `table "${name}" is not defined` };
    return t.get(key.toLowerCase());
  }

  all(): IterableIterator<Table> {
    return this.tables.values();
  }

  /** Reload every table (SIGHUP); the ones that failed keep their contents and are listed. */
  reloadAll(): { readonly table: string; readonly error: string }[] {
    const failed: { table: string; error: string }[] = [];
    for (const t of this.tables.values()) {
      try {
        t.reload();
      } catch (e) {
        failed.push({ table: t.name, error: (e as Error).message });
      }
    }
    return failed;
  }
}
