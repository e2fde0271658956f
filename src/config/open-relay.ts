/*
 * config/open-relay.ts — spotting rules that relay anybody's mail anywhere.
 *
 * A rule makes an open relay when it accepts with a relay action, its
 * source can be any host on the Internet, and its destination can be any
 * domain. Source "any host": from any / all, from src with 0.0.0.0/0 or
 * ::/0 in a literal table, from rdns without a table, from mail-from (the
 * sender address is the client's to choose), or a negated source
 * (!from local, !from src …, !from auth). A positive `auth` condition
 * closes the rule; a `tag` condition is given the benefit of the doubt
 * (the tagged listener may be internal). Destination "any domain": for any
 * / all or a negated for, unless a positive rcpt-to narrows it.
 *
 * The result is a warning, not an error: the configuration stays valid.
 */
import type { Action, Condition, Diagnostic, MatchRule, TableDecl } from './model.js';
import { isWholeInternet, parseNetwork } from './values.js';

export const OPEN_RELAY_MESSAGE =
  'makes this server an open relay: anyone on the Internet can send mail through it (limit "from" to local or trusted networks, or require auth)';

export function findOpenRelays(
  rules: readonly MatchRule[],
  actions: ReadonlyMap<string, Action>,
  tables: ReadonlyMap<string, TableDecl>,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const reported = new Set<string>();
  for (const rule of rules) {
    if (rule.decision !== 'accept' || rule.action === undefined) continue;
    if (actions.get(rule.action)?.kind !== 'relay') continue;
    if (!sourceIsAnyone(rule.conditions, tables) || !destinationIsAnywhere(rule.conditions)) continue;
    const key = `${rule.pos.file}:${rule.pos.line}:${rule.pos.col}`;
    if (reported.has(key)) continue;
    reported.add(key);
    const what = rule.dialect === 'legacy' ? 'this accept rule' : 'this match rule';
    out.push({ pos: rule.pos, severity: 'warning', message: `${what} ${OPEN_RELAY_MESSAGE}` });
  }
  return out;
}

function sourceIsAnyone(conds: readonly Condition[], tables: ReadonlyMap<string, TableDecl>): boolean {
  if (conds.some((c) => (c.kind === 'auth' && !c.negate) || c.kind === 'tag')) return false;
  for (const c of conds) {
    switch (c.kind) {
      case 'from-any':
        return !c.negate;
      case 'from-local':
      case 'from-socket':
      case 'from-auth':
        return c.negate;
      case 'from-src':
        return c.negate || coversEverything(tables.get(c.table));
      case 'from-rdns':
        return c.negate || c.table === undefined;
      case 'from-mail-from':
        return true;
      default:
        break;
    }
  }
  return false;
}

function destinationIsAnywhere(conds: readonly Condition[]): boolean {
  if (conds.some((c) => (c.kind === 'rcpt-to' || c.kind === 'for-rcpt-to') && !c.negate)) return false;
  for (const c of conds) {
    switch (c.kind) {
      case 'for-any':
        return !c.negate;
      case 'for-local':
      case 'for-domain':
      case 'for-virtual':
      case 'for-rcpt-to':
        return c.negate;
      default:
        break;
    }
  }
  return false;
}

function coversEverything(t: TableDecl | undefined): boolean {
  if (t === undefined) return false;
  const values = t.kind === 'list' ? t.values : t.kind === 'map' ? [...t.entries.keys()] : [];
  return values.some((v) => {
    const n = parseNetwork(v);
    return n.ok && isWholeInternet(n.value);
  });
}
