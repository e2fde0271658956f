/*
 * config/parse-modern.ts — OpenSMTPD 6.4+ declarations and rules:
 *
 *   table NAME [file:|db:]PATH          table NAME { a, b }   table NAME { k = v }
 *   pki NAME cert "FILE" | key "FILE" | dhe auto|none|legacy   (repeatable)
 *   ca NAME cert "FILE"
 *   match [!]from any|local|socket|src T|ADDR/CIDR|rdns [T]|auth [T]|mail-from T
 *         [!]for any|local|domain T|rcpt-to T
 *         [!]auth [T] [!]helo T [!]mail-from T [!]rcpt-to T [!]tag T [!]tls
 *         action NAME | reject
 * T is `<name>`, a value or `{ values }`. A match without `from` means
 * `from local`, without `for` means `for local` (the conditions are added
 * to the rule so that nothing downstream needs to know the defaults).
 * `action` statements are in config/parse-action.ts.
 */
import type { Cursor, TableUse } from './cursor.js';
import type { Token } from './lexer.js';
import type { Condition, Position, TableDecl } from './model.js';
import { checkHostname, isIpAddress, looksNumeric, parseNetwork } from './values.js';

const UNSUPPORTED_BACKENDS = ['static', 'ldap', 'sqlite', 'postgres', 'mysql', 'redis', 'socketmap', 'proc', 'passwd', 'getpwnam'];

export function checkTableName(c: Cursor, t: Token): void {
  if (t.text === '' || /[<>\s]/.test(t.text)) c.error(t.pos, `invalid table name "${t.text}" (no spaces, "<" or ">")`);
}

export function parseTable(c: Cursor): void {
  const kw = c.next();
  c.dialect('modern', kw.pos);
  const name = c.value('a table name after "table"');
  checkTableName(c, name);
  let decl: TableDecl;
  if (c.isPunct('{')) {
    const d = c.braceTable({ text: name.text, pos: kw.pos });
    decl = d;
  } else {
    const src = c.value(`file:PATH, db:PATH or { values } after "table ${name.text}"`);
    decl = tableSource(c, name.text, kw.pos, src);
  }
  c.end('table');
  c.draft.tables.push({ decl, namePos: name.pos, dialect: 'modern' });
}

function tableSource(c: Cursor, name: string, pos: Position, src: Token): TableDecl {
  const m = /^([a-z][a-z0-9_-]*):(.*)$/i.exec(src.text);
  const backend = m ? (m[1] as string).toLowerCase() : undefined;
  if (backend === 'file' || backend === 'db') {
    const path = m?.[2] ?? '';
    if (path === '') c.fail(src.pos, `missing path after "${backend}:"`);
    return { name, pos, kind: backend, path: c.path(path) };
  }
  if (backend !== undefined || UNSUPPORTED_BACKENDS.includes(src.text)) {
    const b = backend ?? src.text;
    c.fail(src.pos, `table backend "${b}" is not supported by Postern (use file:PATH, db:PATH or { values })`);
  }
  return { name, pos, kind: 'file', path: c.path(src.text) };
}

export function parsePki(c: Cursor): void {
  const kw = c.next();
  c.dialect('modern', kw.pos);
  const name = c.value('a pki name (the host name it serves) after "pki"');
  if (name.text !== '*' && checkHostname(name.text) !== undefined) c.error(name.pos, `invalid pki name "${name.text}" (expected a host name or "*")`);
  if (c.atEnd()) c.fail(c.peek().pos, `expected "cert", "key" or "dhe" after "pki ${name.text}"`);
  const given: { key: 'cert' | 'key' | 'dhe'; value: Token; pos: Position }[] = [];
  while (!c.atEnd()) {
    const t = c.peek();
    if (t.kind !== 'word' || !['cert', 'key', 'dhe'].includes(t.text)) c.unknown(t, ['cert', 'key', 'dhe'], 'pki option');
    c.next();
    const value = c.value(`a ${t.text === 'dhe' ? 'dhe mode' : 'file name'} after "${t.text}"`);
    given.push({ key: t.text as 'cert' | 'key' | 'dhe', value, pos: t.pos });
  }
  c.end('pki');
  // Merge into the pki of that name only once the whole line is understood.
  let pki = c.draft.pki.get(name.text);
  if (pki === undefined) {
    pki = { name: name.text, pos: name.pos };
    c.draft.pki.set(name.text, pki);
  }
  for (const g of given) {
    if (g.key === 'cert') {
      if (pki.certPos !== undefined) c.error(g.pos, `pki "${name.text}" already has a certificate (line ${pki.certPos.line})`);
      pki.cert = c.path(g.value.text);
      pki.certPos = g.pos;
    } else if (g.key === 'key') {
      if (pki.keyPos !== undefined) c.error(g.pos, `pki "${name.text}" already has a key (line ${pki.keyPos.line})`);
      pki.key = c.path(g.value.text);
      pki.keyPos = g.pos;
    } else {
      const mode = g.value.text.toLowerCase();
      if (!['auto', 'none', 'legacy'].includes(mode)) c.error(g.value.pos, `invalid dhe mode "${g.value.text}" (expected auto, none or legacy)`);
      pki.dhe = mode;
    }
  }
}

export function parseCa(c: Cursor): void {
  const kw = c.next();
  c.dialect('modern', kw.pos);
  const name = c.value('a ca name after "ca"');
  c.expectWord('cert', `"ca ${name.text}"`);
  const file = c.value('a file name after "cert"');
  const prev = c.draft.ca.get(name.text);
  if (prev?.cert !== undefined) c.error(name.pos, `ca "${name.text}" already has a certificate (line ${prev.pos.line})`);
  c.draft.ca.set(name.text, { name: name.text, pos: prev?.pos ?? name.pos, cert: c.path(file.text) });
  c.end('ca');
}

/* ------------------------------------------------------------------ match */

const MATCH_OPTIONS = ['from', 'for', 'auth', 'helo', 'mail-from', 'rcpt-to', 'tag', 'tls', 'action', 'reject'];
const FROM_KINDS = ['any', 'local', 'socket', 'src', 'rdns', 'auth', 'mail-from'];
const FOR_KINDS = ['any', 'local', 'domain', 'rcpt-to'];

type ConditionBody = Condition extends infer C ? (C extends unknown ? Omit<C, 'negate' | 'pos'> : never) : never;

export function parseMatch(c: Cursor): void {
  const kw = c.next();
  c.dialect('modern', kw.pos);
  const conditions: Condition[] = [];
  const seen = new Map<string, Position>();
  let decision: 'accept' | 'reject' | undefined;
  let action: string | undefined;

  while (decision === undefined) {
    const first = c.peek();
    if (first.kind === 'newline' || first.kind === 'eof') {
      c.fail(first.pos, 'a match rule must end with "action NAME" or "reject"');
    }
    const negate = c.acceptPunct('!') !== undefined;
    const t = c.peek();
    if (t.kind !== 'word' || !MATCH_OPTIONS.includes(t.text)) c.unknown(t, MATCH_OPTIONS, 'match option');
    c.next();
    if (negate && (t.text === 'action' || t.text === 'reject')) c.fail(first.pos, `"!" cannot negate "${t.text}"`);
    if (t.text !== 'action' && t.text !== 'reject') {
      const prev = seen.get(t.text);
      if (prev !== undefined) c.fail(t.pos, `"${t.text}" is already given in this rule (column ${prev.col})`);
      seen.set(t.text, t.pos);
    }
    const add = (body: ConditionBody): void => {
      conditions.push({ ...body, negate, pos: first.pos } as Condition);
    };
    switch (t.text) {
      case 'from':
        add(fromCondition(c));
        break;
      case 'for':
        add(forCondition(c));
        break;
      case 'auth':
        add({ kind: 'auth', ...optionalTable(c, 'auth') });
        break;
      case 'helo':
        add({ kind: 'helo', table: c.tableRef({ what: 'helo', literal: true }).name });
        break;
      case 'mail-from':
        add({ kind: 'mail-from', table: c.tableRef({ what: 'mail-from', literal: true }).name });
        break;
      case 'rcpt-to':
        add({ kind: 'rcpt-to', table: c.tableRef({ what: 'rcpt-to', literal: true }).name });
        break;
      case 'tag':
        add({ kind: 'tag', tag: c.value('a tag after "tag"').text });
        break;
      case 'tls':
        add({ kind: 'tls' });
        break;
      case 'action': {
        const name = c.value('an action name after "action"');
        c.ref('action', name.text, name.pos);
        action = name.text;
        decision = 'accept';
        break;
      }
      case 'reject':
        decision = 'reject';
        break;
    }
  }
  const after = c.peek();
  if (after.kind !== 'newline' && after.kind !== 'eof') {
    c.fail(after.pos, `"${decision === 'accept' ? 'action NAME' : 'reject'}" must be the last thing in a match rule`);
  }
  c.end('match');
  const defaults: Condition[] = [];
  if (!seen.has('from')) defaults.push({ kind: 'from-local', negate: false, pos: kw.pos });
  if (!seen.has('for')) defaults.push({ kind: 'for-local', negate: false, pos: kw.pos });
  c.draft.rules.push({
    pos: kw.pos,
    dialect: 'modern',
    decision,
    ...(action !== undefined ? { action } : {}),
    conditions: [...defaults, ...conditions],
  });
}

function fromCondition(c: Cursor): ConditionBody {
  const t = c.peek();
  if (t.kind === 'word' && FROM_KINDS.includes(t.text)) {
    c.next();
    switch (t.text) {
      case 'any':
        return { kind: 'from-any' };
      case 'local':
        return { kind: 'from-local' };
      case 'socket':
        return { kind: 'from-socket' };
      case 'src':
        return { kind: 'from-src', table: srcTable(c).name };
      case 'rdns':
        return { kind: 'from-rdns', ...optionalTable(c, 'rdns') };
      case 'auth':
        return { kind: 'from-auth', ...optionalTable(c, 'auth') };
      default:
        return { kind: 'from-mail-from', table: c.tableRef({ what: 'mail-from', literal: true }).name };
    }
  }
  if (t.kind === 'string' || (t.kind === 'word' && (looksNumeric(t.text) || t.text.includes('/') || isIpAddress(t.text)))) {
    return { kind: 'from-src', table: srcTable(c).name };
  }
  if (t.kind === 'punct' && (t.text === '<' || t.text === '{')) return { kind: 'from-src', table: srcTable(c).name };
  c.unknown(t, FROM_KINDS, '"from" source');
}

function forCondition(c: Cursor): ConditionBody {
  const t = c.peek();
  if (t.kind !== 'word' || !FOR_KINDS.includes(t.text)) c.unknown(t, FOR_KINDS, '"for" destination');
  c.next();
  switch (t.text) {
    case 'any':
      return { kind: 'for-any' };
    case 'local':
      return { kind: 'for-local' };
    case 'domain':
      return { kind: 'for-domain', table: c.tableRef({ what: 'the domains', literal: true }).name };
    default:
      return { kind: 'for-rcpt-to', table: c.tableRef({ what: 'rcpt-to', literal: true }).name };
  }
}

export function srcTable(c: Cursor): TableUse {
  return c.tableRef({ what: 'the source networks', literal: true, check: (v) => netCheck(v) });
}

function netCheck(v: string): string | undefined {
  const r = parseNetwork(v);
  return r.ok ? undefined : r.error;
}

/** An optional table after rdns/auth: present if the next token is <…>, { or a quoted string. */
function optionalTable(c: Cursor, what: string): { table?: string } {
  const t = c.peek();
  const present = (t.kind === 'punct' && (t.text === '<' || t.text === '{')) || t.kind === 'string' || (t.kind === 'word' && !MATCH_OPTIONS.includes(t.text));
  if (!present) return {};
  return { table: c.tableRef({ what, literal: true }).name };
}
