/*
 * policy/recipients.ts — is there someone behind this local recipient?
 *
 * Run at RCPT after the rules chose a local-delivery action, so that mail
 * for an unknown user is refused at once (550 5.1.1) instead of being
 * accepted and bounced later (backscatter). The full expansion (aliases
 * recursion, :include:, forward files) happens at delivery; this check
 * only needs to know that *something* will take the mail:
 *   virtual actions: the virtual table has user@domain, user, @domain or @;
 *   otherwise: postmaster, an alias, a userbase entry, or a system user —
 *   each tried with the +extension and then without it.
 */
import type { Action } from '../config/model.js';
import type { Reply } from '../smtp/reply.js';
import { reply } from '../smtp/reply.js';
import type { TableRegistry } from '../table/table.js';
import type { UserBase } from '../delivery/users.js';

export type RecipientVerdict = { readonly kind: 'ok' } | { readonly kind: 'refuse'; readonly reply: Reply; readonly reason: string };

const OK: RecipientVerdict = Object.freeze({ kind: 'ok' });

export class RecipientCheck {
  constructor(
    private readonly tables: TableRegistry,
    private readonly users: UserBase,
  ) {}

  check(action: Action, local: string, domain: string): RecipientVerdict {
    if (action.kind === 'relay') return OK;
    const user = local.toLowerCase();
    const plus = user.indexOf('+');
    const bare = plus > 0 ? user.slice(0, plus) : user;
    if (action.virtual !== undefined) {
      const keys = [`${user}@${domain}`, `${bare}@${domain}`, user, bare, `@${domain}`, '@'];
      return this.anyFound(action.virtual, keys, `no virtual mapping for ${user}@${domain}`);
    }
    if (bare === 'postmaster' || bare === 'mailer-daemon') return OK;
    if (action.alias !== undefined) {
      const r = this.anyFound(action.alias, unique([user, bare]), '');
      if (r.kind === 'ok' || r.reply.code < 500) return r;
    }
    if (action.userbase !== undefined) {
      return this.anyFound(action.userbase, unique([user, bare]), `no user ${bare} in userbase`);
    }
    if (action.user !== undefined) return OK;
    for (const name of unique([user, bare])) {
      const u = this.users.lookup(name);
      if (u !== undefined && 'error' in u) return tempfail(u.error);
      if (u !== undefined) return OK;
    }
    return { kind: 'refuse', reply: reply(550, '5.1.1', 'Invalid recipient: no such user here'), reason: `no such user: ${bare}` };
  }

  private anyFound(table: string, keys: readonly string[], missing: string): RecipientVerdict {
    for (const k of keys) {
      const r = this.tables.lookup(table, k);
      if (r.kind === 'error') return tempfail(r.reason);
      if (r.kind === 'found') return OK;
    }
    return { kind: 'refuse', reply: reply(550, '5.1.1', 'Invalid recipient: no such user here'), reason: missing || `not found in table ${table}` };
  }
}

function tempfail(reason: string): RecipientVerdict {
  return { kind: 'refuse', reply: reply(451, '4.3.0', 'Temporary lookup failure, please try again later'), reason };
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}
