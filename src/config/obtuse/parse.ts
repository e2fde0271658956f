/*
 * config/obtuse/parse.ts — the Obtuse smtpd `smtpd_check_rules` file
 * (read with the configuration: config/policy-files.ts; matched by
 * policy/obtuse/match.ts).
 *
 * One rule a line, first match wins (seeds 001/003, Obtuse smtpd's
 * address_check.c):
 *
 *   action:SourceList:FromList:ToList[:XXX message][:# comment]
 *
 *   action      allow | deny | noto | deny_delay | noto_delay | debug
 *   SourceList  who connects: IPv4 address, network a.b.c.d/bits, host or
 *               address glob ("*" only), ALL, KNOWN, UNKNOWN, NS=pattern,
 *               RBL.zone, user@host (ident user at host), EXCEPT
 *   FromList    MAIL FROM address patterns: user@host with "*", ALL,
 *   ToList      USER@host (USER = the ident user), user@NS=pattern,
 *               NS=pattern (the sender's/recipient's domain), EXCEPT
 *   message     "XXX text": the SMTP code and a text with %F %T %H %I %U
 *               (from, to, client host, client IP, ident user), %C (a
 *               colon, since ":" ends the field) and %%
 *
 * Lists are separated by spaces, tabs or commas. "a b EXCEPT c d" matches
 * what a or b matches unless c or d matches it; EXCEPT lists nest. Lines
 * starting with "#" and blank lines are ignored.
 *
 * Postern's additions, all errors in the original silently read as "no
 * match": bad addresses and networks, unknown actions, unknown %-codes
 * and empty fields are reported as FILE:LINE:COL: message at load time.
 * IPv6 addresses and networks are written in brackets, "[2001:db8::]/32",
 * because ":" separates the fields.
 *
 * Why this file is long (~410 lines): it is the whole grammar of one file
 * format — sources, address fields, EXCEPT lists, the message variables —
 * with its diagnostics; split, each half would need the other's token
 * rules.
 */
import ipaddr from 'ipaddr.js';
import type { Diagnostic, Position } from '../model.js';
import { normalizeIp } from '../../net/ip.js';
import { deepFreeze } from '../freeze.js';

export type ObtuseAction = 'allow' | 'deny' | 'noto' | 'deny_delay' | 'noto_delay' | 'debug';

const ACTIONS: readonly ObtuseAction[] = ['allow', 'deny', 'noto', 'deny_delay', 'noto_delay', 'debug'];

/** An address or network; `bits` covers the whole address for a single host. */
export interface NetPattern {
  readonly kind: 'net';
  readonly text: string;
  readonly addr: ipaddr.IPv4 | ipaddr.IPv6;
  readonly bits: number;
}

/** "*"-glob, case-insensitive (Obtuse's match_case_pattern). */
export interface GlobPattern {
  readonly kind: 'glob';
  readonly text: string;
}

/** What NS= compares the name servers (and MX hosts) of a domain with. */
export type NsPattern =
  | { readonly kind: 'all' }
  | { readonly kind: 'known' }
  | { readonly kind: 'unknown' }
  | NetPattern
  | GlobPattern;

/** One SourceList element without an ident part. */
export type HostPattern =
  | { readonly kind: 'all' }
  | { readonly kind: 'known' }
  | { readonly kind: 'unknown' }
  | NetPattern
  | GlobPattern
  | { readonly kind: 'ns'; readonly ns: NsPattern }
  | { readonly kind: 'rbl'; readonly zone: string };

/** The user part of an ident pattern "user@host" in a SourceList. */
export type IdentUserPattern = { readonly kind: 'all' } | { readonly kind: 'known' } | GlobPattern;

export type SourcePattern = HostPattern | { readonly kind: 'ident'; readonly user: IdentUserPattern; readonly host: HostPattern };

/** One FromList/ToList element. */
export type AddressPattern =
  | { readonly kind: 'all' }
  /** No "@": a glob over the whole address. */
  | GlobPattern
  /** NS=pattern without "@": the name servers of the address's domain. */
  | { readonly kind: 'ns'; readonly ns: NsPattern }
  | {
      readonly kind: 'mailbox';
      /** USER: the ident user of the connection. */
      readonly local: { readonly kind: 'all' } | { readonly kind: 'user' } | GlobPattern;
      readonly domain: { readonly kind: 'all' } | GlobPattern | { readonly kind: 'ns'; readonly ns: NsPattern };
    };

/** `items EXCEPT except`: matches when an item does and the exception list does not. */
export interface PatternList<T> {
  readonly items: readonly T[];
  readonly except?: PatternList<T>;
}

/** A rule's reply: code, enhanced status code and a text with %-variables (not yet expanded). */
export interface MessageTemplate {
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

export interface ObtuseRule {
  readonly pos: Position;
  /** The rule line as written, for explanations and the dry run. */
  readonly line: string;
  readonly action: ObtuseAction;
  readonly source: PatternList<SourcePattern>;
  readonly from: PatternList<AddressPattern>;
  readonly to: PatternList<AddressPattern>;
  /** The rule's own message; undefined ⇒ the default message. */
  readonly message?: MessageTemplate;
}

export interface ObtuseRules {
  readonly file: string;
  readonly rules: readonly ObtuseRule[];
}

export type ObtuseParseResult =
  | { readonly ok: true; readonly rules: ObtuseRules; readonly diagnostics: readonly Diagnostic[] }
  | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

/**
 * Obtuse smtpd's built-in refusal (make_check_fail_reply in smtpd.c), used
 * when a deny/noto rule has no message of its own.
 */
export const DEFAULT_MESSAGE: MessageTemplate = Object.freeze({
  code: 550,
  enhanced: '5.7.1',
  text: 'Mail from %F to %T prohibited from your location (%U@%H ip=%I)',
});

/** The %-codes a message may use. */
const MESSAGE_CODES = new Set(['%', 'C', 'F', 'T', 'H', 'I', 'U']);

class LineError extends Error {
  constructor(
    readonly col: number,
    message: string,
  ) {
    super(message);
  }
}

/** Parse a whole rules file; every bad line is reported, good lines are kept. */
export function parseObtuseRules(text: string, file: string): ObtuseParseResult {
  const diagnostics: Diagnostic[] = [];
  const rules: ObtuseRule[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? '').replace(/\r$/, '');
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    try {
      rules.push(parseRule(raw, { file, line: i + 1, col: 1 }));
    } catch (e) {
      if (!(e instanceof LineError)) throw e;
      diagnostics.push({ pos: { file, line: i + 1, col: e.col }, message: e.message, severity: 'error' });
    }
  }
  if (diagnostics.some((d) => d.severity === 'error')) return { ok: false, diagnostics };
  return { ok: true, rules: deepFreeze({ file, rules }), diagnostics };
}

/** "FILE:LINE: message", the form the rules file's errors are shown in. */
export function formatObtuseDiagnostic(d: Diagnostic): string {
  return `${d.pos.file}:${d.pos.line}: ${d.severity === 'warning' ? 'warning: ' : ''}${d.message}`;
}

interface Field {
  readonly text: string;
  /** 1-based column of the field's first character. */
  readonly col: number;
}

/** Split on ":" outside brackets (IPv6 literals), keeping columns. */
function splitFields(line: string): Field[] {
  const fields: Field[] = [];
  let start = 0;
  let depth = 0;
  for (let i = 0; i <= line.length; i++) {
    const c = line[i];
    if (c === '[') depth++;
    else if (c === ']' && depth > 0) depth--;
    else if ((c === ':' && depth === 0) || i === line.length) {
      fields.push({ text: line.slice(start, i), col: start + 1 });
      start = i + 1;
    }
  }
  return fields;
}

function parseRule(line: string, pos: Position): ObtuseRule {
  const fields = splitFields(line);
  const [actionF, sourceF, fromF, toF, ...rest] = fields;
  if (actionF === undefined || sourceF === undefined || fromF === undefined || toF === undefined) {
    throw new LineError(1, `a rule needs four fields, action:SourceList:FromList:ToList (found ${fields.length})`);
  }
  const actionText = actionF.text.trim();
  if (!(ACTIONS as readonly string[]).includes(actionText)) {
    throw new LineError(actionF.col, `unknown action "${actionText}" (expected allow, deny, noto, deny_delay, noto_delay or debug)`);
  }
  const action = actionText as ObtuseAction;
  const source = parseList(sourceF, 'SourceList', parseSource);
  const from = parseList(fromF, 'FromList', parseAddress);
  const to = parseList(toF, 'ToList', parseAddress);

  let message: MessageTemplate | undefined;
  const [msgF, junkF] = rest;
  if (msgF !== undefined) {
    const m = msgF.text.trimStart();
    if (m.startsWith('#')) {
      // A comment in place of the message: the rest of the line is the comment.
    } else {
      if (m === '') throw new LineError(msgF.col, 'empty message field (remove the trailing ":" or write "550 text")');
      if (action === 'allow' || action === 'debug') {
        throw new LineError(msgF.col, `an "${action}" rule sends no reply, so it takes no message`);
      }
      message = parseMessage(m, msgF.col + (msgF.text.length - m.length));
      if (junkF !== undefined && !junkF.text.trimStart().startsWith('#')) {
        throw new LineError(junkF.col - 1, 'text after the message (a ":" ends the message; write %C for a colon)');
      }
    }
  }
  return { pos, line: line.trim(), action, source, from, to, ...(message ? { message } : {}) };
}

interface Token {
  readonly text: string;
  readonly col: number;
}

function tokens(f: Field): Token[] {
  const out: Token[] = [];
  const re = /[^\s,]+/g;
  for (let m = re.exec(f.text); m !== null; m = re.exec(f.text)) out.push({ text: m[0], col: f.col + m.index });
  return out;
}

function parseList<T>(f: Field, what: string, item: (t: Token) => T): PatternList<T> {
  const toks = tokens(f);
  if (toks.length === 0) throw new LineError(f.col, `empty ${what} (write ALL to match everything)`);
  return buildList(toks, 0, what, item, f.col);
}

function buildList<T>(toks: readonly Token[], start: number, what: string, item: (t: Token) => T, col: number): PatternList<T> {
  const items: T[] = [];
  let i = start;
  for (; i < toks.length; i++) {
    const t = toks[i] as Token;
    if (t.text.toUpperCase() === 'EXCEPT') break;
    items.push(item(t));
  }
  if (items.length === 0) {
    const t = toks[i];
    throw new LineError(t ? t.col : col, `${what}: EXCEPT needs patterns before it`);
  }
  if (i >= toks.length) return { items };
  const exceptTok = toks[i] as Token;
  if (i + 1 >= toks.length) throw new LineError(exceptTok.col, `${what}: nothing after EXCEPT`);
  return { items, except: buildList(toks, i + 1, what, item, exceptTok.col) };
}

/* ------------------------------------------------------------ patterns */

function parseSource(t: Token): SourcePattern {
  const at = t.text.lastIndexOf('@');
  if (at < 0 || isBracketed(t.text)) return parseHost(t.text, t.col);
  const userText = t.text.slice(0, at);
  const hostText = t.text.slice(at + 1);
  if (userText === '' || hostText === '') throw new LineError(t.col, `bad ident pattern "${t.text}" (expected user@host)`);
  const user: IdentUserPattern = userText === 'ALL' ? { kind: 'all' } : userText === 'KNOWN' ? { kind: 'known' } : glob(userText);
  return { kind: 'ident', user, host: parseHost(hostText, t.col + at + 1) };
}

function parseHost(text: string, col: number): HostPattern {
  if (text === 'ALL') return { kind: 'all' };
  if (text === 'KNOWN') return { kind: 'known' };
  if (text === 'UNKNOWN') return { kind: 'unknown' };
  if (text.startsWith('NS=')) return { kind: 'ns', ns: parseNs(text.slice(3), col + 3) };
  if (text.startsWith('RBL.')) {
    const zone = text.slice(4).toLowerCase();
    if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(zone)) throw new LineError(col, `bad DNS list zone in "${text}" (expected RBL.zone.example)`);
    return { kind: 'rbl', zone };
  }
  return netOrGlob(text, col);
}

function parseNs(text: string, col: number): NsPattern {
  if (text === '') throw new LineError(col, 'NS= needs a pattern (a name server name, address, network, KNOWN or UNKNOWN)');
  if (text === 'ALL') return { kind: 'all' };
  if (text === 'KNOWN') return { kind: 'known' };
  if (text === 'UNKNOWN') return { kind: 'unknown' };
  if (text.startsWith('NS=') || text.startsWith('RBL.')) throw new LineError(col, `"${text}" cannot follow NS=`);
  return netOrGlob(text, col);
}

function isBracketed(text: string): boolean {
  return text.startsWith('[');
}

/**
 * As Obtuse's masked_ip_match: a token of digits and dots with three dots
 * (or "0"), optionally "/bits", is an IPv4 address or network; anything
 * else is a glob, matched against the host name and the address text
 * (so "192.168.20.*" works). Bracketed tokens are IPv6 (Postern).
 */
function netOrGlob(text: string, col: number): NetPattern | GlobPattern {
  if (isBracketed(text)) return parseV6(text, col);
  const slash = text.indexOf('/');
  const addrPart = slash < 0 ? text : text.slice(0, slash);
  if (!/^[0-9.]+$/.test(addrPart) || addrPart.includes('..')) return glob(text, col);
  const dots = addrPart.split('.').length - 1;
  if (dots !== 3 && addrPart !== '0') return glob(text, col);
  const parts = addrPart === '0' ? ['0', '0', '0', '0'] : addrPart.split('.');
  if (parts.some((x) => x === '')) {
    throw new LineError(col, `invalid address "${addrPart}" (write a network as a.b.c.d/bits, e.g. 192.168.1.0/24)`);
  }
  const octets = parts.map((x) => Number(x));
  if (octets.some((o) => !Number.isInteger(o) || o > 255)) throw new LineError(col, `invalid address "${addrPart}"`);
  const bits = slash < 0 ? 32 : parseBits(text.slice(slash + 1), 32, text, col);
  const addr = new ipaddr.IPv4(octets);
  return { kind: 'net', text, addr, bits };
}

function parseV6(text: string, col: number): NetPattern {
  // "[2001:db8::1]", "[2001:db8::]/32" or "[2001:db8::/32]"
  const m = /^\[([^\]]*)\](?:\/(.*))?$/.exec(text);
  if (m === null) throw new LineError(col, `bad bracketed address "${text}" (expected [IPv6] or [IPv6]/bits)`);
  let inner = m[1] ?? '';
  let bitsText = m[2];
  const innerSlash = inner.indexOf('/');
  if (innerSlash >= 0) {
    if (bitsText !== undefined) throw new LineError(col, `two prefix lengths in "${text}"`);
    bitsText = inner.slice(innerSlash + 1);
    inner = inner.slice(0, innerSlash);
  }
  inner = inner.replace(/^ipv6[:.]/i, '');
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = normalizeIp(ipaddr.parse(inner));
  } catch {
    throw new LineError(col, `invalid address "${inner}"`);
  }
  const full = addr.kind() === 'ipv4' ? 32 : 128;
  let bits = bitsText === undefined ? full : parseBits(bitsText, 128, text, col);
  if (addr.kind() === 'ipv4' && bitsText !== undefined && ipaddr.parse(inner).kind() === 'ipv6') bits -= 96;
  if (bits < 0 || bits > full) throw new LineError(col, `invalid network "${text}": the prefix length must be 0–${full}`);
  return { kind: 'net', text, addr, bits };
}

function parseBits(s: string, max: number, text: string, col: number): number {
  if (!/^[0-9]{1,3}$/.test(s) || Number(s) > max) throw new LineError(col, `invalid network "${text}": the prefix length must be 0–${max}`);
  return Number(s);
}

function glob(text: string, col = 1): GlobPattern {
  if (text === '') throw new LineError(col, 'empty pattern');
  return { kind: 'glob', text: text.toLowerCase() };
}

function parseAddress(t: Token): AddressPattern {
  const text = t.text;
  if (text === 'ALL') return { kind: 'all' };
  const at = text.lastIndexOf('@');
  if (at < 0) {
    if (text.startsWith('NS=')) return { kind: 'ns', ns: parseNs(text.slice(3), t.col + 3) };
    return glob(text, t.col);
  }
  const localText = text.slice(0, at);
  const domainText = text.slice(at + 1);
  if (localText === '') throw new LineError(t.col, `bad address pattern "${text}": nothing before "@" (write *@${domainText || 'host'})`);
  if (domainText === '') throw new LineError(t.col, `bad address pattern "${text}": nothing after "@" (write ${localText}@*)`);
  const local = localText === 'ALL' ? ({ kind: 'all' } as const) : localText === 'USER' ? ({ kind: 'user' } as const) : glob(localText, t.col);
  const domain =
    domainText === 'ALL'
      ? ({ kind: 'all' } as const)
      : domainText.startsWith('NS=')
        ? ({ kind: 'ns', ns: parseNs(domainText.slice(3), t.col + at + 4) } as const)
        : glob(domainText, t.col + at + 1);
  return { kind: 'mailbox', local, domain };
}

/* ------------------------------------------------------------- message */

/** "550 text", "550 5.7.1 text", "451 text": a 4xx/5xx code, then the text. */
function parseMessage(m: string, col: number): MessageTemplate {
  const match = /^([0-9]{3})(?:[ \t]+|$)(.*)$/.exec(m);
  if (match === null) throw new LineError(col, `the message must start with a three-digit SMTP code, e.g. "550 ${m}"`);
  const code = Number(match[1]);
  if (code < 400 || code > 599) throw new LineError(col, `message code ${code} is not a refusal (use 4xx or 5xx)`);
  let text = (match[2] ?? '').trim();
  let enhanced = code >= 500 ? '5.7.1' : '4.7.1';
  const enh = /^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?:[ \t]+|$)/.exec(text);
  if (enh !== null) {
    if (Number(enh[1]) !== Math.floor(code / 100)) {
      throw new LineError(col, `enhanced status code ${enh[0].trim()} does not agree with reply code ${code}`);
    }
    enhanced = `${enh[1]}.${enh[2]}.${enh[3]}`;
    text = text.slice(enh[0].length);
  }
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '%') continue;
    const c = text[i + 1];
    if (c === undefined || !MESSAGE_CODES.has(c)) {
      throw new LineError(col, `unknown variable "%${c ?? ''}" in the message (use %F %T %H %I %U, %C for ":" or %% for "%")`);
    }
    i++;
  }
  if (text === '') text = code >= 500 ? 'Recipient not allowed' : 'Recipient temporarily not allowed';
  return { code, enhanced, text };
}
