/*
 * smtp/address.ts — the path argument of MAIL FROM and RCPT TO.
 *
 * RFC 5321 §4.1.2, with RFC 6531 (SMTPUTF8) extensions:
 *
 *   Reverse-path   = Path / "<>"
 *   Forward-path   = Path / "<Postmaster>"   (any case; RCPT only)
 *   Path           = "<" [ A-d-l ":" ] Mailbox ">"
 *   A-d-l          = At-domain *( "," At-domain )     ; source route, stripped
 *   Mailbox        = Local-part "@" ( Domain / address-literal )
 *   Local-part     = Dot-string / Quoted-string
 *   Dot-string     = Atom *( "." Atom ), Atom = 1*atext (RFC 5322 atext)
 *   Quoted-string  = DQUOTE *( qtextSMTP / "\" %d32-126 ) DQUOTE
 *   Domain         = sub-domain *( "." sub-domain ), LDH labels
 *   address-literal= "[" ( IPv4 / "IPv6:" IPv6 ) "]"
 *
 * Limits (§4.5.3.1): local part 64 octets, domain 255, path 256 — all
 * counted as sent. With SMTPUTF8, atext, qtext and domain labels may hold
 * non-ASCII (RFC 6531 §3.3); NFC is not required. Control characters (C0,
 * DEL, C1), U+FFFD (left by undecodable input) and line/paragraph
 * separators are never accepted.
 *
 * Leniency outside strict mode, as Postfix without strict_rfc821_envelopes:
 * spaces after the colon and a plain address without its angle brackets.
 * Source routes are stripped (RFC 5321 §4.1.2, Appendix C); address
 * literals are accepted inside them, as RFC 821 did and as relay probes
 * send them.
 *
 * Diagnostics: the argument's shape (FROM:/TO:, brackets, text after the
 * path, control characters) -> 501 5.5.4; the address between the brackets
 * -> 553 5.1.7 (sender) / 553 5.1.3 (recipient); a path over 256 octets
 * -> 501 (RFC 5321 §4.5.3.1.10 "Path too long") with that same enhanced
 * code; non-ASCII without SMTPUTF8 -> 553 5.6.7 (RFC 6531, X.6.7 of RFC 5248).
 */
import ipaddr from 'ipaddr.js';
import { domainToASCII } from 'node:url';
import { reply, type Reply } from './reply.js';

export interface Mailbox {
  /** Local part, unquoted form (quoted-pairs resolved); case preserved. */
  readonly local: string;
  /**
   * Lowercased, one trailing dot removed; "" only for <postmaster>. For an
   * address literal, the normalized literal text: "[192.0.2.1]", "[IPv6:2001:db8::1]".
   */
  readonly domain: string;
  /** The IP of an address literal, canonical form ("192.0.2.1", "2001:db8::1"). */
  readonly literal?: string;
  /** The address contains non-ASCII characters. */
  readonly utf8: boolean;
}

export interface PathOptions {
  /**
   * The client gave SMTPUTF8 on MAIL. For MAIL itself, an SMTPUTF8 keyword
   * among the parameters on the same line counts too; the caller still
   * validates those parameters with parseMailParams().
   */
  readonly smtputf8: boolean;
  /** Strict RFC 5321 syntax: no space after the colon, brackets required. */
  readonly strict: boolean;
}

export type PathResult =
  | {
      readonly ok: true;
      /** null for the null path <>. */
      readonly mailbox: Mailbox | null;
      /** The rest of the line after the path, trimmed: the ESMTP parameters. */
      readonly params: string;
      readonly sourceRouteStripped: boolean;
    }
  | { readonly ok: false; readonly reply: Reply };

type Role = 'sender' | 'recipient';

const MAX_LOCAL = 64;
const MAX_DOMAIN = 255;
const MAX_LABEL = 63;
const MAX_PATH = 256;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
const NON_ASCII = /[^\x00-\x7f]/;
const ATEXT_ASCII = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]$/;

/** Parse the argument of MAIL (the text after "MAIL", e.g. "FROM:<a@b> SIZE=10"). */
export function parseMailFromArg(arg: string, opts: PathOptions): PathResult {
  return parseArg(arg, 'FROM:', 'sender', opts);
}

/** Parse the argument of RCPT (the text after "RCPT", e.g. "TO:<a@b> NOTIFY=NEVER"). */
export function parseRcptToArg(arg: string, opts: PathOptions): PathResult {
  return parseArg(arg, 'TO:', 'recipient', opts);
}

/** Canonical "local@domain"; the local part is quoted when it is not a dot-string. */
export function formatMailbox(m: Mailbox): string {
  const local = isDotString(m.local) ? m.local : `"${m.local.replace(/["\\]/g, '\\$&')}"`;
  return m.domain === '' ? local : `${local}@${m.domain}`;
}

/** Lowercase canonical form, for table lookups. */
export function mailboxKey(m: Mailbox): string {
  return formatMailbox(m).toLowerCase();
}

function syntaxError(text: string): PathResult {
  return { ok: false, reply: reply(501, '5.5.4', text) };
}

function addressError(role: Role, text: string): PathResult {
  const enhanced = role === 'sender' ? '5.1.7' : '5.1.3';
  const what = role === 'sender' ? 'sender' : 'recipient';
  return { ok: false, reply: reply(553, enhanced, `Bad ${what} address syntax: ${text}`) };
}

/** Split "KEYWORD:path params" and parse the path. */
function parseArg(arg: string, keyword: 'FROM:' | 'TO:', role: Role, opts: PathOptions): PathResult {
  const usage = role === 'sender' ? 'Syntax: MAIL FROM:<address>' : 'Syntax: RCPT TO:<address>';
  if (CONTROL.test(arg)) return syntaxError('Control characters are not allowed');
  const s = arg.replace(/^ +/, '');
  if (s.slice(0, keyword.length).toUpperCase() !== keyword) return syntaxError(usage);
  let rest = s.slice(keyword.length);
  if (rest.startsWith(' ')) {
    if (opts.strict) return syntaxError(`${usage} (no space after the colon)`);
    rest = rest.replace(/^ +/, '');
  }
  if (rest === '') return syntaxError(`${usage} (missing address)`);

  let inner: string;
  let after: string;
  if (rest.startsWith('<')) {
    const end = pathEnd(rest);
    if (end < 0) return syntaxError(`${usage} (unbalanced "<")`);
    inner = rest.slice(1, end);
    after = rest.slice(end + 1);
  } else {
    if (opts.strict) return syntaxError(`${usage} (angle brackets required)`);
    const end = tokenEnd(rest);
    inner = rest.slice(0, end);
    after = rest.slice(end);
  }
  if (after !== '' && !after.startsWith(' ')) return syntaxError('Unexpected text after the address');
  const params = after.replace(/^ +| +$/g, '');
  if (params.startsWith('<')) return syntaxError('Only one address is allowed');

  if (Buffer.byteLength(inner, 'utf8') + 2 > MAX_PATH) {
    return { ok: false, reply: reply(501, role === 'sender' ? '5.1.7' : '5.1.3', 'Path too long') };
  }

  const smtputf8 = opts.smtputf8 || (role === 'sender' && hasSmtputf8Keyword(params));
  if (!smtputf8 && NON_ASCII.test(inner)) {
    return { ok: false, reply: reply(553, '5.6.7', 'Non-ASCII address requires SMTPUTF8') };
  }

  if (inner === '') {
    if (role === 'recipient') return addressError(role, 'null recipient <> is not allowed');
    return { ok: true, mailbox: null, params, sourceRouteStripped: false };
  }
  if (role === 'recipient' && /^postmaster$/i.test(inner)) {
    return { ok: true, mailbox: { local: inner, domain: '', utf8: false }, params, sourceRouteStripped: false };
  }
  const parsed = parsePathBody(inner);
  if (typeof parsed === 'string') return addressError(role, parsed);
  return { ok: true, mailbox: parsed.mailbox, params, sourceRouteStripped: parsed.sourceRoute };
}

/** Index of the first `stop` character at or after `from` outside a quoted string (quoted-pairs honoured); -1 if none. */
function unquotedIndex(s: string, stop: string, from: number): number {
  let quoted = false;
  for (let i = from; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
    } else if (c === stop) {
      return i;
    }
  }
  return -1;
}

/** Index of the ">" closing the path that starts at s[0] === "<"; -1 if none. */
function pathEnd(s: string): number {
  return unquotedIndex(s, '>', 1);
}

/** End of an unbracketed address: the first space outside a quoted string. */
function tokenEnd(s: string): number {
  const i = unquotedIndex(s, ' ', 0);
  return i < 0 ? s.length : i;
}

function hasSmtputf8Keyword(params: string): boolean {
  return params.split(/ +/).some((p) => p.toUpperCase() === 'SMTPUTF8');
}

/** A non-ASCII character acceptable in an SMTPUTF8 address (RFC 6531 UTF8-non-ascii, minus controls). */
function isUtf8Char(cp: number): boolean {
  if (cp < 0xa0) return false; // ASCII and C1 controls
  if (cp >= 0xd800 && cp <= 0xdfff) return false; // lone surrogates
  return cp !== 0xfffd && cp !== 0x2028 && cp !== 0x2029;
}

function isAtext(ch: string): boolean {
  return ATEXT_ASCII.test(ch) || isUtf8Char(ch.codePointAt(0) ?? 0);
}

function isDotString(s: string): boolean {
  if (s === '') return false;
  return s.split('.').every((atom) => atom !== '' && [...atom].every(isAtext));
}

interface Parsed {
  readonly mailbox: Mailbox;
  readonly sourceRoute: boolean;
}

/** Parse what is between the brackets: [A-d-l ":"] Mailbox. Returns the reason on failure. */
function parsePathBody(s: string): Parsed | string {
  let i = 0;
  let sourceRoute = false;
  if (s.startsWith('@')) {
    sourceRoute = true;
    for (;;) {
      if (s[i] !== '@') return 'bad source route';
      const end = routeDomainEnd(s, i + 1);
      const d = parseDomain(s.slice(i + 1, end));
      if (typeof d === 'string') return `source route: ${d}`;
      i = end;
      if (s[i] === ',') i++;
      else if (s[i] === ':') break;
      else return 'bad source route';
    }
    i++;
  }

  const local = parseLocal(s, i);
  if (typeof local === 'string') return local;
  i = local.end;
  if (s[i] !== '@') return i >= s.length ? 'missing "@domain"' : 'bad character in local part';
  // Underscores: not in host names, but domains such as our_domain.org exist in mail, and Postfix accepts them.
  const domain = parseDomain(s.slice(i + 1), true);
  if (typeof domain === 'string') return domain;

  const utf8 = NON_ASCII.test(local.value) || NON_ASCII.test(domain.domain);
  const mailbox: Mailbox =
    domain.literal === undefined
      ? { local: local.value, domain: domain.domain, utf8 }
      : { local: local.value, domain: domain.domain, literal: domain.literal, utf8 };
  return { mailbox, sourceRoute };
}

/** End of a source-route domain starting at i: the next "," or ":" (a literal ends at its "]"). */
function routeDomainEnd(s: string, i: number): number {
  if (s[i] === '[') {
    const close = s.indexOf(']', i);
    return close < 0 ? s.length : close + 1;
  }
  let j = i;
  while (j < s.length && s[j] !== ',' && s[j] !== ':') j++;
  return j;
}

/** Local-part starting at i: a dot-string or a quoted string. Returns the unquoted value and where it ends. */
function parseLocal(s: string, i: number): { value: string; end: number } | string {
  let value = '';
  let j = i;
  if (s[j] === '"') {
    j++;
    for (;;) {
      if (j >= s.length) return 'unterminated quoted string';
      const cp = s.codePointAt(j) ?? 0;
      const ch = String.fromCodePoint(cp);
      if (ch === '"') break;
      if (ch === '\\') {
        const next = s.charCodeAt(j + 1);
        if (!(next >= 32 && next <= 126)) return 'bad quoted pair in local part';
        value += s[j + 1];
        j += 2;
        continue;
      }
      if (!(cp >= 32 && cp <= 126) && !isUtf8Char(cp)) return 'bad character in quoted local part';
      value += ch;
      j += ch.length;
    }
    j++;
    if (value === '') return 'empty local part';
  } else {
    while (j < s.length && s[j] !== '@') {
      const ch = String.fromCodePoint(s.codePointAt(j) ?? 0);
      if (ch !== '.' && !isAtext(ch)) return 'bad character in local part';
      value += ch;
      j += ch.length;
    }
    if (value === '') return 'empty local part';
    if (!isDotString(value)) return 'misplaced "." in local part';
  }
  if (Buffer.byteLength(s.slice(i, j), 'utf8') > MAX_LOCAL) return 'local part too long';
  return { value, end: j };
}

/** A domain or an address literal, the whole of s; `underscore`: "_" allowed in labels (a mailbox's domain). */
function parseDomain(s: string, underscore = false): { domain: string; literal?: string } | string {
  if (s.startsWith('[')) return parseLiteral(s);
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  if (name === '') return 'missing domain';
  let asciiLength = 0;
  const labels = name.split('.');
  for (const label of labels) {
    if (label === '') return 'empty domain label';
    let ascii = label;
    if (NON_ASCII.test(label)) {
      // U-label (RFC 6531 §3.3): LDH plus non-ASCII, checked through its A-label form.
      for (const ch of label) {
        if (!/^[A-Za-z0-9-]$/.test(ch) && !isUtf8Char(ch.codePointAt(0) ?? 0)) return 'bad character in domain';
      }
      ascii = domainToASCII(label);
      if (!/^xn--[a-z0-9-]+$/.test(ascii)) return 'bad internationalized domain label';
    } else if (!(underscore ? /^[A-Za-z0-9_-]+$/ : /^[A-Za-z0-9-]+$/).test(label)) {
      return 'bad character in domain';
    }
    if (label.startsWith('-') || label.endsWith('-')) return 'domain label starts or ends with "-"';
    if (ascii.length > MAX_LABEL) return 'domain label too long';
    asciiLength += ascii.length + 1;
  }
  if (asciiLength - 1 > MAX_DOMAIN) return 'domain too long';
  // RFC 3696 §2: a top-level label is never all-numeric; "a@127.0.0.1" is not an address literal.
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return 'numeric domain (use an address literal)';
  return { domain: name.toLowerCase() };
}

/** "[IPv4]" or "[IPv6:...]" (RFC 5321 §4.1.3); other general literals are refused. */
function parseLiteral(s: string): { domain: string; literal: string } | string {
  if (!s.endsWith(']')) return 'bad address literal';
  const body = s.slice(1, -1);
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(body);
  if (v4 !== null) {
    // Snum is decimal even with leading zeros (RFC 5321 §4.1.3).
    const octets = v4.slice(1).map((x) => parseInt(x, 10));
    if (octets.some((o) => o > 255)) return 'bad IPv4 address literal';
    const ip = new ipaddr.IPv4(octets).toString();
    return { domain: `[${ip}]`, literal: ip };
  }
  if (/^ipv6:/i.test(body)) {
    const text = body.slice(5);
    if (!/^[0-9A-Fa-f:.]+$/.test(text) || !ipaddr.IPv6.isValid(text)) return 'bad IPv6 address literal';
    const ip = ipaddr.IPv6.parse(text).toRFC5952String();
    return { domain: `[IPv6:${ip}]`, literal: ip };
  }
  return body.includes(':') ? 'unsupported address literal' : 'bad address literal';
}
