/*
 * config/antispam.ts — the settings of the checks at the door (the
 * statements are read by config/parse-antispam.ts, header_checks files by
 * config/header-checks-file.ts; the checks run in src/antispam/).
 *
 * A DNS list site is written as Postfix's postscreen_dnsbl_sites:
 *
 *   ZONE[=FILTER][*WEIGHT]     zen.spamhaus.org=127.0.0.[2..11]*3
 *
 * FILTER matches the A record the list answers: four dotted fields, each a
 * number or [a..b;c;d..e]; without FILTER any answer counts. WEIGHT (an
 * integer, default 1, negative for an allowlist) is added to the client's
 * score once per site that lists it.
 */
/** FILE:LINE:COL (the same shape as model.ts's Position, declared here so model.ts can import this file). */
export interface Position {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/** One octet of a filter: its allowed ranges (inclusive). */
export type OctetFilter = readonly (readonly [number, number])[];

export interface DnsListSite {
  /** The zone queried, lower case, no trailing dot. */
  readonly zone: string;
  /** Four octet filters; undefined: any answer. */
  readonly filter?: readonly OctetFilter[];
  readonly weight: number;
  /** As written (for logs). */
  readonly text: string;
  readonly pos: Position;
}

/** A refusal's code and, optionally, its text (mail variables allowed: antispam/variables.ts). */
export interface RefusalSpec {
  readonly code: 421 | 450 | 451 | 550 | 554;
  readonly text?: string;
}

export interface DnsblSettings {
  readonly sites: readonly DnsListSite[];
  /** Refuse at this score or more (postscreen_dnsbl_threshold, default 1). */
  readonly threshold: number;
  /** At this score or less the client is allowlisted (postscreen_dnsbl_allowlist_threshold, default -1). */
  readonly allowlistThreshold: number;
  readonly refusal: RefusalSpec;
  /** Time for all the lists to answer; a list that did not counts 0. */
  readonly timeoutMs: number;
}

export interface RhsblSettings {
  readonly sites: readonly DnsListSite[];
  readonly refusal: RefusalSpec;
}

export type CheckCode = 450 | 550;

export interface HeloChecks {
  /** HELO must be a valid host name or address literal. */
  readonly syntax?: CheckCode;
  /** The HELO name must have an A or AAAA record. */
  readonly resolve?: CheckCode;
  /** The HELO name must be the client's forward-confirmed reverse name. */
  readonly fcrdns?: CheckCode;
}

export interface GreylistSettings {
  /** A new triplet is refused for this long (Postgrey --delay, 300 s). */
  readonly delayMs: number;
  /** A triplet not retried within this long after the delay is forgotten (4 h). */
  readonly retryWindowMs: number;
  /** A passed triplet, and an allowlisted client, is kept this long after it was last seen (35 d). */
  readonly lifetimeMs: number;
  /** After this many passed triplets the client network is allowlisted (Postgrey --auto-whitelist-clients, 5); 0: never. */
  readonly allowlistAfter: number;
  /** The state file; default "greylist.json" in the queue folder. */
  readonly store?: string;
}

export type RateSubject = 'connections' | 'messages' | 'recipients';
export type RateKey = 'client' | 'auth-user' | 'sender-domain';

export interface RateLimit {
  readonly what: RateSubject;
  readonly max: number;
  readonly windowMs: number;
  readonly per: RateKey;
  readonly code: 421 | 450;
  readonly pos: Position;
}

export type HeaderAction = 'IGNORE' | 'REJECT' | 'WARN' | 'REPLACE' | 'PREPEND' | 'HOLD' | 'DISCARD' | 'REDIRECT' | 'DUNNO' | 'OK';

export interface HeaderRule {
  readonly regex: RegExp;
  /** !/…/: the rule applies when the pattern does NOT match. */
  readonly negate: boolean;
  readonly action: HeaderAction;
  /** The action's argument (text, header line, address); "" when none. */
  readonly arg: string;
  readonly pos: Position;
}

export interface HeaderCheckTable {
  readonly file: string;
  readonly rules: readonly HeaderRule[];
}

export interface AntispamSettings {
  readonly dnsbl?: DnsblSettings;
  readonly rhsbl?: RhsblSettings;
  readonly helo?: HeloChecks;
  /** The sender domain must exist (MX, A or AAAA). */
  readonly senderDomain?: CheckCode;
  readonly greylist?: GreylistSettings;
  readonly rateLimits?: readonly RateLimit[];
  /** Postfix's header_checks: mail received. */
  readonly headerChecks?: HeaderCheckTable;
  /** Postfix's smtp_header_checks: mail relayed out. */
  readonly smtpHeaderChecks?: HeaderCheckTable;
}

export const ANTISPAM_DEFAULTS = Object.freeze({
  dnsblThreshold: 1,
  dnsblAllowlistThreshold: -1,
  dnsblTimeoutMs: 5000,
  greylistDelayMs: 300_000,
  greylistRetryWindowMs: 4 * 3_600_000,
  greylistLifetimeMs: 35 * 86_400_000,
  greylistAllowlistAfter: 5,
});

/** Parse "ZONE[=FILTER][*WEIGHT]"; a message on error. */
export function parseDnsListSite(text: string, pos: Position): DnsListSite | string {
  const m = /^([A-Za-z0-9_.-]+?)(?:=([0-9.;[\]]+))?(?:\*(-?\d+))?$/.exec(text);
  if (!m) return `invalid DNS list "${text}" (expected ZONE[=127.0.0.[2..11]][*WEIGHT], e.g. zen.spamhaus.org=127.0.0.[2..11]*3)`;
  const zone = (m[1] ?? '').toLowerCase().replace(/\.$/, '');
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(zone)) return `invalid DNS list zone "${m[1] ?? ''}"`;
  const weight = m[3] === undefined ? 1 : Number(m[3]);
  let filter: OctetFilter[] | undefined;
  if (m[2] !== undefined) {
    const fields = splitFilter(m[2]);
    if (fields.length !== 4) return `invalid answer filter "${m[2]}" (expected four fields, e.g. 127.0.0.[2..11])`;
    filter = [];
    for (const f of fields) {
      const o = parseOctet(f);
      if (typeof o === 'string') return `invalid answer filter "${m[2]}": ${o}`;
      filter.push(o);
    }
  }
  return { zone, ...(filter ? { filter } : {}), weight, text, pos };
}

/** Split "127.0.0.[2..11]" at the dots outside brackets. */
function splitFilter(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of s) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === '.' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function parseOctet(f: string): OctetFilter | string {
  const inner = /^\[(.*)\]$/.exec(f)?.[1];
  const parts = inner === undefined ? [f] : inner.split(';');
  const ranges: [number, number][] = [];
  for (const p of parts) {
    const r = /^(\d{1,3})(?:\.\.(\d{1,3}))?$/.exec(p);
    if (!r) return `"${f}" is not a number 0–255 or [a..b;c]`;
    const lo = Number(r[1]);
    const hi = r[2] === undefined ? lo : Number(r[2]);
    if (lo > 255 || hi > 255 || lo > hi) return `"${p}" is not a range within 0–255`;
    ranges.push([lo, hi]);
  }
  return ranges;
}

/** Does the answer address match the site's filter? */
export function answerMatches(site: DnsListSite, answer: string): boolean {
  if (site.filter === undefined) return true;
  const octets = answer.split('.').map(Number);
  if (octets.length !== 4) return false;
  return site.filter.every((f, i) => f.some(([lo, hi]) => (octets[i] ?? -1) >= lo && (octets[i] ?? -1) <= hi));
}

/* ---------------------------------------------- the parser's draft (config/parse-antispam.ts) */

export interface AntispamDraft {
  dnsblSites: DnsListSite[];
  dnsbl: { threshold?: number; allowlistThreshold?: number; refusal?: RefusalSpec; timeoutMs?: number };
  rhsblSites: DnsListSite[];
  rhsblRefusal?: RefusalSpec;
  helo: { syntax?: CheckCode; resolve?: CheckCode; fcrdns?: CheckCode };
  senderDomain?: CheckCode;
  greylist?: GreylistSettings;
  rateLimits: RateLimit[];
  headerChecks?: { file: string; pos: Position };
  smtpHeaderChecks?: { file: string; pos: Position };
}

export function emptyAntispamDraft(): AntispamDraft {
  return { dnsblSites: [], dnsbl: {}, rhsblSites: [], helo: {}, rateLimits: [] };
}

