/*
 * policy/rules.ts — the smtpd.conf rule set: who may send mail to whom.
 *
 * Rules are evaluated in order; the first whose every condition holds
 * decides (OpenSMTPD's "first match wins"). Each condition is tri-state:
 * a table that cannot be read makes the whole decision a temporary
 * failure (451 4.3.0), never a silent "no match".
 *
 * When no rule matches, the recipient is refused: "550 5.7.1 Relaying
 * denied" for a domain that is not ours, "550 5.1.1 Invalid recipient"
 * for one that is. This is what makes the default configuration closed.
 */
import type { Action, Condition, Config, MatchRule } from '../config/model.js';
import type { Reply } from '../mail/reply.js';
import { reply } from '../mail/reply.js';
import type { TableRegistry } from '../table/table.js';
import { matchDomain, matchMailaddr, matchNetaddr, type Match } from '../table/match.js';
import type { LocalNames } from './localnames.js';

/** What the rules see of a session and a recipient. */
export interface RuleContext {
  readonly clientAddress: string;
  readonly fromSocket: boolean;
  readonly rdns?: string;
  readonly helo?: string;
  readonly authUser?: string;
  readonly tls: boolean;
  readonly tag?: string;
  /** Reverse path, "" for <>. */
  readonly sender: string;
  /** Recipient "local@domain" (domain lowercased; "" domain for <postmaster>). */
  readonly rcpt: string;
  readonly rcptDomain: string;
}

export type RuleDecision =
  | { readonly kind: 'accept'; readonly rule: MatchRule; readonly action: Action }
  | { readonly kind: 'reject'; readonly rule?: MatchRule; readonly reply: Reply; readonly reason: string };

export class RuleEngine {
  constructor(
    private readonly config: Config,
    private readonly tables: TableRegistry,
    private readonly local: LocalNames,
  ) {}

  decide(ctx: RuleContext): RuleDecision {
    for (const rule of this.config.rules) {
      const m = this.matches(rule, ctx);
      if (typeof m === 'object') {
        return {
          kind: 'reject',
          rule,
          reply: reply(451, '4.3.0', 'Temporary failure, please try again later'),
          reason: `rule ${rule.pos.file}:${rule.pos.line}: ${m.error}`,
        };
      }
      if (!m) continue;
      if (rule.decision === 'reject') {
        return { kind: 'reject', rule, reply: reply(550, '5.7.1', 'Delivery not authorized, message refused'), reason: `rejected by rule ${rule.pos.file}:${rule.pos.line}` };
      }
      const action = rule.action !== undefined ? this.config.actions.get(rule.action) : undefined;
      if (!action) {
        return { kind: 'reject', rule, reply: reply(451, '4.3.0', 'Temporary failure, please try again later'), reason: `rule ${rule.pos.file}:${rule.pos.line} has no action` };
      }
      return { kind: 'accept', rule, action };
    }
    if (this.local.isLocalDomain(ctx.rcptDomain)) {
      return { kind: 'reject', reply: reply(550, '5.1.1', 'Invalid recipient'), reason: 'no rule matched a local recipient' };
    }
    return { kind: 'reject', reply: reply(550, '5.7.1', 'Relaying denied'), reason: 'no rule matched: relaying denied' };
  }

  private matches(rule: MatchRule, ctx: RuleContext): Match {
    for (const c of rule.conditions) {
      const m = this.condition(c, ctx);
      if (typeof m === 'object') return m;
      if (m === c.negate) return false;
    }
    return true;
  }

  private condition(c: Condition, ctx: RuleContext): Match {
    switch (c.kind) {
      case 'from-any':
      case 'for-any':
        return true;
      case 'from-local':
        return ctx.fromSocket || this.local.isLocalAddress(ctx.clientAddress);
      case 'from-socket':
        return ctx.fromSocket;
      case 'from-src':
        return ctx.fromSocket ? false : this.withTable(c.table, (t) => matchNetaddr(t, ctx.clientAddress));
      case 'from-rdns':
        if (ctx.rdns === undefined) return false;
        return c.table === undefined ? true : this.withTable(c.table, (t) => matchDomain(t, ctx.rdns ?? ''));
      case 'from-auth':
      case 'auth':
        if (ctx.authUser === undefined) return false;
        return c.table === undefined ? true : this.withTable(c.table, (t) => matchMailaddr(t, ctx.authUser ?? ''));
      case 'from-mail-from':
      case 'mail-from':
        return this.withTable(c.table, (t) => matchMailaddr(t, ctx.sender));
      case 'for-local':
        return this.local.isLocalDomain(ctx.rcptDomain);
      case 'for-domain':
        return this.withTable(c.table, (t) => matchDomain(t, ctx.rcptDomain));
      case 'for-virtual':
        return this.withTable(c.table, (t) => virtualDomain(t, ctx.rcptDomain));
      case 'for-rcpt-to':
      case 'rcpt-to':
        return this.withTable(c.table, (t) => matchMailaddr(t, ctx.rcpt));
      case 'helo':
        if (ctx.helo === undefined) return false;
        return this.withTable(c.table, (t) => matchDomain(t, ctx.helo ?? ''));
      case 'tag':
        return ctx.tag === c.tag;
      case 'tls':
        return ctx.tls;
    }
  }

  private withTable(name: string, f: (t: NonNullable<ReturnType<TableRegistry['get']>>) => Match): Match {
    const t = this.tables.get(name);
    if (!t) return { error: `table "${name}" is not defined` };
    return f(t);
  }
}

/** Legacy `for virtual M`: the domain is virtual when M has "@domain", "domain" or any "x@domain" key. */
function virtualDomain(t: NonNullable<ReturnType<TableRegistry['get']>>, domain: string): Match {
  const keys = t.keys();
  if (!Array.isArray(keys)) return { error: (keys as { error: string }).error };
  const d = domain.toLowerCase();
  for (const k of keys as readonly string[]) {
    if (k === d || k === `@${d}` || k.endsWith(`@${d}`)) return true;
  }
  return false;
}
