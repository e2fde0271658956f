/*
 * config/cursor.ts — the parser's toolkit: token matching, errors,
 * settings, name references and table values shared by all statements.
 *
 * Statement parsers (config/parse-*.ts) read tokens through a Cursor.
 * Syntax errors throw ParseError (the statement is abandoned, parsing
 * resumes on the next line); value errors are recorded with error() and
 * parsing goes on, so one line can report several independent mistakes.
 */
import { isAbsolute, resolve } from 'node:path';
import { Diagnostics, ParseError } from './diagnostics.js';
import type { Draft, Ref, SettingKey, SettingValue, Setting } from './draft.js';
import { describeToken, type Token } from './lexer.js';
import { FrozenMap } from './freeze.js';
import type { Dialect, Position, TableDecl } from './model.js';
import { didYouMean } from './suggest.js';
import type { TokenStream } from './token-stream.js';

/** Statement keywords, for suggestions and for spotting a missing "}". */
export const TOP_KEYWORDS: readonly string[] = [
  'include', 'listen', 'hostname', 'table', 'map', 'pki', 'ca', 'action', 'match', 'accept', 'reject',
  'size', 'expire', 'queue', 'smtp', 'bounce', 'control', 'pidfile', 'mbox', 'log', 'resolver', 'rules',
  'smtpserver-conf', 'forward', 'http', 'mta', 'filter', 'mailauth', 'dnsbl', 'rhsbl', 'check', 'greylist', 'rate-limit', 'header-checks', 'smtp-header-checks', 'privsep',
];
const TOP_SET = new Set(TOP_KEYWORDS);

/** Option keywords that, unquoted, are never taken as a literal table value (`for domain action x`). */
const NOT_VALUES = new Set([
  'action', 'reject', 'from', 'for', 'auth', 'helo', 'mail-from', 'rcpt-to', 'tag', 'tls', 'deliver', 'relay', 'alias',
  'virtual', 'userbase', 'user', 'wrapper', 'ttl', 'host', 'backup', 'helo-src', 'src', 'pki', 'srs', 'port',
  'masquerade', 'mask-src', 'no-dsn', 'hostname', 'hostnames', 'senders',
]);

const DIALECT_NAME: Record<Dialect, string> = { legacy: 'legacy (OpenSMTPD 4.6–5.2)', modern: 'modern (OpenSMTPD 6.4+)' };

export interface TableUse {
  readonly name: string;
  readonly pos: Position;
  /** The anonymous table built for a literal; undefined for a <named> reference. */
  readonly literal?: TableDecl;
}

export interface TableRefOptions {
  /** What the table is for, in messages: "the from src networks". */
  readonly what: string;
  /** Accept a bare value or { … } instead of <name> (OpenSMTPD allows it almost everywhere). */
  readonly literal?: boolean;
  /** Check each literal value; returns an error message. */
  readonly check?: (value: string) => string | undefined;
}

export class Cursor {
  private depth = 0;
  private afterNewline = false;
  private mixedWarned = false;

  constructor(
    readonly stream: TokenStream,
    readonly diags: Diagnostics,
    readonly draft: Draft,
    readonly cwd: string,
  ) {}

  /* ------------------------------------------------------------ tokens */

  peek(offset = 0): Token {
    return this.stream.peek(offset);
  }

  next(): Token {
    const t = this.stream.next();
    this.afterNewline = t.kind === 'newline';
    if (t.kind === 'punct' && t.text === '{') this.depth++;
    if (t.kind === 'punct' && t.text === '}') this.depth--;
    return t;
  }

  beginStatement(): void {
    this.depth = 0;
  }

  /** Abandon the current statement (after a ParseError). */
  recover(): void {
    this.stream.skipLine(this.depth, this.afterNewline, (t, after) => isStatementStart(t, after));
    this.depth = 0;
  }

  atEnd(offset = 0): boolean {
    const k = this.peek(offset).kind;
    return k === 'newline' || k === 'eof';
  }

  isWord(text: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.kind === 'word' && t.text === text;
  }

  isPunct(text: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.kind === 'punct' && t.text === text;
  }

  acceptWord(text: string): Token | undefined {
    return this.isWord(text) ? this.next() : undefined;
  }

  acceptPunct(text: string): Token | undefined {
    return this.isPunct(text) ? this.next() : undefined;
  }

  expectWord(text: string, after: string): Token {
    const t = this.peek();
    if (t.kind === 'word' && t.text === text) return this.next();
    this.fail(t.pos, `expected "${text}" after ${after}, found ${describeToken(t)}${t.kind === 'word' ? didYouMean(t.text, [text]) : ''}`);
  }

  expectPunct(text: string, after: string): Token {
    const t = this.peek();
    if (t.kind === 'punct' && t.text === text) return this.next();
    this.fail(t.pos, `expected "${text}" ${after}, found ${describeToken(t)}`);
  }

  /** A word or a quoted string: a name, a path, a number… */
  value(what: string): Token {
    const t = this.peek();
    if (t.kind === 'word' || t.kind === 'string') return this.next();
    this.fail(t.pos, `expected ${what}, found ${describeToken(t)}`);
  }

  /** The statement must end here; consumes the newline. */
  end(statement: string): void {
    const t = this.peek();
    if (t.kind === 'newline') {
      this.next();
      return;
    }
    if (t.kind === 'eof') return;
    this.fail(t.pos, `unexpected ${describeToken(t)} at the end of the ${statement} statement`);
  }

  /** A keyword that is not valid here; suggests the closest valid one. */
  unknown(t: Token, candidates: readonly string[], what: string): never {
    if (t.kind === 'word') this.fail(t.pos, `unknown ${what} "${t.text}"${didYouMean(t.text, candidates)}`);
    const expected = candidates.length <= 4 ? oneOf(candidates) : `${/^[aeiou]/i.test(what) ? 'an' : 'a'} ${what}`;
    if (t.kind === 'newline' || t.kind === 'eof') this.fail(t.pos, `unexpected end of line: expected ${expected}`);
    this.fail(t.pos, `expected ${expected}, found ${describeToken(t)}`);
  }

  /* ------------------------------------------------------- diagnostics */

  fail(pos: Position, message: string): never {
    throw new ParseError(pos, message);
  }

  error(pos: Position, message: string): void {
    this.diags.error(pos, message);
  }

  warning(pos: Position, message: string): void {
    this.diags.warning(pos, message);
  }

  /* ---------------------------------------------------------- semantics */

  ref(kind: Ref['kind'], name: string, pos: Position, missing?: string): void {
    this.draft.refs.push(missing === undefined ? { kind, name, pos } : { kind, name, pos, missing });
  }

  /** Set a server-wide option; a second setting replaces the first, with a warning. */
  set<K extends SettingKey>(key: K, value: SettingValue<K>, pos: Position, label: string): void {
    const prev = this.draft.settings[key];
    if (prev !== undefined) {
      this.warning(pos, `${label} is set again (first at ${where(prev.pos, pos)}); the later value is used`);
    }
    (this.draft.settings as Record<K, Setting<SettingValue<K>>>)[key] = { value, pos, label };
  }

  /** A path from the configuration, made absolute against the working directory. */
  path(p: string): string {
    return isAbsolute(p) ? p : resolve(this.cwd, p);
  }

  /** Note that a statement belongs to one dialect; warns once when both appear. */
  dialect(d: Dialect, pos: Position): void {
    const seen = this.draft.dialectSeen;
    if (seen[d] === undefined) seen[d] = pos;
    const other: Dialect = d === 'legacy' ? 'modern' : 'legacy';
    const otherPos = seen[other];
    if (otherPos !== undefined && !this.mixedWarned) {
      this.mixedWarned = true;
      this.warning(
        pos,
        `this configuration mixes the ${DIALECT_NAME[other]} and ${DIALECT_NAME[d]} dialects (first ${other} statement at ${where(otherPos, pos)}); rules of both are applied in file order`,
      );
    }
  }

  /* ------------------------------------------------------------- tables */

  /** `<name>`, or (when literal) a value or `{ a, b }` / `{ k = v }` made into an anonymous table. */
  tableRef(opts: TableRefOptions): TableUse {
    const t = this.peek();
    if (t.kind === 'word' && t.text === 'regex') {
      const after = this.peek(1);
      if (after.kind === 'string' || (after.kind === 'punct' && (after.text === '<' || after.text === '{'))) {
        this.fail(t.pos, 'regex tables are not supported by Postern');
      }
    }
    if (t.kind === 'punct' && t.text === '<') {
      this.next();
      const name = this.value('a table name after "<"');
      this.expectPunct('>', `to close the table name <${name.text}`);
      this.ref('table', name.text, name.pos);
      return { name: name.text, pos: name.pos };
    }
    if (opts.literal === true && t.kind === 'word' && NOT_VALUES.has(t.text)) {
      this.fail(t.pos, `expected a table (<name>) or a value for ${opts.what}, found the keyword "${t.text}" (quote it if it is meant as a value)`);
    }
    if (opts.literal === true && (t.kind === 'word' || t.kind === 'string' || (t.kind === 'punct' && t.text === '{'))) {
      const decl = t.kind === 'punct' ? this.braceTable(undefined) : this.singleValueTable(this.next());
      if (opts.check !== undefined) {
        const values = decl.kind === 'list' ? decl.values : decl.kind === 'map' ? [...decl.entries.keys()] : [];
        for (const v of values) {
          const bad = opts.check(v);
          if (bad !== undefined) this.error(decl.pos, bad);
        }
      }
      const existing = this.draft.anonTables.get(decl.name);
      if (existing === undefined) this.draft.anonTables.set(decl.name, decl);
      return { name: decl.name, pos: t.pos, literal: existing ?? decl };
    }
    const expected = opts.literal === true ? `a table (<name>) or a value for ${opts.what}` : `a table reference (<name>) for ${opts.what}`;
    this.fail(t.pos, `expected ${expected}, found ${describeToken(t)}`);
  }

  private singleValueTable(v: Token): TableDecl {
    return { name: `<${v.text}>`, pos: v.pos, kind: 'list', values: [v.text] };
  }

  /**
   * `{ a, b, c }` or `{ k = v, k2 => v2 }`; commas or newlines separate the
   * entries. `name` undefined ⇒ an anonymous table named after its contents.
   */
  braceTable(name: { text: string; pos: Position } | undefined): TableDecl {
    const open = this.expectPunct('{', 'to start the table values');
    const values: string[] = [];
    const entries = new Map<string, string>();
    let kind: 'list' | 'map' | undefined;
    let atLineStart = false;
    for (;;) {
      while (this.peek().kind === 'newline') {
        this.next();
        atLineStart = true;
      }
      const t = this.peek();
      if (t.kind === 'eof' || (atLineStart && isStatementStart(t, this.peek(1)))) {
        this.fail(open.pos, `"{" is never closed (expected "}" before ${t.kind === 'eof' ? 'the end of the file' : `line ${t.pos.line}`})`);
      }
      atLineStart = false;
      if (this.acceptPunct('}')) break;
      const key = this.value('a table value or "}"');
      if (this.isPunct('=') || this.isPunct('=>')) {
        this.next();
        const val = this.value(`a value after "${key.text} ="`);
        if (kind === 'list') this.error(key.pos, 'a table cannot mix "key = value" entries and single values');
        kind = kind ?? 'map';
        if (entries.has(key.text)) this.warning(key.pos, `duplicate key "${key.text}" in table; the later value is used`);
        entries.set(key.text, val.text);
      } else {
        if (kind === 'map') this.error(key.pos, 'a table cannot mix "key = value" entries and single values');
        kind = kind ?? 'list';
        values.push(key.text);
      }
      if (this.acceptPunct(',')) continue;
      const after = this.peek();
      if (after.kind === 'newline' || (after.kind === 'punct' && after.text === '}')) continue;
      this.fail(after.pos, `expected "," or "}" after the table value "${key.text}", found ${describeToken(after)}`);
    }
    const pos = name?.pos ?? open.pos;
    if (kind === undefined) this.fail(open.pos, 'empty table: give at least one value between "{" and "}"');
    if (kind === 'map') {
      const tableName = name?.text ?? `<${[...entries].map(([k, v]) => `${k}=${v}`).join(',')}>`;
      return { name: tableName, pos, kind: 'map', entries: new FrozenMap(entries) };
    }
    return { name: name?.text ?? `<${values.join(',')}>`, pos, kind: 'list', values };
  }
}

/** Does this line start a new statement (used to spot a missing "}")? */
export function isStatementStart(t: Token, after: Token): boolean {
  if (t.kind !== 'word' || !TOP_SET.has(t.text)) return false;
  if (after.kind === 'newline' || after.kind === 'eof') return false;
  return !(after.kind === 'punct' && [',', '}', '=', '=>'].includes(after.text));
}

/** "line 3" in the same file, "other.conf:3" in another. */
export function where(p: Position, from: Position): string {
  return p.file === from.file ? `line ${p.line}` : `${p.file}:${p.line}`;
}

function oneOf(words: readonly string[]): string {
  const q = words.map((w) => `"${w}"`);
  if (q.length <= 1) return q.join('');
  return `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`;
}
