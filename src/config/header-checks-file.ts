/*
 * config/header-checks-file.ts — a Postfix header_checks / smtp_header_checks
 * regexp table (regexp_table(5), header_checks(5)):
 *
 *   # comment
 *   /^Received:.*\.domain\.lan/     IGNORE
 *   /^Subject:.*viagra/i            REJECT Spam is not welcome here ($CLIENT_ADDR)
 *   !/^Date:/                       WARN
 *   /^X-Mailer: Bulk/               PREPEND X-Bulk: yes
 *
 * A pattern is /REGEX/FLAGS, optionally preceded by "!" (matches when the
 * regex does not). As in Postfix, matching ignores case unless the flag
 * "i" is given (it toggles); "m" and "s" are JavaScript's. A line that
 * starts with white space continues the one before. The action is one of
 * IGNORE, REJECT [text], WARN [text], REPLACE text, PREPEND text,
 * HOLD [text], DISCARD [text], REDIRECT user@domain, DUNNO, OK.
 *
 * Errors are FILE:LINE:COL, the column pointing at the pattern or action.
 * Patterns are compiled through config/bounded-regex.ts.
 */
import { readFileSync } from 'node:fs';
import type { Diagnostics } from './diagnostics.js';
import type { Position } from './model.js';
import type { HeaderAction, HeaderCheckTable, HeaderRule } from './antispam.js';
import { compileBounded } from './bounded-regex.js';
import { parseRcptToArg } from '../mail/address.js';

const ACTIONS: ReadonlySet<string> = new Set(['IGNORE', 'REJECT', 'WARN', 'REPLACE', 'PREPEND', 'HOLD', 'DISCARD', 'REDIRECT', 'DUNNO', 'OK']);
const NEEDS_TEXT: ReadonlySet<string> = new Set(['REPLACE', 'PREPEND']);

export interface GuardedRule extends HeaderRule {
  /** Must be run through bounded-regex.ts runGuarded(). */
  readonly guarded: boolean;
}

/** Read and check FILE; errors go to diags with their position, `at` being the statement that names the file. */
export function readHeaderChecks(file: string, at: Position, diags: Diagnostics): HeaderCheckTable | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    diags.error(at, `cannot read header checks file "${file}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return undefined;
  }
  return parseHeaderChecks(text, file, diags);
}

/** Parse the text of a header checks file. */
export function parseHeaderChecks(text: string, file: string, diags: Diagnostics): HeaderCheckTable {
  const rules: GuardedRule[] = [];
  const lines = text.split(/\r?\n/);
  // Join continuation lines, remembering where each logical line started.
  const logical: { text: string; line: number }[] = [];
  lines.forEach((l, i) => {
    if (/^\s*(#|$)/.test(l)) return;
    if (/^\s/.test(l) && logical.length > 0) logical[logical.length - 1]!.text += ` ${l.trim()}`;
    else logical.push({ text: l, line: i + 1 });
  });
  for (const { text: l, line } of logical) {
    const pos = (col: number): Position => ({ file, line, col });
    const r = parseRule(l, pos);
    if ('error' in r) diags.error(r.pos, r.error);
    else rules.push(r);
  }
  return { file, rules };
}

function parseRule(l: string, pos: (col: number) => Position): GuardedRule | { error: string; pos: Position } {
  let i = 0;
  let negate = false;
  if (l[i] === '!') {
    negate = true;
    i++;
  }
  if (l[i] !== '/') return { error: 'expected /pattern/ at the start of the line (regexp table)', pos: pos(i + 1) };
  const start = i;
  let j = i + 1;
  let source = '';
  for (; j < l.length && l[j] !== '/'; j++) {
    if (l[j] === '\\' && l[j + 1] === '/') {
      source += '/';
      j++;
    } else if (l[j] === '\\') {
      source += l[j]! + (l[j + 1] ?? '');
      j++;
    } else source += l[j];
  }
  if (j >= l.length) return { error: 'unterminated pattern (missing the closing "/")', pos: pos(start + 1) };
  j++;
  let flagText = '';
  while (j < l.length && /[a-z]/i.test(l[j]!)) flagText += l[j++];
  let flags = 'i';
  for (const f of flagText) {
    if (f === 'i') flags = flags.includes('i') ? flags.replace('i', '') : `${flags}i`;
    else if (f === 'm' || f === 's') flags += f;
    else if (f === 'x') return { error: 'flag "x" (extended syntax) is not supported', pos: pos(start + 1) };
    else return { error: `unknown flag "${f}" (expected i, m or s)`, pos: pos(start + 1) };
  }
  let compiled;
  try {
    compiled = compileBounded(source, flags);
  } catch (e) {
    return { error: `bad regular expression: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`, pos: pos(start + 1) };
  }
  const rest = l.slice(j);
  const m = /^(\s+)(\S+)\s*(.*)$/.exec(rest);
  if (!m) return { error: 'expected an action after the pattern (IGNORE, REJECT, WARN, REPLACE, PREPEND, HOLD, DISCARD, REDIRECT)', pos: pos(j + 1) };
  const actionCol = j + 1 + (m[1]?.length ?? 0);
  const action = (m[2] ?? '').toUpperCase();
  const arg = (m[3] ?? '').trim();
  if (!ACTIONS.has(action)) return { error: `unknown action "${m[2] ?? ''}" (expected one of ${[...ACTIONS].join(', ')})`, pos: pos(actionCol) };
  if (NEEDS_TEXT.has(action) && !/^[\x21-\x39\x3b-\x7e]+:/.test(arg)) return { error: `${action} needs a header line ("Name: value")`, pos: pos(actionCol) };
  if (action === 'REDIRECT' && !redirectTarget(arg)) return { error: `REDIRECT needs one address (user@domain), not "${arg.slice(0, 80)}"`, pos: pos(actionCol) };
  return { regex: compiled.regex, guarded: !compiled.linear, negate, action: action as HeaderAction, arg, pos: pos(start + 1) };
}

/** REDIRECT's argument: one mailbox with a domain (no angle brackets, no parameters). */
function redirectTarget(arg: string): boolean {
  if (arg === '' || /[\s<>]/.test(arg)) return false;
  const p = parseRcptToArg(`TO:<${arg}>`, { smtputf8: true, strict: true });
  return p.ok && p.mailbox !== null && p.mailbox.domain !== '';
}
