/*
 * config/parse-filter.ts — the `filter` statements (smtpd.conf(5) of
 * OpenSMTPD 6.6+, with a `milter` kind of Postern's own), and their checks:
 *
 *   filter NAME milter "inet:HOST:PORT" | "unix:/PATH"
 *          [default-action tempfail|accept|reject]
 *          [connect-timeout DUR] [command-timeout DUR] [content-timeout DUR]
 *   filter NAME proc-exec "COMMAND" [user USER] [group GROUP] [timeout DUR]
 *   filter NAME chain { A, B, … }
 *   filter NAME phase PHASE match [!]COND … DECISION
 *       PHASE     connect helo ehlo mail-from rcpt-to data commit
 *       COND      rdns [<t>] | fcrdns | src <t> | helo <t> | mail-from <t> | rcpt-to <t> | auth [<t>]
 *                 (a table may be `regex <t>`: its values are regular expressions)
 *                 | spf|dkim|dmarc|arc RESULT | { RESULT, … }   (phase commit only: `mailauth verify`'s results)
 *       DECISION  bypass | junk | reject "CODE TEXT" | disconnect "CODE TEXT" | rewrite "VALUE" | report "TEXT"
 *                 | quarantine | tag "Name: value"   (the last two at phase commit)
 *
 * and on a listen line, `filter NAME` (config/parse-listen.ts). Names are
 * checked at the end (buildFilters): a chain's members and a listener's
 * filter must exist, chains may not contain themselves.
 */
import type { Cursor } from './cursor.js';
import { where } from './cursor.js';
import type { Token } from './lexer.js';
import type { Diagnostics } from './diagnostics.js';
import type { Listener, Position } from './model.js';
import { AUTH_METHODS, AUTH_RESULT_WORDS, MILTER_DEFAULTS, type BuiltinCondition, type BuiltinDecision, type BuiltinPhase, type FilterDecl, type MilterDefault } from './filter-options.js';
import { parseDuration } from './values.js';

const KINDS = ['milter', 'proc-exec', 'chain', 'phase'];
const PHASES: readonly BuiltinPhase[] = ['connect', 'helo', 'ehlo', 'mail-from', 'rcpt-to', 'data', 'commit'];
const CONDITIONS = ['rdns', 'fcrdns', 'src', 'helo', 'mail-from', 'rcpt-to', 'auth', ...AUTH_METHODS] as const;
const DECISIONS = ['bypass', 'junk', 'reject', 'disconnect', 'rewrite', 'report', 'quarantine', 'tag'];
const DEFAULTS: readonly MilterDefault[] = ['tempfail', 'accept', 'reject'];
/** Which conditions make sense at which phase (what is known by then). */
const KNOWN_AT: Readonly<Record<string, readonly BuiltinPhase[]>> = {
  helo: ['helo', 'ehlo', 'mail-from', 'rcpt-to', 'data', 'commit'],
  'mail-from': ['mail-from', 'rcpt-to', 'data', 'commit'],
  'rcpt-to': ['rcpt-to'],
  spf: ['commit'],
  dkim: ['commit'],
  dmarc: ['commit'],
  arc: ['commit'],
};

/** The filters declared so far: on the draft (config/draft.ts). */
export type FilterDraft = Map<string, FilterDecl>;

export function parseFilter(c: Cursor, filters: FilterDraft): void {
  c.next();
  const name = c.value('a filter name after "filter"');
  const kind = c.next();
  if (kind.kind !== 'word' || !KINDS.includes(kind.text)) c.unknown(kind, KINDS, 'filter kind');
  let decl: FilterDecl;
  const pos = name.pos;
  if (kind.text === 'milter') {
    const socket = c.value('the milter\'s address after "milter" (e.g. "inet:127.0.0.1:11332" or "unix:/run/milter.sock")');
    if (!/^(\/|unix:\/|local:\/|inet6?:)/.test(socket.text)) c.error(socket.pos, `invalid milter address "${socket.text}" (expected "inet:HOST:PORT", "inet6:[ADDR]:PORT" or "unix:/PATH")`);
    let defaultAction: MilterDefault = MILTER_DEFAULTS.defaultAction;
    const t: Record<'connect' | 'command' | 'content', number> = { connect: MILTER_DEFAULTS.connectTimeoutMs, command: MILTER_DEFAULTS.commandTimeoutMs, content: MILTER_DEFAULTS.contentTimeoutMs };
    while (!c.atEnd()) {
      const o = c.next();
      if (o.kind === 'word' && o.text === 'default-action') {
        const a = c.next();
        if (a.kind !== 'word' || !(DEFAULTS as readonly string[]).includes(a.text)) c.unknown(a, DEFAULTS, 'default action');
        defaultAction = a.text as MilterDefault;
      } else if (o.kind === 'word' && /^(connect|command|content)-timeout$/.test(o.text)) {
        const v = c.value(`a duration after "${o.text}"`);
        const d = parseDuration(v.text, true);
        if (!d.ok) c.error(v.pos, d.error);
        else if (d.value === 0) c.error(v.pos, `"${o.text}" cannot be 0`);
        else t[o.text.slice(0, -'-timeout'.length) as keyof typeof t] = d.value;
      } else c.unknown(o, ['default-action', 'connect-timeout', 'command-timeout', 'content-timeout'], '"milter" option');
    }
    decl = { kind: 'milter', name: name.text, pos, socket: socket.text, defaultAction, connectTimeoutMs: t.connect, commandTimeoutMs: t.command, contentTimeoutMs: t.content };
  } else if (kind.text === 'proc-exec') {
    const command = c.value('a command after "proc-exec"');
    let user: string | undefined;
    let group: string | undefined;
    let timeoutMs: number | undefined;
    while (!c.atEnd()) {
      const o = c.next();
      if (o.kind === 'word' && o.text === 'user') user = c.value('a user name after "user"').text;
      else if (o.kind === 'word' && o.text === 'group') group = c.value('a group name after "group"').text;
      else if (o.kind === 'word' && o.text === 'timeout') {
        const v = c.value('a duration after "timeout"');
        const d = parseDuration(v.text, true);
        if (!d.ok) c.error(v.pos, d.error);
        else if (d.value === 0) c.error(v.pos, '"timeout" cannot be 0');
        else timeoutMs = d.value;
      } else c.unknown(o, ['user', 'group', 'timeout'], '"proc-exec" option');
    }
    decl = { kind: 'proc', name: name.text, pos, command: command.text, ...(user !== undefined ? { user } : {}), ...(group !== undefined ? { group } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
  } else if (kind.text === 'chain') {
    c.expectPunct('{', '"chain"');
    const members: string[] = [];
    for (;;) {
      const m = c.value('a filter name in the chain');
      members.push(m.text);
      if (c.acceptPunct(',')) continue;
      c.expectPunct('}', 'the chain\'s members');
      break;
    }
    decl = { kind: 'chain', name: name.text, pos, members };
  } else {
    const ph = c.next();
    if (ph.kind !== 'word' || !(PHASES as readonly string[]).includes(ph.text)) c.unknown(ph, PHASES, 'filter phase');
    const phase = ph.text as BuiltinPhase;
    c.expectWord('match', `"phase ${phase}"`);
    const conditions: BuiltinCondition[] = [];
    for (;;) {
      const neg = c.acceptPunct('!') !== undefined;
      const w = c.peek();
      if (w.kind !== 'word' || !(CONDITIONS as readonly string[]).includes(w.text)) {
        if (conditions.length > 0 && !neg && w.kind === 'word' && DECISIONS.includes(w.text)) break;
        c.unknown(w, CONDITIONS, 'filter condition');
      }
      c.next();
      const what = w.text as BuiltinCondition['what'];
      const known = KNOWN_AT[what];
      if (known !== undefined && !known.includes(phase)) c.error(w.pos, `"${what}" is not known yet at phase ${phase}${phase !== 'commit' && (AUTH_METHODS as readonly string[]).includes(what) ? ' (mail authentication results exist at phase commit)' : ''}`);
      if ((AUTH_METHODS as readonly string[]).includes(what)) {
        conditions.push({ negate: neg, what, regex: false, results: authResults(c, what) });
        continue;
      }
      const regex = c.acceptWord('regex') !== undefined;
      const next = c.peek();
      const hasTable = next.kind === 'string' || (next.kind === 'punct' && (next.text === '<' || next.text === '{'));
      if ((what === 'src' || what === 'helo' || what === 'mail-from' || what === 'rcpt-to') && !hasTable) c.fail(next.pos, `"${what}" needs a table (<name>) or a value`);
      if (what === 'fcrdns' && (hasTable || regex)) c.fail(next.pos, '"fcrdns" takes no table');
      const table = hasTable ? tableName(c, what, regex) : undefined;
      conditions.push({ negate: neg, what, regex, ...(table !== undefined ? { table } : {}) });
    }
    const d = c.next();
    if (d.kind !== 'word' || !DECISIONS.includes(d.text)) c.unknown(d, DECISIONS, 'filter decision');
    let decision: BuiltinDecision;
    if ((d.text === 'quarantine' || d.text === 'tag') && phase !== 'commit') c.error(d.pos, `"${d.text}" works at phase commit only`);
    if (d.text === 'bypass' || d.text === 'junk' || d.text === 'quarantine') decision = { kind: d.text };
    else if (d.text === 'tag') {
      const v = c.value('a header field after "tag" (e.g. "X-Auth-Warning: DMARC failed")');
      const m = /^([!-9;-~]+):[ \t]*([^\r\n]*)$/.exec(v.text);
      if (!m || (m[2] ?? '').trim() === '' || /[\x00-\x08\x0a-\x1f\x7f]/.test(v.text)) c.error(v.pos, `"tag" needs one header field "Name: value" on one line, found "${v.text}"`);
      decision = { kind: 'tag', name: m?.[1] ?? 'X-Tag', value: (m?.[2] ?? '').trim() };
    }
    else if (d.text === 'rewrite') {
      if (phase !== 'helo' && phase !== 'ehlo' && phase !== 'mail-from') c.error(d.pos, `"rewrite" works at phases helo, ehlo and mail-from in Postern, not ${phase}`);
      decision = { kind: 'rewrite', value: c.value('a value after "rewrite"').text };
    } else {
      const text = c.value(`a reply after "${d.text}" (e.g. "550 5.7.1 go away")`);
      if (d.text !== 'report' && !/^[45]\d\d[ -]/.test(text.text)) c.error(text.pos, `"${d.text}" needs a 4xx or 5xx reply, found "${text.text}"`);
      decision = { kind: d.text as 'reject' | 'disconnect' | 'report', text: text.text };
    }
    decl = { kind: 'builtin', name: name.text, pos, phase, conditions, decision };
  }
  c.end('filter');
  const first = filters.get(name.text);
  if (first !== undefined) c.error(name.pos, `filter "${name.text}" is already defined at ${where(first.pos, name.pos)}`);
  else filters.set(name.text, decl);
}

/** `dkim pass` or `dmarc { fail, temperror }`: the result words a mail-authentication condition matches. */
function authResults(c: Cursor, what: string): string[] {
  const words: Token[] = [];
  if (c.acceptPunct('{') !== undefined) {
    for (;;) {
      words.push(c.next());
      if (c.acceptPunct(',')) continue;
      c.expectPunct('}', `the results of "${what}"`);
      break;
    }
  } else words.push(c.next());
  for (const w of words) if (w.kind !== 'word' || !(AUTH_RESULT_WORDS as readonly string[]).includes(w.text)) c.unknown(w, AUTH_RESULT_WORDS, `${what} result`);
  return words.map((w) => w.text);
}

function tableName(c: Cursor, what: string, regex: boolean): string {
  const t = c.peek();
  if (regex && t.kind === 'punct' && t.text === '<') {
    c.next();
    const n = c.value('a table name after "<"');
    c.expectPunct('>', `to close the table name <${n.text}`);
    c.ref('table', n.text, n.pos);
    return n.text;
  }
  return c.tableRef({ what: `the filter's ${what}`, literal: true }).name;
}

/** Names used: a chain's members, a listener's filter; chains without cycles. Returns the filters (or undefined when none). */
export function buildFilters(filters: FilterDraft, listeners: readonly Pick<Listener, 'filter' | 'pos'>[], diags: Diagnostics): ReadonlyMap<string, FilterDecl> | undefined {
  for (const f of filters.values()) {
    if (f.kind !== 'chain') continue;
    for (const m of f.members) if (!filters.has(m)) diags.error(f.pos, `filter chain "${f.name}": no filter named "${m}"`);
    if (cyclic(filters, f.name, [])) diags.error(f.pos, `filter chain "${f.name}" contains itself`);
  }
  for (const l of listeners) {
    if (l.filter !== undefined && !filters.has(l.filter)) diags.error(l.pos as Position, `listen … filter: no filter named "${l.filter}"`);
  }
  return filters.size > 0 ? filters : undefined;
}

function cyclic(filters: FilterDraft, name: string, path: readonly string[]): boolean {
  if (path.includes(name)) return true;
  const f = filters.get(name);
  if (f?.kind !== 'chain') return false;
  return f.members.some((m) => cyclic(filters, m, [...path, name]));
}
