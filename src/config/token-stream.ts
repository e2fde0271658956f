/*
 * config/token-stream.ts — the parser's view of the token sequence:
 * macros expanded, included files spliced in.
 *
 * Macros (OpenSMTPD semantics): `name = "value"` defines a macro from that
 * line on; `$name` anywhere outside quotes is replaced by the tokens of its
 * value, lexed again, so `ports = "port 587 tls"` then `listen on lo0 $ports`
 * works. Expanded tokens carry the position of the `$name` reference. A
 * value may itself use other macros; a macro that refers to itself is an
 * error. Macros given on the command line (`-D name=value`) win over
 * definitions in the file. Inside quoted strings `$` is literal.
 *
 * Includes: `include "file"` (relative to the including file) pushes the
 * file's tokens; they are read next, then the including file resumes. A file
 * that includes itself, directly or through others, is an error.
 *
 * Diagnostics: undefined macro (with a suggestion), macro loop, include loop,
 * unreadable include.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import { Diagnostics, ParseError } from './diagnostics.js';
import { lex, type Token } from './lexer.js';
import type { Position } from './model.js';
import { didYouMean } from './suggest.js';

interface Frame {
  readonly tokens: readonly Token[];
  i: number;
  /** Absolute path for a file frame. */
  readonly file?: string;
  /** The file's name as shown in diagnostics. */
  readonly shown?: string;
  /** Macro name for a macro-expansion frame. */
  readonly macro?: string;
}

const MAX_INCLUDE_DEPTH = 32;

export class TokenStream {
  private readonly frames: Frame[] = [];
  private readonly lookahead: Token[] = [];
  private readonly values = new Map<string, string>();
  private readonly fromCommandLine = new Set<string>();

  constructor(
    tokens: readonly Token[],
    rootPath: string,
    private readonly diags: Diagnostics,
    overrides: ReadonlyMap<string, string> = new Map(),
  ) {
    this.frames.push({ tokens, i: 0, file: rootPath, shown: tokens[0]?.pos.file ?? rootPath });
    for (const [k, v] of overrides) {
      this.values.set(k, v);
      this.fromCommandLine.add(k);
    }
  }

  /** The macros in force now (command-line ones included). */
  get macros(): ReadonlyMap<string, string> {
    return this.values;
  }

  /** `name = value` in the file; ignored when -D gave the same name. */
  defineMacro(name: string, value: string): void {
    if (this.fromCommandLine.has(name)) return;
    this.values.set(name, value);
  }

  peek(offset = 0): Token {
    while (this.lookahead.length <= offset) this.lookahead.push(this.pull(true));
    return this.lookahead[offset] as Token;
  }

  next(): Token {
    const t = this.peek();
    this.lookahead.shift();
    return t;
  }

  /**
   * Error recovery: drop tokens up to and including the end of the line.
   * Braces opened in the abandoned statement (`openBraces`) are skipped over
   * unless a line inside them starts like a new statement (`isStatementStart`),
   * which is taken as a missing "}" (`atLineStart`: the last token consumed
   * was a newline). Macros are not expanded while skipping.
   */
  skipLine(openBraces: number, atLineStart: boolean, isStatementStart: (t: Token, after: Token) => boolean): void {
    let depth = openBraces;
    for (;;) {
      const t = this.lookahead.length > 0 ? (this.lookahead.shift() as Token) : this.pull(false);
      if (t.kind === 'eof') {
        this.lookahead.unshift(t);
        return;
      }
      if (atLineStart && depth > 0) {
        const after = this.lookahead.length > 0 ? (this.lookahead[0] as Token) : this.peekRaw();
        if (isStatementStart(t, after)) {
          this.lookahead.unshift(t);
          return;
        }
      }
      atLineStart = false;
      if (t.kind === 'punct' && t.text === '{') depth++;
      else if (t.kind === 'punct' && t.text === '}') depth--;
      else if (t.kind === 'newline') {
        if (depth <= 0) return;
        atLineStart = true;
      }
    }
  }

  /** Files currently being read, outermost first (for include-loop messages). */
  openFiles(): string[] {
    return this.frames.filter((f) => f.file !== undefined).map((f) => f.file as string);
  }

  /** The directory relative includes resolve against: that of the innermost open file. */
  currentDir(): string {
    const files = this.openFiles();
    return dirname(files[files.length - 1] ?? '.');
  }

  /**
   * Read `path` (relative to the including file) and read its tokens next.
   * Errors (loop, unreadable file) are thrown at `site`, the path token.
   */
  include(path: string, site: Position): void {
    const abs = resolve(this.currentDir(), path);
    // Show the included file the way it was named, relative to the includer's name.
    const shown = isAbsolute(path) ? path : normalize(join(dirname(site.file), path));
    const fileFrames = this.frames.filter((f) => f.file !== undefined);
    const open = fileFrames.map((f) => f.file as string);
    if (open.includes(abs)) {
      const chain = [...fileFrames.slice(open.indexOf(abs)).map((f) => f.shown ?? f.file), shown].join(' → ');
      throw new ParseError(site, `include loop: ${chain}`);
    }
    if (open.length >= MAX_INCLUDE_DEPTH) throw new ParseError(site, `includes nested more than ${MAX_INCLUDE_DEPTH} deep`);
    let text: string;
    try {
      text = readFileSync(abs, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
      throw new ParseError(site, `cannot include "${path}": ${why}`);
    }
    this.diags.includedAt(shown, site);
    const r = lex(text, shown);
    for (const d of r.diagnostics) this.diags.add(d);
    if (this.lookahead.length > 0) this.frames.push({ tokens: this.lookahead.splice(0), i: 0 });
    this.frames.push({ tokens: r.tokens, i: 0, file: abs, shown });
  }

  private peekRaw(): Token {
    const t = this.pull(false);
    this.lookahead.push(t);
    return t;
  }

  private pull(expand: boolean): Token {
    for (;;) {
      const f = this.frames[this.frames.length - 1] as Frame;
      const t = f.tokens[f.i];
      if (t === undefined || t.kind === 'eof') {
        if (this.frames.length > 1) {
          this.frames.pop();
          continue;
        }
        return t ?? { kind: 'eof', text: '', pos: { file: '', line: 0, col: 0 } };
      }
      f.i++;
      if (t.kind === 'macro' && expand) {
        this.expand(t);
        continue;
      }
      return t;
    }
  }

  private expand(ref: Token): void {
    const name = ref.text;
    const value = this.values.get(name);
    if (value === undefined) {
      throw new ParseError(ref.pos, `undefined macro "$${name}"${didYouMean(name, this.values.keys())}`);
    }
    if (this.frames.some((f) => f.macro === name)) {
      throw new ParseError(ref.pos, `macro "$${name}" refers to itself`);
    }
    const r = lex(value, ref.pos.file);
    if (r.diagnostics.length > 0) {
      throw new ParseError(ref.pos, `in the value of macro "$${name}": ${(r.diagnostics[0] as { message: string }).message}`);
    }
    const tokens = r.tokens
      .filter((t) => t.kind !== 'newline' && t.kind !== 'eof')
      .map((t) => ({ kind: t.kind, text: t.text, pos: ref.pos }));
    this.frames.push({ tokens, i: 0, macro: name });
  }
}
