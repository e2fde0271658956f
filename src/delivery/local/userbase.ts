/*
 * delivery/local/userbase.ts — virtual users from a `userbase <table>`.
 *
 * Each entry is "name uid:gid:home" (OpenSMTPD table(5), "userbase"):
 *   vmail-bob  5000:5000:/var/vmail/bob
 * A malformed entry is a temporary failure (fix the table, the mail waits),
 * never "no such user".
 */
import type { TableRegistry } from '../../table/table.js';
import type { UserBase, UserInfo } from '../../users/system-users.js';

export class TableUserBase implements UserBase {
  constructor(
    private readonly tables: TableRegistry,
    readonly table: string,
  ) {}

  lookup(name: string): UserInfo | undefined | { readonly error: string } {
    const r = this.tables.lookup(this.table, name);
    if (r.kind === 'error') return { error: `userbase ${this.table}: ${r.reason}` };
    if (r.kind === 'notfound') return undefined;
    const m = /^\s*(\d+):(\d+):(\/.*?)\s*$/.exec(r.value);
    if (!m) return { error: `userbase ${this.table}: bad entry for "${name}" (expected uid:gid:/home)` };
    return { name: name.toLowerCase(), uid: Number(m[1]), gid: Number(m[2]), home: m[3] as string, shell: '/bin/sh' };
  }
}
