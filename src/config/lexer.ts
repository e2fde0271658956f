/*
 * config/lexer.ts — smtpd.conf text to tokens, each with FILE:LINE:COL.
 *
 * The token rules follow OpenSMTPD's parse.y lexer:
 *   - blanks (space, tab, CR) separate tokens; a newline ends a statement
 *     and is itself a token;
 *   - "#" starts a comment that runs to the end of the line;
 *   - a backslash right before a newline joins the two lines;
 *   - "…" and '…' are quoted strings; inside them \" (or \') is the quote,
 *     "\ " and "\<tab>" are the blank, backslash-newline continues the
 *     string on the next line, any other backslash is kept as is. A raw
 *     newline inside quotes is an error (OpenSMTPD would silently swallow
 *     the rest of the file when a quote is left open);
 *   - { } , = < > ! and => are punctuation;
 *   - $name (letters, digits, _) is a macro reference, expanded later by
 *     config/token-stream.ts; "$" inside a word or a string is literal;
 *   - anything else is a word: a run of characters that are not blanks,
 *     quotes or punctuation ("smtp+tls://bob@host:587", "file:/etc/x",
 *     "10.0.0.0/8", "35M" are single words).
 * Columns are 1-based and count characters (a tab is one column).
 *
 * Diagnostics: "unterminated quoted string", "unexpected character".
 */
import type { Diagnostic, Position } from './model.js';

export type TokenKind = 'word' | 'string' | 'punct' | 'macro' | 'newline' | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** Word text, unescaped string contents, punctuation, or the macro name (without "$"). */
  readonly text: string;
  readonly pos: Position;
}

export interface LexResult {
  readonly tokens: readonly Token[];
  readonly diagnostics: readonly Diagnostic[];
}

const PUNCT = new Set(['{', '}', ',', '=', '<', '>', '!']);
/** Characters that end a word (besides blanks, newlines and quotes). */
const WORD_BREAK = new Set(['{', '}', ',', '=', '<', '>', '!', '#', '(', ')', '"', "'"]);

function isBlank(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v';
}

function isMacroChar(c: string): boolean {
  return /^[A-Za-z0-9_]$/.test(c);
}

/** Split `text` (the contents of `file`) into tokens; always ends with a newline and an eof token. */
export function lex(text: string, file: string): LexResult {
  const tokens: Token[] = [];
  const diagnostics: Diagnostic[] = [];
  let i = 0;
  let line = 1;
  let col = 1;
  const here = (): Position => ({ file, line, col });
  const advance = (n = 1): void => {
    for (let k = 0; k < n; k++) {
      if (text[i] === '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
      i++;
    }
  };
  const error = (pos: Position, message: string): void => {
    diagnostics.push({ pos, message, severity: 'error' });
  };

  while (i < text.length) {
    const c = text[i] as string;
    if (isBlank(c)) {
      advance();
      continue;
    }
    if (c === '\\' && text[i + 1] === '\n') {
      advance(2);
      continue;
    }
    if (c === '\\' && text[i + 1] === '\r' && text[i + 2] === '\n') {
      advance(3);
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') advance();
      continue;
    }
    if (c === '\n') {
      tokens.push({ kind: 'newline', text: '\n', pos: here() });
      advance();
      continue;
    }
    if (c === '"' || c === "'") {
      const start = here();
      const s = readQuoted(c);
      if (s === undefined) {
        error(start, 'unterminated quoted string (a string cannot span lines; end the line with \\ to continue it)');
      } else {
        tokens.push({ kind: 'string', text: s, pos: start });
      }
      continue;
    }
    if (c === '=' && text[i + 1] === '>') {
      tokens.push({ kind: 'punct', text: '=>', pos: here() });
      advance(2);
      continue;
    }
    if (PUNCT.has(c)) {
      tokens.push({ kind: 'punct', text: c, pos: here() });
      advance();
      continue;
    }
    if (c === '$') {
      const start = here();
      advance();
      let name = '';
      while (i < text.length && isMacroChar(text[i] as string)) {
        name += text[i];
        advance();
      }
      if (name === '') error(start, 'expected a macro name after "$"');
      else tokens.push({ kind: 'macro', text: name, pos: start });
      continue;
    }
    if (c === '(' || c === ')') {
      error(here(), `unexpected character "${c}"`);
      advance();
      continue;
    }
    const start = here();
    let word = '';
    while (i < text.length) {
      const d = text[i] as string;
      if (isBlank(d) || d === '\n' || WORD_BREAK.has(d)) break;
      if (d === '\\') {
        const next = text[i + 1];
        if (next === '\n' || next === undefined) break;
        if (next === '\r' && text[i + 2] === '\n') break;
        word += next;
        advance(2);
        continue;
      }
      word += d;
      advance();
    }
    tokens.push({ kind: 'word', text: word, pos: start });
  }
  const end = here();
  tokens.push({ kind: 'newline', text: '\n', pos: end });
  tokens.push({ kind: 'eof', text: '', pos: end });
  return { tokens, diagnostics };

  /** Read a quoted string starting at the quote; undefined (cursor at the newline) if unterminated. */
  function readQuoted(quote: string): string | undefined {
    advance();
    let out = '';
    while (i < text.length) {
      const d = text[i] as string;
      if (d === quote) {
        advance();
        return out;
      }
      if (d === '\n') return undefined;
      if (d === '\\') {
        const next = text[i + 1];
        if (next === quote || next === ' ' || next === '\t') {
          out += next;
          advance(2);
          continue;
        }
        if (next === '\n') {
          advance(2);
          continue;
        }
        if (next === '\r' && text[i + 2] === '\n') {
          advance(3);
          continue;
        }
      }
      out += d;
      advance();
    }
    return undefined;
  }
}

/** How a token reads in a message: words and punctuation bare, strings quoted, newline/eof by name. */
export function describeToken(t: Token): string {
  switch (t.kind) {
    case 'word':
      return `"${t.text}"`;
    case 'string':
    case 'punct':
      return `"${t.text}"`;
    case 'macro':
      return `"$${t.text}"`;
    case 'newline':
      return 'end of line';
    case 'eof':
      return 'end of file';
  }
}
