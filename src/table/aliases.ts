/*
 * table/aliases.ts — the alias lookup service: what an aliases(5) or
 * virtual table value means (OpenSMTPD K_ALIAS).
 *
 * A value is a comma-separated list of destinations:
 *   user                 a local user (letters, digits, "_", ".", "-", "+")
 *   user@domain          an address, routed again through the rules
 *   /path/to/file        append the message to this file (absolute path)
 *   |command args        pipe the message to this command
 *   :include:/path       the destinations listed in that file (also include:)
 *   error:550 text       refuse with this reply; 4xx or 5xx, an enhanced
 *                        code may follow ("error:550 5.1.6 moved"); also :error:
 * An item may be enclosed in double quotes ("|/usr/bin/x a,b"), which is
 * how a comma or a leading blank becomes part of it; a backslash takes the
 * next character literally. No item may contain a control character other
 * than a tab (so none can carry a CR, LF or NUL into an envelope).
 *
 * Values come only from tables and :include: files, never from a message's
 * envelope: this is the only place where a file or a command is named.
 */
import type { Table } from './table.js';
import type { ServiceLookup } from './services.js';

export type AliasNode =
  | { readonly kind: 'user'; readonly name: string }
  | { readonly kind: 'address'; readonly address: string; readonly local: string; readonly domain: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'command'; readonly command: string }
  | { readonly kind: 'include'; readonly path: string }
  | { readonly kind: 'error'; readonly code: number; readonly enhanced: string; readonly text: string };

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const USERNAME = /^[A-Za-z0-9_.+-]+$/;
const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\uffff]+$/;
const DOMAIN = /^(?:[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\u0080-\uffff-]*[A-Za-z0-9\u0080-\uffff])?\.?)+$|^\[[^\]\s]+\]$/;

/** Parse a whole value; a string result says what is wrong. */
export function parseAliasValue(value: string): AliasNode[] | string {
  if (CONTROL.test(value)) return `control character in "${printable(value)}"`;
  if (value.trim() === '') return 'no destination';
  const items = splitAliasList(value);
  if (typeof items === 'string') return items;
  const out: AliasNode[] = [];
  for (const item of items) {
    const n = parseAliasItem(item);
    if (typeof n === 'string') return n;
    out.push(n);
  }
  if (out.length === 0) return 'no destination';
  return out;
}

/** Split at commas outside double quotes; backslash escapes; items trimmed; a trailing comma allowed. */
export function splitAliasList(value: string): string[] | string {
  const items: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '\\') {
      if (i + 1 >= value.length) return 'a backslash at the end of the value';
      cur += value[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) {
      items.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  if (quoted) return 'unbalanced double quote';
  items.push(cur.trim());
  if (items.length > 1 && items[items.length - 1] === '') items.pop();
  if (items.some((x) => x === '')) return 'empty destination between commas';
  return items;
}

/** One destination. */
export function parseAliasItem(raw: string): AliasNode | string {
  let s = raw.trim();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1);
  if (s === '') return 'empty destination';
  if (CONTROL.test(s)) return `control character in destination "${printable(s)}"`;

  const lower = s.toLowerCase();
  const errorPrefix = lower.startsWith(':error:') ? 7 : lower.startsWith('error:') ? 6 : 0;
  if (errorPrefix > 0) return parseError(s.slice(errorPrefix), s);
  const includePrefix = lower.startsWith(':include:') ? 9 : lower.startsWith('include:') ? 8 : 0;
  if (includePrefix > 0) {
    const path = s.slice(includePrefix).trim();
    if (!path.startsWith('/')) return `:include: needs an absolute path: "${s}"`;
    return { kind: 'include', path };
  }
  if (s.startsWith('|')) {
    const command = s.slice(1).trim();
    if (command === '') return 'empty command after "|"';
    return { kind: 'command', command };
  }
  if (s.startsWith('/')) return { kind: 'file', path: s };
  if (s.includes('@')) {
    const at = s.lastIndexOf('@');
    const local = s.slice(0, at);
    const domain = s.slice(at + 1);
    if (local === '' || !LOCAL_PART.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..')) return `invalid address "${s}"`;
    if (domain === '' || !DOMAIN.test(domain)) return `invalid domain in address "${s}"`;
    const d = domain.toLowerCase().replace(/\.$/, '');
    return { kind: 'address', address: `${local}@${d}`, local, domain: d };
  }
  if (s.includes('/')) return `a file destination must be an absolute path: "${s}"`;
  if (!USERNAME.test(s)) return `invalid user name "${s}"`;
  return { kind: 'user', name: lower };
}

function parseError(rest: string, whole: string): AliasNode | string {
  const m = /^([45])(\d\d) +(\S.*)$/.exec(rest.trim());
  if (!m) return `"${whole}": expected error:CODE text, with a 4xx or 5xx code and a text`;
  const cls = m[1] as string;
  const code = Number(cls + m[2]);
  let text = (m[3] as string).trim();
  let enhanced = `${cls}.0.0`;
  const e = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)(.*)$/.exec(text);
  if (e) {
    if (e[1] !== cls) return `"${whole}": the enhanced code ${e[1]}.${e[2]}.${e[3]} does not agree with ${code}`;
    enhanced = `${e[1]}.${e[2]}.${e[3]}`;
    text = (e[4] as string).trim();
    if (text === '') return `"${whole}": the error needs a text`;
  }
  return { kind: 'error', code, enhanced, text };
}

/** The alias service: look a key up and parse its value (a value that does not parse is an error: defer). */
export function lookupAlias(table: Table, key: string): ServiceLookup<AliasNode[]> {
  const r = table.get(key.toLowerCase());
  if (r.kind !== 'found') return r;
  const nodes = parseAliasValue(r.value);
  if (typeof nodes === 'string') return { kind: 'error', reason: `table ${table.name}: entry "${key}": ${nodes}` };
  return { kind: 'found', value: nodes };
}

/** The text of a node as it would be written in a table. */
export function aliasNodeText(n: AliasNode): string {
  switch (n.kind) {
    case 'user':
      return n.name;
    case 'address':
      return n.address;
    case 'file':
      return n.path;
    case 'command':
      return `|${n.command}`;
    case 'include':
      return `:include:${n.path}`;
    case 'error':
      return `error:${n.code} ${n.enhanced} ${n.text}`;
  }
}

function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
