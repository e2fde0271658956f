/*
 * config/parse-legacy.ts — OpenSMTPD 4.6–5.2 maps and rules.
 *
 *   map NAME { source db|plain|file "PATH" }      (also: map NAME source db "PATH")
 *   accept|reject [on TAG] [from all|any|local|ADDR|CIDR|map M|<M>]
 *         for all|any|local|domain D|domain map M|virtual M|{ DEST, … } [alias M]
 *         deliver to mbox | deliver to maildir ["PATH"] | deliver to mda "CMD"
 *         | relay [as ADDR] | relay backup [HOST]
 *         | relay via HOST [port N] [tls|smtps|ssl] [certificate C]
 *                   [auth "M"|enable auth] [as ADDR]
 * (`size` and `expire` are in config/parse-options.ts.)
 *
 * Legacy semantics, made explicit in the model:
 *   - no `from` means `from local`; `for all` means any destination;
 *   - each accept rule gets its own action, named "<rule:FILE:LINE>";
 *   - `relay via` becomes a relay host: tls ⇒ smtp+tls, smtps/ssl ⇒ smtps,
 *     neither ⇒ smtp; `enable auth` takes credentials from the map named
 *     "secrets", `auth "M"` from map M;
 *   - `for local` uses the map named "aliases" as alias table when one is
 *     declared (anywhere in the file); `for virtual M` uses M as the virtual
 *     table of the action (config/build.ts applies the "aliases" rule).
 */
import type { Cursor, TableUse } from './cursor.js';
import type { Mutable } from './draft.js';
import type { Token } from './lexer.js';
import type { Action, Condition, Position, RelayOptions, TableDecl } from './model.js';
import { checkTableName, srcTable } from './parse-modern.js';
import { checkHost, checkMailAddress, parsePort, parseRelayUrl } from './values.js';

export function parseMap(c: Cursor): void {
  const kw = c.next();
  c.dialect('legacy', kw.pos);
  const name = c.value('a map name after "map"');
  checkTableName(c, name);
  let decl: TableDecl | undefined;
  if (c.acceptPunct('{')) {
    let atLineStart = false;
    for (;;) {
      while (c.peek().kind === 'newline' || c.isPunct(',')) atLineStart = c.next().kind === 'newline' || atLineStart;
      const t = c.peek();
      if (c.acceptPunct('}')) break;
      if (t.kind === 'eof' || (atLineStart && t.kind === 'word' && t.text !== 'source' && t.text !== 'type')) {
        c.fail(t.pos, `expected "}" to close the map "${name.text}"`);
      }
      atLineStart = false;
      decl = mapOption(c, name.text, kw.pos, decl) ?? decl;
    }
  } else {
    decl = mapOption(c, name.text, kw.pos, decl);
  }
  c.end('map');
  if (decl === undefined) {
    c.error(name.pos, `map "${name.text}" has no source (add: source db "/path/to/file.db")`);
    return;
  }
  c.draft.tables.push({ decl, namePos: name.pos, dialect: 'legacy' });
}

function mapOption(c: Cursor, name: string, pos: Position, prev: TableDecl | undefined): TableDecl | undefined {
  const t = c.peek();
  if (t.kind !== 'word' || (t.text !== 'source' && t.text !== 'type')) c.unknown(t, ['source', 'type'], 'map option');
  c.next();
  if (t.text === 'type') {
    // `type single|list|hash`: how 4.6 stored the map; the file format tells us the same.
    const v = c.value('single, list or hash after "type"');
    if (!['single', 'list', 'hash'].includes(v.text)) c.error(v.pos, `invalid map type "${v.text}" (expected single, list or hash)`);
    return undefined;
  }
  if (prev !== undefined) c.fail(t.pos, `map "${name}" already has a source`);
  const st = c.peek();
  if (st.kind !== 'word' || !['db', 'plain', 'file'].includes(st.text)) {
    if (st.kind === 'word' && (st.text === 'dns' || st.text === 'external')) c.fail(st.pos, `map source "${st.text}" is not supported by Postern (use db, plain or file)`);
    c.unknown(st, ['db', 'plain', 'file'], 'map source');
  }
  c.next();
  const path = c.value(`a file name after "source ${st.text}"`);
  return { name, pos, kind: st.text === 'db' ? 'db' : 'file', path: c.path(path.text) };
}

/* ----------------------------------------------------------------- rules */

interface Destination {
  readonly cond: Condition;
  readonly local: boolean;
  readonly virtual?: string;
  readonly alias?: TableUse;
}

const FOR_WORDS = ['all', 'any', 'local', 'domain', 'virtual'];

export function parseLegacyRule(c: Cursor): void {
  const kw = c.next();
  c.dialect('legacy', kw.pos);
  const decision = kw.text === 'accept' ? 'accept' : 'reject';
  const head: Condition[] = [];
  if (c.acceptWord('on')) {
    const tag = c.value('a listener tag or interface after "on"');
    head.push({ kind: 'tag', tag: tag.text, negate: false, pos: tag.pos });
  }
  const fromTok = c.acceptWord('from');
  head.unshift(fromTok === undefined ? { kind: 'from-local', negate: false, pos: kw.pos } : { ...legacySource(c), negate: false, pos: fromTok.pos });
  c.expectWord('for', fromTok ? 'the source' : `"${kw.text}"`);
  const dests: Destination[] = [];
  if (c.acceptPunct('{')) {
    do {
      while (c.peek().kind === 'newline') c.next();
      dests.push(legacyDestination(c));
      while (c.peek().kind === 'newline') c.next();
    } while (c.acceptPunct(','));
    c.expectPunct('}', 'to close the list of destinations');
  } else {
    dests.push(legacyDestination(c));
  }

  let actionName: string | undefined;
  if (decision === 'accept') {
    actionName = `<rule:${kw.pos.file}:${kw.pos.line}>`;
    const a = legacyAction(c, actionName, kw.pos);
    const aliases = dests.filter((d) => d.alias !== undefined).map((d) => d.alias as TableUse);
    if (new Set(aliases.map((x) => x.name)).size > 1) c.error((aliases[1] as TableUse).pos, 'all destinations of one rule must use the same alias map');
    const virtual = dests.find((d) => d.virtual !== undefined)?.virtual;
    const local = a.kind === 'mbox' || a.kind === 'maildir' || a.kind === 'mda';
    if (aliases[0] !== undefined) {
      if (local) a.alias = aliases[0].name;
      else c.error(aliases[0].pos, '"alias" only applies to local delivery (deliver to …), not to relay');
    } else if (local && virtual !== undefined) {
      a.virtual = virtual;
    }
    const implicitAlias = local && a.alias === undefined && a.virtual === undefined && dests.some((d) => d.local);
    c.draft.actions.push({ action: a, namePos: kw.pos, synthesized: true, implicitAlias });
  } else if (!c.atEnd()) {
    const t = c.peek();
    if (t.kind === 'word' && (t.text === 'deliver' || t.text === 'relay')) c.fail(t.pos, 'a reject rule takes no delivery action');
  }
  c.end(kw.text);
  for (const d of dests) {
    c.draft.rules.push({
      pos: kw.pos,
      dialect: 'legacy',
      decision,
      ...(actionName !== undefined ? { action: actionName } : {}),
      conditions: [...head, d.cond],
    });
  }
}

type SourceBody = { kind: 'from-any' } | { kind: 'from-local' } | { kind: 'from-src'; table: string };

function legacySource(c: Cursor): SourceBody {
  const t = c.peek();
  if (t.kind === 'word' && (t.text === 'all' || t.text === 'any')) {
    c.next();
    return { kind: 'from-any' };
  }
  if (t.kind === 'word' && t.text === 'local') {
    c.next();
    return { kind: 'from-local' };
  }
  if (t.kind === 'word' && t.text === 'map') {
    c.next();
    return { kind: 'from-src', table: mapName(c, 'map') };
  }
  if (t.kind === 'word' && t.text === 'for') c.fail(t.pos, 'expected a source after "from" (all, local, an address, a network or map NAME)');
  return { kind: 'from-src', table: srcTable(c).name };
}

/** `map M`, `<M>`, or a bare/quoted M — a legacy map named by the user. */
function mapName(c: Cursor, after: string): string {
  if (c.isPunct('<')) return c.tableRef({ what: 'the map' }).name;
  const v = c.value(`a map name after "${after}"`);
  c.ref('table', v.text, v.pos);
  return v.text;
}

function legacyDestination(c: Cursor): Destination {
  const t = c.peek();
  if (t.kind !== 'word' || !FOR_WORDS.includes(t.text)) c.unknown(t, FOR_WORDS, '"for" destination');
  c.next();
  const pos = t.pos;
  let d: Destination;
  switch (t.text) {
    case 'all':
    case 'any':
      d = { cond: { kind: 'for-any', negate: false, pos }, local: false };
      break;
    case 'local':
      d = { cond: { kind: 'for-local', negate: false, pos }, local: true };
      break;
    case 'domain': {
      const table = c.acceptWord('map') ? mapName(c, 'domain map') : c.tableRef({ what: 'the domain', literal: true }).name;
      d = { cond: { kind: 'for-domain', table, negate: false, pos }, local: false };
      break;
    }
    default: {
      c.acceptWord('map');
      const table = mapName(c, 'virtual');
      d = { cond: { kind: 'for-virtual', table, negate: false, pos }, local: false, virtual: table };
      break;
    }
  }
  if (c.acceptWord('alias')) {
    const name = c.isPunct('<') ? c.tableRef({ what: 'aliases' }) : refName(c);
    return { ...d, alias: name };
  }
  return d;
}

function refName(c: Cursor): TableUse {
  c.acceptWord('map');
  const v = c.value('a map name after "alias"');
  c.ref('table', v.text, v.pos);
  return { name: v.text, pos: v.pos };
}

const DELIVERY = ['mbox', 'maildir', 'mda'];

function legacyAction(c: Cursor, name: string, pos: Position): Mutable<Action> {
  const t = c.peek();
  if (t.kind !== 'word' || (t.text !== 'deliver' && t.text !== 'relay')) c.unknown(t, ['deliver', 'relay'], 'rule action');
  c.next();
  if (t.text === 'deliver') {
    c.expectWord('to', '"deliver"');
    const m = c.peek();
    if (m.kind !== 'word' || !DELIVERY.includes(m.text)) c.unknown(m, DELIVERY, 'delivery method');
    c.next();
    const a: Mutable<Action> = { name, pos, kind: m.text as 'mbox' | 'maildir' | 'mda', junk: false };
    if (m.text === 'maildir' && !c.atEnd() && !c.isWord('user')) a.maildirPath = c.value('a maildir path').text;
    if (m.text === 'mda') a.command = c.value('a command after "mda"').text;
    if (m.text !== 'mbox' && c.acceptWord('user')) a.user = c.value('a user name after "user"').text;
    return a;
  }
  const r: Mutable<RelayOptions> = { backup: false, tls: 'opportunistic', tlsNoVerify: false, srs: false };
  const a: Mutable<Action> = { name, pos, kind: 'relay', junk: false, relay: r };
  if (c.acceptWord('backup')) {
    r.backup = true;
    if (!c.atEnd() && !c.isWord('as')) r.backupMx = hostValue(c).text;
  } else if (c.acceptWord('via')) {
    relayVia(c, r);
  }
  if (c.acceptWord('as')) {
    const v = c.value('an address after "as"');
    const bad = checkMailAddress(v.text);
    if (bad !== undefined) c.error(v.pos, bad);
    r.mailFrom = v.text;
  }
  return a;
}

function hostValue(c: Cursor): Token {
  const v = c.value('a host name');
  const bad = checkHost(v.text);
  if (bad !== undefined) c.error(v.pos, bad);
  return v;
}

function relayVia(c: Cursor, r: Mutable<RelayOptions>): void {
  const hv = c.value('a host after "relay via"');
  let host = { scheme: 'smtp' as const, host: hv.text } as Mutable<NonNullable<RelayOptions['host']>>;
  if (hv.text.includes('://')) {
    const u = parseRelayUrl(hv.text);
    if (u.ok) host = { ...u.value };
    else c.error(hv.pos, u.error);
  } else {
    const bad = checkHost(hv.text);
    if (bad !== undefined) c.error(hv.pos, bad);
  }
  const seen = new Map<string, Token>();
  const options = ['port', 'tls', 'smtps', 'ssl', 'certificate', 'auth', 'enable'];
  while (!c.atEnd() && !c.isWord('as')) {
    const t = c.peek();
    if (t.kind !== 'word' || !options.includes(t.text)) c.unknown(t, [...options, 'as'], '"relay via" option');
    c.next();
    const group = ['tls', 'smtps', 'ssl'].includes(t.text) ? 'a TLS mode' : t.text === 'enable' ? 'auth' : t.text;
    const prev = seen.get(group);
    if (prev !== undefined) c.fail(t.pos, `${group === t.text ? `"${group}"` : group} is already given (column ${prev.pos.col})`);
    seen.set(group, t);
    switch (t.text) {
      case 'port': {
        const v = c.value('a port number after "port"');
        const p = parsePort(v.text);
        if (p.ok) host.port = p.value;
        else c.error(v.pos, p.error);
        break;
      }
      case 'tls':
        host.scheme = 'smtp+tls';
        break;
      case 'smtps':
      case 'ssl':
        host.scheme = 'smtps';
        break;
      case 'certificate':
        r.pki = c.value('a certificate name after "certificate"').text;
        break;
      case 'enable':
        c.expectWord('auth', '"enable"');
        r.authTable = 'secrets';
        c.ref('table', 'secrets', t.pos, '"enable auth" takes the relay credentials from a map named "secrets", but none is declared (add: map "secrets" { source db "/etc/mail/secrets.db" })');
        break;
      default:
        r.authTable = mapName(c, 'auth');
        break;
    }
  }
  const auth = seen.get('auth');
  if (auth !== undefined && host.scheme === 'smtp') {
    c.error(auth.pos, `"${auth.text === 'enable' ? 'enable auth' : 'auth'}" on a relay needs "tls", "smtps" or "ssl": credentials are never sent in clear text`);
  }
  r.host = host;
  r.tls = host.scheme === 'smtp+tls' ? 'required' : host.scheme === 'smtps' ? 'smtps' : host.scheme === 'smtp+notls' ? 'none' : 'opportunistic';
}
