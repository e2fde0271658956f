/*
 * config/parse-listen.ts — the `listen on …` statement of both dialects.
 *
 *   legacy:  listen on IF|ADDR [port N] [tls|smtps] [certificate NAME]
 *                      [enable auth] [tag T]
 *   modern:  listen on IF|ADDR|socket [inet4|inet6] [port N]
 *                      [tls|tls-require [verify]|smtps [verify]] [pki NAME]
 *                      [ca NAME] [auth [<table>]|auth-optional [<table>]]
 *                      [hostname NAME] [hostnames <table>] [tag T]
 *                      [senders <table> [masquerade]] [mask-src] [no-dsn]
 *                      [smtputf8] [proxy-v2]
 * Options may come in any order, each once. Interface names are resolved
 * when the server starts, not here ("lo0" is accepted on any system).
 * The default port is 25, or 465 with smtps; `listen on socket` (the local
 * enqueue socket) has port 0.
 */
import type { Cursor } from './cursor.js';
import type { Mutable } from './draft.js';
import type { Token } from './lexer.js';
import type { Listener, Position } from './model.js';
import { checkHostname, isIpAddress, looksNumeric, parsePort } from './values.js';
import { DEFAULT_PORT, DEFAULT_SMTPS_PORT } from './defaults.js';

const LISTEN_OPTIONS = [
  'port', 'tls', 'tls-require', 'smtps', 'certificate', 'enable', 'tag', 'inet4', 'inet6', 'pki', 'ca', 'auth',
  'auth-optional', 'hostname', 'hostnames', 'senders', 'mask-src', 'no-dsn', 'smtputf8', 'proxy-v2', 'filter',
];

const LEGACY_ONLY = new Set(['certificate', 'enable']);
const NEUTRAL = new Set(['port', 'tls', 'smtps', 'tag', 'smtputf8']);

export function parseListen(c: Cursor): void {
  const kw = c.next();
  c.expectWord('on', '"listen"');
  const target = c.value('an interface, an address or "socket" after "listen on"');
  const socket = target.kind === 'word' && target.text === 'socket';
  if (socket) c.dialect('modern', target.pos);
  else checkListenTarget(c, target);

  const l: Mutable<Listener> = {
    pos: kw.pos,
    on: target.text,
    port: socket ? 0 : DEFAULT_PORT,
    tls: 'none',
    auth: 'none',
    maskSrc: false,
    noDsn: false,
    smtputf8: false,
    proxyV2: false,
  };
  const seen = new Map<string, Position>();
  let portGiven = false;
  let legacyNeedsTls: Token | undefined;
  let authPos: Position | undefined;
  let caPos: Position | undefined;

  const once = (t: Token, group: string): void => {
    const first = seen.get(group);
    if (first !== undefined) c.fail(t.pos, `${group} is already given on this listen line (at column ${first.col})`);
    seen.set(group, t.pos);
  };

  while (!c.atEnd()) {
    const t = c.peek();
    if (t.kind !== 'word' || !LISTEN_OPTIONS.includes(t.text)) {
      if (t.kind === 'word' && (t.text === 'received-auth' || t.text === 'ciphers' || t.text === 'protocols')) {
        c.fail(t.pos, `the listen option "${t.text}" is not supported by Postern`);
      }
      if (t.kind === 'word' && t.text === 'ssl') c.fail(t.pos, '"ssl" is not a listen option; use "tls" (STARTTLS) or "smtps" (TLS from the first byte)');
      c.unknown(t, LISTEN_OPTIONS, 'listen option');
    }
    c.next();
    if (socket && !['tag', 'mask-src', 'no-dsn'].includes(t.text)) {
      c.fail(t.pos, `"${t.text}" cannot be used with "listen on socket" (only tag, mask-src and no-dsn can)`);
    }
    if (LEGACY_ONLY.has(t.text)) c.dialect('legacy', t.pos);
    else if (!NEUTRAL.has(t.text)) c.dialect('modern', t.pos);
    switch (t.text) {
      case 'port': {
        once(t, '"port"');
        const v = c.value('a port number after "port"');
        const p = parsePort(v.text, true);
        if (p.ok) l.port = p.value;
        else c.error(v.pos, p.error);
        portGiven = true;
        break;
      }
      case 'tls':
        once(t, 'a TLS mode');
        l.tls = 'starttls';
        break;
      case 'tls-require':
        once(t, 'a TLS mode');
        l.tls = 'require';
        if (c.acceptWord('verify')) l.tlsVerify = true;
        break;
      case 'smtps':
        once(t, 'a TLS mode');
        l.tls = 'smtps';
        if (c.acceptWord('verify')) {
          c.dialect('modern', t.pos);
          l.tlsVerify = true;
        }
        break;
      case 'certificate':
        once(t, 'a certificate');
        l.pki = c.value('a certificate name after "certificate"').text;
        legacyNeedsTls = legacyNeedsTls ?? t;
        break;
      case 'pki': {
        once(t, 'a certificate');
        const v = c.value('a pki name after "pki"');
        l.pki = v.text;
        c.ref('pki', v.text, v.pos);
        break;
      }
      case 'ca': {
        once(t, '"ca"');
        const v = c.value('a ca name after "ca"');
        l.ca = v.text;
        c.ref('ca', v.text, v.pos);
        caPos = t.pos;
        break;
      }
      case 'enable':
        c.expectWord('auth', '"enable"');
        once(t, '"auth"');
        l.auth = 'required';
        legacyNeedsTls = legacyNeedsTls ?? t;
        authPos = t.pos;
        break;
      case 'auth':
      case 'auth-optional':
        once(t, '"auth"');
        l.auth = t.text === 'auth' ? 'required' : 'optional';
        if (c.isPunct('<')) l.authTable = c.tableRef({ what: 'authentication' }).name;
        authPos = t.pos;
        break;
      case 'filter':
        once(t, '"filter"');
        l.filter = c.value('a filter name after "filter"').text;
        break;
      case 'tag':
        once(t, '"tag"');
        l.tag = c.value('a tag after "tag"').text;
        break;
      case 'inet4':
      case 'inet6':
        once(t, 'an address family');
        l.family = t.text === 'inet4' ? 'inet4' : 'inet6';
        break;
      case 'hostname': {
        once(t, '"hostname"');
        const v = c.value('a host name after "hostname"');
        const bad = checkHostname(v.text);
        if (bad !== undefined) c.error(v.pos, bad);
        l.hostname = v.text;
        break;
      }
      case 'hostnames':
        once(t, '"hostnames"');
        l.hostnamesTable = c.tableRef({ what: 'hostnames', literal: true }).name;
        break;
      case 'senders': {
        once(t, '"senders"');
        const table = c.tableRef({ what: 'senders', literal: true }).name;
        l.senders = { table, masquerade: c.acceptWord('masquerade') !== undefined };
        break;
      }
      case 'mask-src':
        once(t, '"mask-src"');
        l.maskSrc = true;
        break;
      case 'no-dsn':
        once(t, '"no-dsn"');
        l.noDsn = true;
        break;
      case 'smtputf8':
        once(t, '"smtputf8"');
        l.smtputf8 = true;
        break;
      case 'proxy-v2':
        once(t, '"proxy-v2"');
        l.proxyV2 = true;
        break;
    }
  }
  c.end('listen');
  if (caPos !== undefined && l.tlsVerify !== true) c.warning(caPos, '"ca" is used only with "verify" (tls-require verify, smtps verify): this listener does not check client certificates');

  if (!portGiven && l.tls === 'smtps') l.port = DEFAULT_SMTPS_PORT;
  if (legacyNeedsTls !== undefined && l.tls === 'none') {
    const what = legacyNeedsTls.text === 'enable' ? '"enable auth"' : '"certificate"';
    c.error(legacyNeedsTls.pos, `${what} needs "tls" or "smtps" on the same listen line`);
  } else if (authPos !== undefined && l.tls === 'none' && legacyNeedsTls === undefined) {
    c.warning(authPos, 'auth on a listener without "tls" or "smtps": clients may only authenticate over TLS, which this listener does not offer');
  }
  c.draft.listeners.push(l);
}

function checkListenTarget(c: Cursor, t: Token): void {
  const v = t.text;
  if (isIpAddress(v)) return;
  if (v.includes('/')) {
    c.error(t.pos, `cannot listen on a network ("${v}"); give an interface name or one address`);
  } else if (looksNumeric(v)) {
    c.error(t.pos, `invalid address "${v}"`);
  } else if (!/^[A-Za-z0-9_][A-Za-z0-9_.:%-]*$/.test(v)) {
    c.error(t.pos, `invalid interface or address "${v}"`);
  }
}
