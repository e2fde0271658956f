/*
 * config/parse-action.ts — the modern `action NAME …` statement.
 *
 *   action NAME mbox | maildir ["PATH"] [junk] | mda "CMD" | lmtp "DEST" [rcpt-to]
 *               | expand-only | forward-only           + local options
 *   action NAME relay [host URL] [backup [mx NAME]] [tls [no-verify]]
 *               [auth <T> [auth-over-plaintext]] [helo NAME] [helo-src T] [src ADDR|T]
 *               [mail-from ADDR] [pki NAME] [ca NAME] [srs]   + relay options
 *   local options: alias T, virtual T, userbase T, user NAME, wrapper NAME
 *   any action:    ttl DURATION
 * Options come in any order, each once. Relay TLS: `tls` requires STARTTLS
 * with a verified certificate (`no-verify` skips the check); otherwise the
 * host URL's scheme decides (smtp+tls ⇒ required, smtps ⇒ TLS on connect,
 * smtp+notls ⇒ none, smtp or no host ⇒ opportunistic). Credentials are
 * sent only over TLS; `auth-over-plaintext` (after `auth <T>`) lets them go
 * in clear to a smarthost that offers no TLS, with a warning.
 */
import type { Cursor } from './cursor.js';
import type { Mutable } from './draft.js';
import type { Token } from './lexer.js';
import type { Action, ActionKind, Position, RelayOptions } from './model.js';
import { srcTable } from './parse-modern.js';
import { checkHost, checkHostname, checkMailAddress, parseDuration, parseRelayUrl } from './values.js';

const KINDS: readonly ActionKind[] = ['mbox', 'maildir', 'mda', 'lmtp', 'relay', 'expand-only', 'forward-only'];
const LOCAL_OPTIONS = ['alias', 'virtual', 'userbase', 'user', 'wrapper'];
const RELAY_OPTIONS = ['host', 'backup', 'tls', 'auth', 'helo', 'helo-src', 'src', 'mail-from', 'pki', 'ca', 'srs'];
const ALL_OPTIONS = [...LOCAL_OPTIONS, ...RELAY_OPTIONS, 'ttl', 'junk'];

export function parseAction(c: Cursor): void {
  const kw = c.next();
  c.dialect('modern', kw.pos);
  const name = c.value('an action name after "action"');
  const kt = c.peek();
  if (kt.kind !== 'word' || !(KINDS as readonly string[]).includes(kt.text)) c.unknown(kt, KINDS, 'action type');
  c.next();
  const kind = kt.text as ActionKind;
  const a: Mutable<Action> = { name: name.text, pos: kw.pos, kind, junk: false };

  switch (kind) {
    case 'maildir': {
      const p = c.peek();
      if (p.kind === 'string' || (p.kind === 'word' && !ALL_OPTIONS.includes(p.text))) a.maildirPath = c.next().text;
      if (c.acceptWord('junk')) a.junk = true;
      break;
    }
    case 'mda':
      a.command = c.value('a command after "mda"').text;
      break;
    case 'lmtp': {
      const d = c.value('a destination ("host:port" or "/path/to/socket") after "lmtp"');
      a.lmtpDestination = d.text;
      if (!d.text.startsWith('/') && !/^(\[[^\]]+\]|[^:]+):\w+$/.test(d.text)) {
        c.error(d.pos, `invalid lmtp destination "${d.text}" (expected "host:port" or "/path/to/socket")`);
      }
      if (c.acceptWord('rcpt-to')) a.lmtpRcptTo = 'rcpt-to';
      break;
    }
    default:
      break;
  }
  const relay: Mutable<RelayOptions> | undefined = kind === 'relay' ? { backup: false, tls: 'opportunistic', tlsNoVerify: false, srs: false } : undefined;
  const seen = new Map<string, Position>();
  let tlsExplicit = false;
  let authPos: Position | undefined;

  while (!c.atEnd()) {
    const t = c.peek();
    if (t.kind !== 'word' || !ALL_OPTIONS.includes(t.text)) c.unknown(t, relay ? [...RELAY_OPTIONS, 'ttl'] : [...LOCAL_OPTIONS, 'ttl'], 'action option');
    c.next();
    const prev = seen.get(t.text);
    if (prev !== undefined) c.fail(t.pos, `"${t.text}" is already given for this action (column ${prev.col})`);
    seen.set(t.text, t.pos);
    if (t.text === 'ttl') {
      const v = c.value('a duration after "ttl"');
      const d = parseDuration(v.text);
      if (d.ok) a.ttl = Math.floor(d.value / 1000);
      else c.error(v.pos, d.error);
      continue;
    }
    if (t.text === 'junk') c.fail(t.pos, '"junk" goes right after "maildir" (or its path)');
    if (LOCAL_OPTIONS.includes(t.text)) {
      if (relay) c.fail(t.pos, `"${t.text}" is not valid for a relay action (alias, virtual, userbase, user and wrapper apply to local delivery)`);
      localOption(c, t, a, seen);
      continue;
    }
    if (!relay) c.fail(t.pos, `"${t.text}" is only valid for relay actions`);
    if (t.text === 'tls') tlsExplicit = true;
    if (t.text === 'auth') authPos = t.pos;
    relayOption(c, t, relay, seen);
  }
  c.end('action');

  if (relay) {
    const scheme = relay.host?.scheme;
    if (tlsExplicit && scheme === 'smtp+notls') c.error(seen.get('tls') as Position, '"tls" contradicts the host\'s smtp+notls:// scheme');
    if (!tlsExplicit) relay.tls = scheme === 'smtp+tls' ? 'required' : scheme === 'smtps' ? 'smtps' : scheme === 'smtp+notls' ? 'none' : 'opportunistic';
    else if (scheme === 'smtps') relay.tls = 'smtps';
    if (authPos !== undefined && relay.host === undefined) c.error(authPos, '"auth" needs a relay host: add "host smtp+tls://label@host" (the label selects the credentials)');
    a.relay = relay;
  }
  c.draft.actions.push({ action: a, namePos: name.pos, synthesized: false, implicitAlias: false });
}

function localOption(c: Cursor, t: Token, a: Mutable<Action>, seen: Map<string, Position>): void {
  switch (t.text) {
    case 'alias':
    case 'virtual': {
      const other = t.text === 'alias' ? 'virtual' : 'alias';
      if (seen.has(other)) c.error(t.pos, '"alias" and "virtual" cannot be used together');
      const table = c.tableRef({ what: t.text, literal: true }).name;
      if (t.text === 'alias') a.alias = table;
      else a.virtual = table;
      break;
    }
    case 'userbase':
      a.userbase = c.tableRef({ what: 'userbase', literal: true }).name;
      break;
    case 'user':
      if (a.kind === 'mbox' || a.kind === 'expand-only' || a.kind === 'forward-only') {
        c.error(t.pos, `"user" cannot be used with ${a.kind} (the mail is delivered as its recipient)`);
      }
      a.user = c.value('a user name after "user"').text;
      break;
    default:
      a.wrapper = c.value('an mda wrapper name after "wrapper"').text;
      c.warning(t.pos, '"wrapper" cannot be honoured: Postern has no "mda wrapper" statement, so deliveries through this action are deferred (4.3.5) until it is removed');
      break;
  }
}

function relayOption(c: Cursor, t: Token, r: Mutable<RelayOptions>, seen: Map<string, Position>): void {
  switch (t.text) {
    case 'host': {
      if (seen.has('backup')) c.error(t.pos, '"host" and "backup" cannot be used together');
      if (c.isPunct('<')) c.fail(c.peek().pos, 'relay host tables are not supported; give one URL, e.g. host smtp+tls://mx.example.org:587');
      const v = c.value('a relay URL after "host" (e.g. smtp+tls://mx.example.org:587)');
      const u = parseRelayUrl(v.text);
      if (u.ok) r.host = u.value;
      else c.error(v.pos, u.error);
      break;
    }
    case 'backup':
      if (seen.has('host')) c.error(t.pos, '"host" and "backup" cannot be used together');
      r.backup = true;
      if (c.acceptWord('mx')) {
        const v = c.value('an MX name after "backup mx"');
        const bad = checkHost(v.text);
        if (bad !== undefined) c.error(v.pos, bad);
        r.backupMx = v.text;
      }
      break;
    case 'tls':
      if (c.acceptWord('no-verify')) r.tlsNoVerify = true;
      r.tls = 'required';
      break;
    case 'auth':
      r.authTable = c.tableRef({ what: 'relay credentials' }).name;
      if (c.isWord('auth-over-plaintext')) {
        const w = c.next();
        r.authOverPlaintext = true;
        c.warning(w.pos, '"auth-over-plaintext": the relay credentials are sent without TLS when the host offers none; anyone on the path can read them');
      }
      break;
    case 'helo': {
      const v = c.value('a host name after "helo"');
      const bad = checkHostname(v.text);
      if (bad !== undefined) c.error(v.pos, bad);
      r.helo = v.text;
      break;
    }
    case 'helo-src':
      r.heloSrc = c.tableRef({ what: 'helo-src', literal: true }).name;
      break;
    case 'src':
      r.src = srcTable(c).name;
      break;
    case 'mail-from': {
      const v = c.value('an address after "mail-from"');
      const bad = checkMailAddress(v.text);
      if (bad !== undefined) c.error(v.pos, bad);
      r.mailFrom = v.text;
      break;
    }
    case 'pki': {
      const v = c.value('a pki name after "pki"');
      c.ref('pki', v.text, v.pos);
      r.pki = v.text;
      break;
    }
    case 'ca': {
      const v = c.value('a ca name after "ca"');
      c.ref('ca', v.text, v.pos);
      r.ca = v.text;
      break;
    }
    default:
      r.srs = true;
      c.warning(t.pos, '"srs" is not applied yet: the envelope sender of relayed mail is not rewritten, so forwarded mail may fail SPF at the next hop');
      break;
  }
}
