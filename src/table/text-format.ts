/*
 * table/text-format.ts — the text format of table files (table(5), aliases(5)).
 *
 *   # a comment line (first non-blank character "#")
 *   key value              one entry per line
 *   key: value             the aliases(5) form; "key:value" too
 *   name: a, b,            a line that starts with blanks continues the
 *       c, d               entry above it (joined with one space)
 *   key value   # note     "#" after a blank starts a trailing comment
 *   key                    an entry without value: a list (set) entry
 *   "two words"  value     a key with blanks, ":" or "#" is quoted
 *   2001:db8::/32          IPv6 addresses and networks are keys as they are
 *
 * Keys are lowercased; values are kept as written, trimmed, with a trailing
 * comma dropped. Blank and comment lines between continuation lines are
 * skipped. A file is either a map (every key has a value) or a list (no
 * key has one), as in OpenSMTPD; mixing them, a duplicate key, a NUL or a
 * control character is an error naming FILE:LINE.
 */
import ipaddr from 'ipaddr.js';

export interface TextEntry {
  /** Lowercased key. */
  readonly key: string;
  /** The value, "" for a list entry. */
  readonly value: string;
  /** Line the entry starts on (1-based). */
  readonly line: number;
}

/** A bad line: the message is "FILE:LINE: detail". */
export class TableSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'TableSyntaxError';
  }
}

export interface ParseTextOptions {
  /** 'map': every key needs a value; 'set': no key may have one; 'any' (default): the first entry decides. */
  readonly shape?: 'map' | 'set' | 'any';
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Parse a table file's text into entries, in file order; throws TableSyntaxError. */
export function parseTableEntries(text: string, file: string, opts: ParseTextOptions = {}): TextEntry[] {
  const out: TextEntry[] = [];
  const firstLine = new Map<string, number>();
  let current: { key: string; value: string; line: number } | undefined;
  let shape: 'map' | 'set' | undefined = opts.shape === 'any' ? undefined : opts.shape;

  const flush = (): void => {
    if (!current) return;
    const value = current.value.trim().replace(/\s*,\s*$/, '');
    const hasValue = value !== '';
    if (shape === undefined) shape = hasValue ? 'map' : 'set';
    if (shape === 'map' && !hasValue) throw new TableSyntaxError(file, current.line, `missing value for "${current.key}" (this table is a map: every key needs a value)`);
    if (shape === 'set' && hasValue) throw new TableSyntaxError(file, current.line, `unexpected value after "${current.key}" (this table is a list: keys only)`);
    const first = firstLine.get(current.key);
    if (first !== undefined) throw new TableSyntaxError(file, current.line, `duplicate entry for "${current.key}" (first at line ${first})`);
    firstLine.set(current.key, current.line);
    out.push({ key: current.key, value, line: current.line });
    current = undefined;
  };

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    let raw = lines[i] ?? '';
    if (raw.endsWith('\r')) raw = raw.slice(0, -1);
    if (raw.includes('\0')) throw new TableSyntaxError(file, n, 'NUL character');
    if (CONTROL.test(raw)) throw new TableSyntaxError(file, n, 'control character');
    const line = stripComment(raw);
    if (line.trim() === '') continue;
    if (/^\s/.test(line)) {
      if (!current) throw new TableSyntaxError(file, n, 'continuation line without an entry before it');
      current.value += ' ' + line.trim();
      continue;
    }
    flush();
    const parsed = splitKey(line.trimEnd());
    if (typeof parsed === 'string') throw new TableSyntaxError(file, n, parsed);
    current = { key: parsed.key.toLowerCase(), value: parsed.rest, line: n };
  }
  flush();
  return out;
}

/** The text format as a key → value map. */
export function parseTableText(text: string, file: string, opts: ParseTextOptions = {}): Map<string, string> {
  return new Map(parseTableEntries(text, file, opts).map((e) => [e.key, e.value]));
}

/** One line of the text format for an entry (used by `makemap -U`); parseTableEntries reads it back. */
export function formatTableLine(key: string, value: string): string {
  const k = needsQuotes(key) ? `"${key.replace(/["\\]/g, '\\$&')}"` : key;
  return value === '' ? k : `${k}\t${value}`;
}

/** "#" starts a comment at the start of a line or after a blank, outside double quotes. */
function stripComment(line: string): string {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && quoted) {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (c === '#' && !quoted && (i === 0 || /\s/.test(line[i - 1] ?? ''))) return line.slice(0, i);
  }
  return line;
}

/** Split "key rest", "key: rest", "key:rest", '"quoted key" rest'; a string is an error. */
function splitKey(line: string): { key: string; rest: string } | string {
  if (line.startsWith('"')) {
    let key = '';
    let i = 1;
    for (; i < line.length; i++) {
      const c = line[i] as string;
      if (c === '\\' && i + 1 < line.length) {
        key += line[++i];
        continue;
      }
      if (c === '"') break;
      key += c;
    }
    if (i >= line.length) return 'unterminated quoted key';
    let rest = line.slice(i + 1);
    if (rest.startsWith(':')) rest = rest.slice(1);
    else if (rest !== '' && !/^\s/.test(rest)) return 'expected a blank or ":" after the quoted key';
    if (key === '') return 'empty key';
    return { key, rest: rest.trim() };
  }
  const ws = line.search(/\s/);
  const token = ws < 0 ? line : line.slice(0, ws);
  const after = ws < 0 ? '' : line.slice(ws);
  const address = addressKey(token);
  if (address !== undefined) return { key: address, rest: after.trim() };
  const colon = keyColon(token);
  if (colon < 0) return { key: token, rest: after.trim() };
  const key = token.slice(0, colon);
  if (key === '') return 'empty key';
  return { key, rest: (token.slice(colon + 1) + after).trim() };
}

/** Where the key of a token ends at a ":" ("name:" or "name:value"), or -1; "[…]" literals keep theirs. */
function keyColon(token: string): number {
  const start = token.startsWith('[') ? Math.max(token.indexOf(']'), 0) : 0;
  return token.indexOf(':', start);
}

/** IPv6 addresses and networks contain ":" and are whole keys ("2001:db8::/32", or "::1:" in the aliases form). */
function addressKey(token: string): string | undefined {
  // Cheap test first: an IPv6 address or network has hex digits, ":", "." and "/" only, and two ":" at least.
  if (!/^[0-9a-f:./]+$/i.test(token) || token.indexOf(':') === token.lastIndexOf(':')) return undefined;
  for (const t of token.endsWith(':') ? [token, token.slice(0, -1)] : [token]) {
    if (isIpOrNetwork(t)) return t;
  }
  return undefined;
}

function isIpOrNetwork(t: string): boolean {
  if (ipaddr.isValid(t)) return true;
  try {
    ipaddr.parseCIDR(t);
    return true;
  } catch {
    return false;
  }
}

function needsQuotes(key: string): boolean {
  if (key === '' || /[\s"#]/.test(key)) return true;
  return addressKey(key) !== key && keyColon(key) >= 0;
}
