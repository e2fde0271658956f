/*
 * config/obtuse/open.ts — is a rules file an open relay?
 *
 * An `allow` grants relaying (docs/policy.md), so a rules file is open
 * when, before any catch-all refusal, it allows a source that can be any
 * host on the Internet to send to any address. It is closed when a
 * refusal of anyone, from anyone, to anyone (`noto:ALL:ALL:ALL`) comes
 * first: every recipient is then either allowed by a rule that is not
 * open, or refused. Otherwise unmatched recipients fall through — to
 * smtpd.conf's rules in the daemon, and into the spool in the Obtuse
 * gateway (Obtuse's default is to allow what no rule matches).
 *
 * Conservative in the ordinary way: a list "covers everyone" only when it
 * names ALL, 0/0, "*" (or KNOWN and UNKNOWN together), whatever its
 * EXCEPT list takes out — ALL EXCEPT a few spammers is still the Internet.
 */
import { readFileSync } from 'node:fs';
import { parseObtuseRules, type AddressPattern, type ObtuseRule, type ObtuseRules, type PatternList, type SourcePattern } from './parse.js';

export type RulesOpenness = { readonly kind: 'open'; readonly rule: ObtuseRule } | { readonly kind: 'closed' } | { readonly kind: 'falls-through' };

function coversAllSources(list: PatternList<SourcePattern>): boolean {
  const host = (p: SourcePattern): SourcePattern => (p.kind === 'ident' && p.user.kind === 'all' ? p.host : p);
  const items = list.items.map(host);
  if (list.except !== undefined && coversAllSources(list.except)) return false;
  const known = items.some((p) => p.kind === 'known');
  const unknown = items.some((p) => p.kind === 'unknown');
  return (known && unknown) || items.some((p) => p.kind === 'all' || (p.kind === 'net' && p.bits === 0) || (p.kind === 'glob' && /^\*+$/.test(p.text)));
}

function coversAllAddresses(list: PatternList<AddressPattern>): boolean {
  if (list.except !== undefined && coversAllAddresses(list.except)) return false;
  return list.items.some(
    (p) =>
      p.kind === 'all' ||
      (p.kind === 'glob' && /^\*+$/.test(p.text)) ||
      (p.kind === 'mailbox' && (p.local.kind === 'all' || (p.local.kind === 'glob' && /^\*+$/.test(p.local.text))) && (p.domain.kind === 'all' || (p.domain.kind === 'glob' && /^\*+$/.test(p.domain.text)))),
  );
}

/** The first rule that opens the file, or whether a catch-all refusal closes it. */
export function rulesOpenness(rules: ObtuseRules): RulesOpenness {
  for (const rule of rules.rules) {
    if (rule.action === 'debug' || !coversAllSources(rule.source) || !coversAllAddresses(rule.to)) continue;
    if (rule.action === 'allow') return { kind: 'open', rule };
    if (coversAllAddresses(rule.from)) return { kind: 'closed' };
  }
  return { kind: 'falls-through' };
}

/** Read and judge a rules file; undefined when it cannot be read or parsed (its errors are reported elsewhere). */
export function rulesFileOpenness(path: string): RulesOpenness | undefined {
  try {
    const r = parseObtuseRules(readFileSync(path, 'utf8'), path);
    return r.ok ? rulesOpenness(r.rules) : undefined;
  } catch {
    return undefined;
  }
}
