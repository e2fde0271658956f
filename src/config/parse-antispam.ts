/*
 * config/parse-antispam.ts — the statements of the checks at the door
 * (docs/configuration.md "Anti-spam checks", docs/anti-spam.md):
 *
 *   dnsbl "SITE" …                      DNS lists for the client address (postscreen syntax)
 *   dnsbl threshold N [allowlist-threshold N]
 *   dnsbl reply 450|550|554 ["TEXT"]    default 554
 *   dnsbl timeout DURATION              default 5s
 *   rhsbl "SITE" …                      DNS lists for the sender domain
 *   rhsbl reply 450|550|554 ["TEXT"]    default 550
 *   check helo syntax|resolve|fcrdns [reply 450|550]
 *   check sender-domain [reply 450|550]
 *   greylist [delay D] [retry-window D] [lifetime D] [allowlist-after N] [store "PATH"]
 *   rate-limit connections|messages|recipients N per DURATION [by client|auth-user|sender-domain] [reply 421|450]
 *   header-checks "FILE"                Postfix header_checks, mail received
 *   smtp-header-checks "FILE"           Postfix smtp_header_checks, mail relayed out
 *
 * Everything is collected in the Draft's `antispam` and turned into
 * Config.antispam by buildAntispam().
 */
import type { Cursor } from './cursor.js';
import type { Token } from './lexer.js';
import type { Position } from './model.js';
import { parseCount, parseDuration } from './values.js';
import { ANTISPAM_DEFAULTS, parseDnsListSite, type AntispamDraft, type AntispamSettings, type CheckCode, type DnsListSite, type GreylistSettings, type HeaderCheckTable, type RateLimit, type RefusalSpec } from './antispam.js';
import { readHeaderChecks } from './header-checks-file.js';
import type { Diagnostics } from './diagnostics.js';

export const ANTISPAM_STATEMENTS = ['dnsbl', 'rhsbl', 'check', 'greylist', 'rate-limit', 'header-checks', 'smtp-header-checks'] as const;

export function parseAntispam(c: Cursor): void {
  const kw = c.next();
  const d = c.draft.antispam;
  switch (kw.text) {
    case 'dnsbl':
      return parseDnsbl(c, d);
    case 'rhsbl':
      if (c.acceptWord('reply')) d.rhsblRefusal = refusal(c, [450, 550, 554]);
      else d.rhsblSites.push(...sites(c));
      return c.end('rhsbl');
    case 'check':
      return parseCheck(c, d);
    case 'greylist':
      return parseGreylist(c, d, kw.pos);
    case 'rate-limit':
      return parseRateLimit(c, d, kw.pos);
    case 'header-checks':
    case 'smtp-header-checks': {
      const v = c.value(`a file name after "${kw.text}"`);
      c.end(kw.text);
      const where = { file: c.path(v.text), pos: v.pos };
      if (kw.text === 'header-checks') d.headerChecks = where;
      else d.smtpHeaderChecks = where;
      return;
    }
  }
}

function parseDnsbl(c: Cursor, d: AntispamDraft): void {
  if (c.acceptWord('threshold')) {
    d.dnsbl.threshold = integer(c, 'a score after "threshold"');
    if (c.acceptWord('allowlist-threshold')) d.dnsbl.allowlistThreshold = integer(c, 'a score after "allowlist-threshold"');
  } else if (c.acceptWord('reply')) {
    d.dnsbl.refusal = refusal(c, [450, 550, 554]);
  } else if (c.acceptWord('timeout')) {
    d.dnsbl.timeoutMs = duration(c, 'a duration after "timeout"');
  } else {
    d.dnsblSites.push(...sites(c));
  }
  c.end('dnsbl');
}

function sites(c: Cursor): DnsListSite[] {
  const out: DnsListSite[] = [];
  do {
    const t = c.value('a DNS list, e.g. "zen.spamhaus.org=127.0.0.[2..11]*3"');
    const s = parseDnsListSite(t.text, t.pos);
    if (typeof s === 'string') c.error(t.pos, s);
    else out.push(s);
  } while (!c.atEnd());
  return out;
}

function parseCheck(c: Cursor, d: AntispamDraft): void {
  const what = c.value('"helo" or "sender-domain" after "check"');
  if (what.text === 'helo') {
    const which = c.value('syntax, resolve or fcrdns after "check helo"');
    if (which.text !== 'syntax' && which.text !== 'resolve' && which.text !== 'fcrdns') c.unknown(which, ['syntax', 'resolve', 'fcrdns'], 'HELO check');
    d.helo[which.text] = c.acceptWord('reply') ? checkCode(c) : which.text === 'syntax' ? 550 : 450;
  } else if (what.text === 'sender-domain') {
    d.senderDomain = c.acceptWord('reply') ? checkCode(c) : 450;
  } else c.unknown(what, ['helo', 'sender-domain'], 'check');
  c.end('check');
}

function parseGreylist(c: Cursor, d: AntispamDraft, pos: Position): void {
  let g: GreylistSettings = {
    delayMs: ANTISPAM_DEFAULTS.greylistDelayMs,
    retryWindowMs: ANTISPAM_DEFAULTS.greylistRetryWindowMs,
    lifetimeMs: ANTISPAM_DEFAULTS.greylistLifetimeMs,
    allowlistAfter: ANTISPAM_DEFAULTS.greylistAllowlistAfter,
  };
  while (!c.atEnd()) {
    const w = c.next();
    if (w.text === 'delay') g = { ...g, delayMs: duration(c, 'a duration after "delay"') };
    else if (w.text === 'retry-window') g = { ...g, retryWindowMs: duration(c, 'a duration after "retry-window"') };
    else if (w.text === 'lifetime') g = { ...g, lifetimeMs: duration(c, 'a duration after "lifetime"') };
    else if (w.text === 'allowlist-after') g = { ...g, allowlistAfter: integer(c, 'a count after "allowlist-after"', 0) };
    else if (w.text === 'store') g = { ...g, store: c.path(c.value('a file name after "store"').text) };
    else c.unknown(w, ['delay', 'retry-window', 'lifetime', 'allowlist-after', 'store'], 'greylist option');
  }
  if (d.greylist !== undefined) c.warning(pos, '"greylist" is set again; the later one is used');
  d.greylist = g;
  c.end('greylist');
}

function parseRateLimit(c: Cursor, d: AntispamDraft, pos: Position): void {
  const what = c.value('connections, messages or recipients after "rate-limit"');
  if (what.text !== 'connections' && what.text !== 'messages' && what.text !== 'recipients') c.unknown(what, ['connections', 'messages', 'recipients'], 'rate-limit subject');
  const max = integer(c, `a number of ${what.text}`, 1);
  c.expectWord('per', `the number of ${what.text}`);
  const windowMs = duration(c, 'a time window after "per" (e.g. 1m, 1h)');
  let per: RateLimit['per'] = 'client';
  let code: 421 | 450 = what.text === 'connections' ? 421 : 450;
  while (!c.atEnd()) {
    const w = c.next();
    if (w.text === 'by') {
      const k = c.value('client, auth-user or sender-domain after "by"');
      if (k.text !== 'client' && k.text !== 'auth-user' && k.text !== 'sender-domain') c.unknown(k, ['client', 'auth-user', 'sender-domain'], 'rate-limit key');
      if (what.text === 'connections' && k.text !== 'client') c.error(k.pos, 'connections can only be counted by client (the user and the sender are not known at connect)');
      per = k.text;
    } else if (w.text === 'reply') {
      const t = c.value('421 or 450 after "reply"');
      if (t.text !== '421' && t.text !== '450') c.error(t.pos, 'a rate limit answers 421 or 450');
      else code = Number(t.text) as 421 | 450;
    } else c.unknown(w, ['by', 'reply'], 'rate-limit option');
  }
  d.rateLimits.push({ what: what.text, max, windowMs, per, code, pos });
  c.end('rate-limit');
}

function refusal(c: Cursor, codes: readonly number[]): RefusalSpec {
  const t = c.value(`a reply code (${codes.join(', ')})`);
  const code = Number(t.text);
  if (!codes.includes(code)) c.error(t.pos, `reply code must be one of ${codes.join(', ')}`);
  const text = c.peek().kind === 'string' ? c.next().text : undefined;
  if (text !== undefined && /[\r\n]/.test(text)) c.error(t.pos, 'a reply text is one line');
  return { code: code as RefusalSpec['code'], ...(text !== undefined ? { text } : {}) };
}

function checkCode(c: Cursor): CheckCode {
  const t = c.value('450 or 550 after "reply"');
  if (t.text !== '450' && t.text !== '550') c.error(t.pos, 'a check answers 450 (try again later) or 550 (refused)');
  return t.text === '550' ? 550 : 450;
}

function integer(c: Cursor, what: string, min?: number): number {
  const t: Token = c.value(what);
  if (!/^-?\d+$/.test(t.text)) c.fail(t.pos, `expected ${what}, found "${t.text}"`);
  if (min !== undefined) {
    const r = parseCount(t.text, what.replace(/^an? /, ''), min);
    if (!r.ok) c.error(t.pos, r.error);
  }
  return Number(t.text);
}

function duration(c: Cursor, what: string): number {
  const t = c.value(what);
  const r = parseDuration(t.text);
  if (!r.ok) c.fail(t.pos, r.error);
  return r.value;
}

/** The draft's statements as Config.antispam; header checks files are read now. undefined when none was given. */
export function buildAntispam(d: AntispamDraft, diags: Diagnostics): AntispamSettings | undefined {
  const header = (w: { file: string; pos: Position } | undefined): HeaderCheckTable | undefined => (w ? readHeaderChecks(w.file, w.pos, diags) : undefined);
  const headerChecks = header(d.headerChecks);
  const smtpHeaderChecks = header(d.smtpHeaderChecks);
  const helo = Object.keys(d.helo).length > 0 ? { ...d.helo } : undefined;
  const out: AntispamSettings = {
    ...(d.dnsblSites.length > 0
      ? {
          dnsbl: {
            sites: d.dnsblSites,
            threshold: d.dnsbl.threshold ?? ANTISPAM_DEFAULTS.dnsblThreshold,
            allowlistThreshold: d.dnsbl.allowlistThreshold ?? ANTISPAM_DEFAULTS.dnsblAllowlistThreshold,
            refusal: d.dnsbl.refusal ?? { code: 554 },
            timeoutMs: d.dnsbl.timeoutMs ?? ANTISPAM_DEFAULTS.dnsblTimeoutMs,
          },
        }
      : {}),
    ...(d.rhsblSites.length > 0 ? { rhsbl: { sites: d.rhsblSites, refusal: d.rhsblRefusal ?? { code: 550 } } } : {}),
    ...(helo ? { helo } : {}),
    ...(d.senderDomain !== undefined ? { senderDomain: d.senderDomain } : {}),
    ...(d.greylist ? { greylist: d.greylist } : {}),
    ...(d.rateLimits.length > 0 ? { rateLimits: d.rateLimits } : {}),
    ...(headerChecks ? { headerChecks } : {}),
    ...(smtpHeaderChecks ? { smtpHeaderChecks } : {}),
  };
  return Object.keys(out).length > 0 ? out : undefined;
}
