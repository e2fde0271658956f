/*
 * antispam/header-checks/apply.ts — a header_checks table applied to the
 * header section of one message (Postfix header_checks(5)).
 *
 * Each logical header (its continuation lines included, joined by "\n"
 * without the CR LF) is matched against the rules in order; the first rule
 * that matches decides for that header:
 *
 *   IGNORE          the header is removed
 *   REPLACE text    the header is replaced by "text"
 *   PREPEND text    "text" is put before the header
 *   WARN [text]     logged; the header stays
 *   DUNNO, OK       the header stays, no further rule is tried
 *   REJECT [text]   the message is refused (550 5.7.1 text)
 *   HOLD [text]     the message is kept on hold
 *   DISCARD [text]  the message is accepted and thrown away
 *   REDIRECT addr   the header stays; the message goes to addr instead of
 *                   its recipients (the last REDIRECT that matches wins)
 *
 * REJECT, HOLD and DISCARD end the checks; REDIRECT does not. Guarded patterns (those V8
 * cannot run in linear time, config/bounded-regex.ts) run with a 50 ms
 * budget for the whole message; past it the result is "error".
 */
import type { HeaderRule } from '../../config/antispam.js';
import { runGuarded } from '../../config/bounded-regex.js';

export type HeaderVerdict =
  | { readonly kind: 'none' }
  | { readonly kind: 'reject' | 'hold' | 'discard'; readonly text: string; readonly header: string; readonly rule: string }
  /** A guarded pattern ran out of time: the check could not be made. */
  | { readonly kind: 'error'; readonly reason: string };

export interface HeaderResult {
  /** The new header lines (logical headers, CR LF inside continuations kept), each without its final CR LF. */
  readonly headers: readonly string[];
  readonly verdict: HeaderVerdict;
  /** WARN lines for the log. */
  readonly warnings: readonly string[];
  readonly changed: boolean;
  /** The last REDIRECT that matched, for the front door to apply. */
  readonly redirect?: HeaderRedirect;
}

export interface HeaderRedirect {
  readonly address: string;
  readonly rule: string;
  readonly header: string;
}

export const GUARD_BUDGET_MS = 50;

/** Apply RULES to HEADERS (logical headers as stored, continuation lines joined with CR LF). */
export function applyHeaderChecks(rules: readonly HeaderRule[], headers: readonly string[]): HeaderResult {
  const guardedIdx = rules.map((r, i) => ((r as { guarded?: boolean }).guarded ? i : -1)).filter((i) => i >= 0);
  let guarded: boolean[][] | undefined;
  if (guardedIdx.length > 0) {
    const subjects = headers.map((h) => h.replace(/\r\n/g, '\n'));
    guarded = runGuarded(guardedIdx.map((i) => rules[i]!.regex), subjects, GUARD_BUDGET_MS);
    if (guarded === undefined) return { headers, verdict: { kind: 'error', reason: `header checks: a pattern ran longer than ${GUARD_BUDGET_MS} ms` }, warnings: [], changed: false };
  }
  const out: string[] = [];
  const warnings: string[] = [];
  let changed = false;
  let redirect: HeaderRedirect | undefined;
  for (let h = 0; h < headers.length; h++) {
    const header = headers[h]!;
    const subject = header.replace(/\r\n/g, '\n');
    let rule: HeaderRule | undefined;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      const g = guardedIdx.indexOf(i);
      const matched = g >= 0 ? guarded![h]![g]! : r.regex.test(subject);
      if (matched !== r.negate) {
        rule = r;
        break;
      }
    }
    if (rule === undefined) {
      out.push(header);
      continue;
    }
    const where = `${rule.pos.file}:${rule.pos.line}`;
    switch (rule.action) {
      case 'IGNORE':
        changed = true;
        break;
      case 'REPLACE':
        out.push(rule.arg);
        changed = true;
        break;
      case 'PREPEND':
        out.push(rule.arg, header);
        changed = true;
        break;
      case 'WARN':
        warnings.push(`${where}: ${firstLine(header)}${rule.arg ? `: ${rule.arg}` : ''}`);
        out.push(header);
        break;
      case 'DUNNO':
      case 'OK':
        out.push(header);
        break;
      case 'REDIRECT':
        redirect = { address: rule.arg, rule: where, header: firstLine(header) };
        out.push(header);
        break;
      case 'REJECT':
      case 'HOLD':
      case 'DISCARD':
        return { headers, verdict: { kind: rule.action === 'REJECT' ? 'reject' : rule.action === 'HOLD' ? 'hold' : 'discard', text: rule.arg, header: firstLine(header), rule: where }, warnings, changed: false, ...(redirect ? { redirect } : {}) };
    }
  }
  return { headers: out, verdict: { kind: 'none' }, warnings, changed, ...(redirect ? { redirect } : {}) };
}

function firstLine(h: string): string {
  const l = h.split('\r\n')[0] ?? '';
  return l.length > 200 ? `${l.slice(0, 200)}…` : l;
}
