/*
 * config/parser.ts — smtpd.conf statements into a Draft (config/draft.ts).
 *
 * One statement per line (backslash-newline continues a line; braces may
 * span lines). The first word picks the statement:
 *   NAME = VALUE                       macro definition
 *   include "FILE"                     read FILE here
 *   listen …                           config/parse-listen.ts
 *   table, pki, ca, match              config/parse-modern.ts
 *   action                             config/parse-action.ts
 *   map, accept, reject                config/parse-legacy.ts
 *   hostname, size, expire, queue, smtp, bounce, control, pidfile, mbox,
 *   resolver, rules, smtpserver-conf   config/parse-options.ts
 *   log                                config/parse-log.ts
 *   http                               config/parse-http.ts
 *   filter                             config/parse-filter.ts
 *   mailauth                           config/parse-mailauth.ts
 *   dnsbl, rhsbl, check, greylist, rate-limit, header-checks,
 *   smtp-header-checks                 config/parse-antispam.ts
 *   mta                                config/parse-mta.ts
 *
 * Error recovery: a statement with a syntax error is reported and skipped
 * up to the end of its line (or of its braces), and parsing goes on, so
 * every error in the file is reported in one run.
 */
import { parseLog } from './parse-log.js';
import { Cursor, TOP_KEYWORDS } from './cursor.js';
import { Diagnostics, ParseError } from './diagnostics.js';
import { emptyDraft, type Draft } from './draft.js';
import { lex } from './lexer.js';
import { parseAction } from './parse-action.js';
import { parseLegacyRule, parseMap } from './parse-legacy.js';
import { parseListen } from './parse-listen.js';
import { parseHttp } from './parse-http.js';
import { parseCa, parseMatch, parsePki, parseTable } from './parse-modern.js';
import {
  UNSUPPORTED_STATEMENTS,
  parseBounce,
  parseExpire,
  parseHostname,
  parsePathStatement,
  parseQueue,
  parseResolver,
  parseSizeStatement,
  parseSmtp,
} from './parse-options.js';
import { TokenStream } from './token-stream.js';
import { parseForward } from './parse-forward.js';
import { parseFilter } from './parse-filter.js';
import { parseMailAuth } from './parse-mailauth.js';
import { ANTISPAM_STATEMENTS, parseAntispam } from './parse-antispam.js';
import { parseMta } from './parse-mta.js';
import { parsePrivsep } from './parse-privsep.js';

export interface ParseInput {
  readonly text: string;
  /** The file name shown in diagnostics. */
  readonly file: string;
  /** Absolute path of the file (for relative includes and include loops). */
  readonly absPath: string;
  /** Base for relative paths in statements. */
  readonly cwd: string;
  /** -D name=value, stronger than definitions in the file. */
  readonly macros: ReadonlyMap<string, string>;
}

export interface ParseOutput {
  readonly draft: Draft;
  readonly macros: ReadonlyMap<string, string>;
}

const STATEMENTS: Readonly<Record<string, (c: Cursor) => void>> = {
  include: parseInclude,
  listen: parseListen,
  hostname: parseHostname,
  table: parseTable,
  map: parseMap,
  pki: parsePki,
  ca: parseCa,
  action: parseAction,
  match: parseMatch,
  accept: parseLegacyRule,
  reject: parseLegacyRule,
  size: parseSizeStatement,
  expire: parseExpire,
  queue: parseQueue,
  smtp: parseSmtp,
  bounce: parseBounce,
  control: parsePathStatement,
  pidfile: parsePathStatement,
  mbox: parsePathStatement,
  log: parseLog,
  rules: parsePathStatement,
  'smtpserver-conf': parsePathStatement,
  resolver: parseResolver,
  forward: parseForward,
  privsep: parsePrivsep,
  http: parseHttp,
  filter: (c) => parseFilter(c, c.draft.filters),
  mailauth: parseMailAuth,
  ...Object.fromEntries(ANTISPAM_STATEMENTS.map((k) => [k, parseAntispam])),
  mta: (c) => parseMta(c, c.draft.transport),
};

export function parse(input: ParseInput, diags: Diagnostics): ParseOutput {
  const lexed = lex(input.text, input.file);
  for (const d of lexed.diagnostics) diags.add(d);
  const stream = new TokenStream(lexed.tokens, input.absPath, diags, input.macros);
  const draft = emptyDraft();
  const c = new Cursor(stream, diags, draft, input.cwd);
  for (;;) {
    c.beginStatement();
    try {
      const t = c.peek();
      if (t.kind === 'eof') break;
      if (t.kind === 'newline') {
        c.next();
        continue;
      }
      statement(c);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      diags.error(e.pos, e.message);
      c.recover();
    }
  }
  return { draft, macros: stream.macros };
}

function statement(c: Cursor): void {
  const t = c.peek();
  if ((t.kind === 'word' || t.kind === 'string') && c.isPunct('=', 1)) {
    macroDefinition(c);
    return;
  }
  if (t.kind !== 'word') c.fail(t.pos, `expected a statement, found ${t.kind === 'string' ? `the string "${t.text}"` : `"${t.text}"`}`);
  const handler = STATEMENTS[t.text];
  if (handler !== undefined) {
    handler(c);
    return;
  }
  const unsupported = UNSUPPORTED_STATEMENTS[t.text];
  if (unsupported !== undefined) c.fail(t.pos, unsupported);
  c.unknown(t, TOP_KEYWORDS, 'keyword');
}

function macroDefinition(c: Cursor): void {
  const name = c.next();
  c.next(); // "="
  if (!/^[A-Za-z0-9_]+$/.test(name.text)) {
    c.fail(name.pos, `invalid macro name "${name.text}" (letters, digits and "_" only, so that $${name.text} can refer to it)`);
  }
  const value = c.value(`a value for the macro "${name.text}"`);
  c.end('macro');
  c.stream.defineMacro(name.text, value.text);
}

function parseInclude(c: Cursor): void {
  c.next();
  const file = c.value('a file name after "include"');
  c.end('include');
  try {
    c.stream.include(file.text, file.pos);
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    c.error(e.pos, e.message);
  }
}
