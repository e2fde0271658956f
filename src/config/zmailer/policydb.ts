/*
 * config/zmailer/policydb.ts — ZMailer's smtp-policy database (`PARAM
 * policydb [TYPE] PATH`), read from its source files, as ZMailer's
 * policy-builder compiles them:
 *
 *   PATH.src                 the main file (or PATH itself when it is text)
 *   PATH.relay, .relay.manual  networks allowed to relay: each line gets "= _full_rights"
 *   PATH.mx, .mx.manual        domains we accept mail for: each line gets "= _relaytarget"
 *   DIR/localnames             ZMailer's own domains (first word of a line): "= _localnames"
 *
 * Format (learned from ZMailer's proto/db/smtp-policy.src): one entry a
 * line, `key [attribute value]… [= _tag]`; "#" starts a comment; blank
 * lines are skipped. Keys:
 *
 *   example.com        that domain;  .example.com  its subdomains;  .  every domain
 *   user@, user@dom    a local part anywhere / one address
 *   [192.0.2.0]/24     a network (longest prefix wins; [a.b.c.d] alone is /32);
 *                      IPv6 as [IPv6:2001:db8::]/32 or ZMailer's [ipv6.…]
 *   _tag               a named set of attributes, used with "= _tag"
 *
 * Attribute values are "+" or "-", a number (maxinsize, maxoutsize), RBL
 * zones ("+" or "zone:zone", test-dns-rbl and friends) or a quoted string
 * (message: the text given with the refusal of the attribute after it).
 * Every problem is "FILE:LINE: message"; an unknown attribute is an error
 * (ZMailer's compiler refused it too).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import ipaddr from 'ipaddr.js';
import type { Diagnostic } from '../model.js';

export const POLICY_ATTRIBUTES = [
  'rejectnet', 'freezenet', 'rejectsource', 'freezesource', 'relaycustomer', 'relaycustnet', 'relaytarget', 'freeze',
  'senderokwithdns', 'acceptifmx', 'acceptifdns', 'sendernorelay', 'test-dns-rbl', 'rcpt-dns-rbl', 'test-rcpt-dns-rbl',
  'localdomain', 'maxinsize', 'maxoutsize', 'fulltrustnet', 'trustrecipients', 'trust-whoson', 'filtering', 'spf',
] as const;
export type PolicyAttributeName = (typeof POLICY_ATTRIBUTES)[number];

export type PolicyItem =
  | { readonly kind: 'attr'; readonly name: PolicyAttributeName; readonly value: string; readonly message?: string }
  | { readonly kind: 'alias'; readonly tag: string };

export interface PolicyEntry {
  readonly key: string;
  readonly items: readonly PolicyItem[];
  readonly where: string;
}

export interface PolicyNet {
  readonly net: [ipaddr.IPv4 | ipaddr.IPv6, number];
  readonly entry: PolicyEntry;
}

export interface PolicyDb {
  readonly files: readonly string[];
  /** Domains, ".domains", "user@", "user@domain", "_tags": lower case. */
  readonly keys: ReadonlyMap<string, PolicyEntry>;
  /** Networks, longest prefix first. */
  readonly nets: readonly PolicyNet[];
}

const NUMERIC = new Set<string>(['maxinsize', 'maxoutsize']);
const ZONES = new Set<string>(['test-dns-rbl', 'rcpt-dns-rbl', 'test-rcpt-dns-rbl']);

/** The words of a line: blank-separated, "…" quoted, "#" starts a comment. */
function words(line: string): string[] | string {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length || line[i] === '#') break;
    if (line[i] === '"') {
      const end = line.indexOf('"', i + 1);
      if (end < 0) return 'unterminated quote';
      out.push(line.slice(i + 1, end));
      i = end + 1;
      continue;
    }
    const start = i;
    while (i < line.length && line[i] !== ' ' && line[i] !== '\t') i++;
    out.push(line.slice(start, i));
  }
  return out;
}

/** "[192.0.2.0]/24", "[IPv6:2001:db8::]/32", "[ipv6.…]": the network, or an error. */
export function parseNetKey(key: string): [ipaddr.IPv4 | ipaddr.IPv6, number] | string {
  const m = /^\[([^\]]+)\](?:\/(\d{1,3}))?$/.exec(key);
  if (!m) return `bad address key "${key}" (expected [a.b.c.d]/prefix)`;
  const text = (m[1] as string).replace(/^ipv6[.:]/i, '');
  if (!ipaddr.isValid(text)) return `bad address "${m[1] as string}"`;
  let a = ipaddr.parse(text);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  const max = a.kind() === 'ipv4' ? 32 : 128;
  const bits = m[2] === undefined ? max : Number(m[2]);
  if (bits > max) return `prefix /${bits} is longer than ${max} bits`;
  return [a, bits];
}

/** Parse one file's text; `suffix`: the alias policy-builder appends (= _full_rights, = _relaytarget). */
export function parsePolicyText(text: string, file: string, suffix: string | undefined, into: { keys: Map<string, PolicyEntry>; nets: PolicyNet[] }, diags: Diagnostic[]): void {
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = (lines[n] ?? '').replace(/\r$/, '');
    const pos = { file, line: n + 1, col: 1 };
    const err = (message: string): void => void diags.push({ pos, message, severity: 'error' });
    const w = words(line);
    if (typeof w === 'string') {
      err(w);
      continue;
    }
    if (w.length === 0) continue;
    if (suffix !== undefined) {
      // localnames lines are "domain [canonical name]": only the domain is a key.
      if (suffix === '_localnames') w.splice(1);
      w.push('=', suffix);
    }
    const key = (w[0] as string).toLowerCase();
    const items: PolicyItem[] = [];
    let message: string | undefined;
    let bad = false;
    for (let i = 1; i < w.length; i += 2) {
      const name = (w[i] as string).toLowerCase();
      const value = w[i + 1];
      if (value === undefined) {
        err(`attribute "${name}" has no value`);
        bad = true;
        break;
      }
      if (name === '=') {
        if (!value.startsWith('_')) {
          err(`"= ${value}": an alias names a _tag`);
          bad = true;
          break;
        }
        items.push({ kind: 'alias', tag: value.toLowerCase() });
      } else if (name === 'message') {
        message = value;
      } else if ((POLICY_ATTRIBUTES as readonly string[]).includes(name)) {
        if (NUMERIC.has(name) ? !/^\d+$/.test(value) : !ZONES.has(name) && value !== '+' && value !== '-') {
          err(`attribute "${name}": bad value "${value}" (expected ${NUMERIC.has(name) ? 'a number' : '+ or -'})`);
          bad = true;
          break;
        }
        items.push({ kind: 'attr', name: name as PolicyAttributeName, value, ...(message !== undefined ? { message } : {}) });
        message = undefined;
      } else {
        err(`unknown attribute "${name}" (known: ${POLICY_ATTRIBUTES.join(', ')}, message, =)`);
        bad = true;
        break;
      }
    }
    if (bad) continue;
    const entry: PolicyEntry = { key, items, where: `${file}:${n + 1}` };
    if (key.startsWith('[')) {
      const net = parseNetKey(key);
      if (typeof net === 'string') err(net);
      else into.nets.push({ net, entry });
    } else {
      // A key given twice: ZMailer's compiler kept both; the attributes add up, the first wins.
      const before = into.keys.get(key);
      into.keys.set(key, before ? { ...before, items: [...before.items, ...items] } : entry);
    }
  }
}

/** Read the database's source files; diagnostics for every problem (a missing main file is an error). */
export function loadPolicyDb(path: string): { db?: PolicyDb; diagnostics: Diagnostic[] } {
  const diags: Diagnostic[] = [];
  const into = { keys: new Map<string, PolicyEntry>(), nets: [] as PolicyNet[] };
  const files: string[] = [];
  const main = [`${path}.src`, path].find((p) => existsSync(p) && isText(p));
  if (main === undefined) {
    diags.push({ pos: { file: `${path}.src`, line: 0, col: 0 }, message: `policydb: neither ${path}.src nor a text file ${path} exists (Postern reads the database's source, not ZMailer's compiled ${path}.db)`, severity: 'error' });
    return { diagnostics: diags };
  }
  const sources = [[main, undefined], [join(dirname(path), 'localnames'), '_localnames'], [`${path}.relay.manual`, '_full_rights'], [`${path}.relay`, '_full_rights'], [`${path}.mx.manual`, '_relaytarget'], [`${path}.mx`, '_relaytarget']] as const;
  for (const [file, suffix] of sources) {
    if (file !== main && !existsSync(file)) continue;
    files.push(file);
    parsePolicyText(readFileSync(file, 'utf8'), file, suffix, into, diags);
  }
  const nets = into.nets.sort((a, b) => b.net[1] - a.net[1]);
  return { db: { files, keys: into.keys, nets }, diagnostics: diags };
}

function isText(p: string): boolean {
  try {
    return !readFileSync(p).subarray(0, 4096).includes(0);
  } catch {
    return false;
  }
}
