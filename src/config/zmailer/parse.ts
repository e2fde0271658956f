/*
 * config/zmailer/parse.ts — read ZMailer's smtpserver.conf (seed 000) into
 * a typed, frozen ZmailerConf (config/policy-files.ts reads the file and
 * config/zmailer/merge.ts merges its PARAMs into the configuration).
 *
 * The file has two kinds of lines:
 *
 *   PARAM name [arguments]        server parameters (see params.ts)
 *   glob [maxloadavg] flags       HELO patterns (see helo-patterns.ts)
 *   glob [maxloadavg] !message
 *
 * Lines starting with "#" are comments. Lines starting with white space
 * are ignored, as ZMailer ignores them — but a warning names them, since
 * an indented PARAM that silently does nothing is a trap. In PARAM lines
 * arguments are separated by white space and may be quoted ("…" or '…');
 * a word starting with "#" starts a comment; $NAME, ${NAME} and $(NAME)
 * are replaced from the ZENV variables given in the options ($$ is "$").
 * `help` and `hdr220` take the rest of the line as written.
 *
 * Every problem is reported as FILE:LINE:COL with the line it is about;
 * one bad line does not hide the others.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { deepFreeze, FrozenSet } from '../freeze.js';
import type { Diagnostic, Position } from '../model.js';
import { suggest } from '../suggest.js';
import { INERT_STYLE_FLAGS, parseStyleFlags, type HeloPattern } from './helo-patterns.js';
import { findParam, newDraft, normalizeParamName, paramNames, ParamError, type ConfDraft, type ZmailerConf, type ZmailerExtension } from './params.js';

export interface ZmailerParseOptions {
  /** ZENV variables for $NAME expansion (MAILBIN, MAILVAR, MAILSHARE, POSTOFFICE …). */
  readonly env?: Readonly<Record<string, string>>;
  /** Is this path an executable file? Default: a regular file with execute permission. */
  readonly executable?: (path: string) => boolean;
}

export type ZmailerParseResult =
  | { readonly ok: true; readonly conf: ZmailerConf; readonly diagnostics: readonly Diagnostic[] }
  | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

/** PARAMs that may be given many times, each adding to a list. */
const REPEATABLE = new Set(['help', 'hdr220', 'bindaddress', 'etrncluster']);

interface Word {
  readonly text: string;
  readonly col: number;
}

class LineError extends Error {
  constructor(
    readonly col: number,
    message: string,
  ) {
    super(message);
  }
}

export function parseZmailerConf(text: string, file: string, opts: ZmailerParseOptions = {}): ZmailerParseResult {
  const diagnostics: Diagnostic[] = [];
  const draft = newDraft(file);
  const seen = new Map<string, number>();
  const executable = opts.executable ?? isExecutable;
  const env = opts.env ?? {};
  const lines = text.split('\n');

  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').replace(/\r$/, '');
    const lineNo = i + 1;
    const at = (col: number): Position => ({ file, line: lineNo, col });
    const warn = (col: number, message: string): void => void diagnostics.push({ pos: at(col), message, severity: 'warning' });
    if (line.trim() === '' || line.startsWith('#')) continue;
    if (line[0] === ' ' || line[0] === '\t') {
      const col = line.search(/\S/) + 1;
      if (!line.trimStart().startsWith('#')) warn(col, 'line starts with white space and is ignored, as ZMailer does (remove the indentation to use it)');
      continue;
    }
    try {
      const first = /^\S+/.exec(line)?.[0] ?? '';
      if (first.toUpperCase() === 'PARAM') {
        paramLine(line, lineNo, draft, seen, { env, executable, at, warn });
      } else {
        draft.heloPatterns.push(heloLine(line, at(1), warn));
      }
    } catch (e) {
      if (!(e instanceof LineError)) throw e;
      diagnostics.push({ pos: at(e.col), message: e.message, severity: 'error' });
    }
  }

  if (draft.contentFilter !== undefined && draft.contentFilter.path === '') {
    const where = draft.given.find((g) => g.name === 'contentfilter-maxpar' || g.name === 'debug-contentfilter');
    diagnostics.push({ pos: where?.pos ?? { file, line: 1, col: 1 }, message: `${where?.name ?? 'contentfilter-maxpar'} without "PARAM contentfilter PATH" has no effect`, severity: 'warning' });
    draft.contentFilter = undefined;
  }
  if (diagnostics.some((d) => d.severity === 'error')) return { ok: false, diagnostics };
  return { ok: true, conf: freeze(draft), diagnostics };
}

/** "FILE:LINE: message" (warnings marked), the form ZMailer-file findings are shown in. */
export function formatZmailerDiagnostic(d: Diagnostic): string {
  return `${d.pos.file}:${d.pos.line}: ${d.severity === 'warning' ? 'warning: ' : ''}${d.message}`;
}

/** A regular file the server may execute. */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

interface LineContext {
  readonly env: Readonly<Record<string, string>>;
  readonly executable: (path: string) => boolean;
  readonly at: (col: number) => Position;
  readonly warn: (col: number, message: string) => void;
}

function paramLine(line: string, lineNo: number, draft: ConfDraft, seen: Map<string, number>, ctx: LineContext): void {
  const words = splitWords(line);
  const nameWord = words[1];
  if (nameWord === undefined) throw new LineError(1, 'PARAM needs a name');
  const spec = findParam(nameWord.text);
  if (spec === undefined) {
    const near = suggestName(nameWord.text);
    throw new LineError(nameWord.col, `unknown PARAM "${nameWord.text}"${near ? `; did you mean "${near}"?` : ''}`);
  }
  const canonical = spec.names.find((n) => normalizeParamName(n) === normalizeParamName(nameWord.text)) ?? (spec.names[0] as string);
  if (spec.unsupported !== undefined) {
    throw new LineError(nameWord.col, `PARAM ${canonical} is not supported by Postern: ${spec.unsupported}`);
  }

  let args: Word[];
  if (spec.raw) {
    // As ZMailer: exactly one separator after the name, the rest as written.
    const start = nameWord.col - 1 + nameWord.text.length + 1;
    args = start <= line.length ? [{ text: line.slice(start), col: start + 1 }] : [];
  } else {
    args = words.slice(2).map((w) => ({ text: expand(w, ctx.env), col: w.col }));
  }
  const [min, max] = spec.args;
  if (args.length < min) {
    throw new LineError(nameWord.col, `PARAM ${canonical} needs ${min === max ? min : `at least ${min}`} argument${min === 1 ? '' : 's'}`);
  }
  if (args.length > max) {
    const extra = args[max] as Word;
    throw new LineError(extra.col, max === 0 ? `PARAM ${canonical} takes no argument (found "${extra.text}")` : `PARAM ${canonical} takes at most ${max} argument${max === 1 ? '' : 's'} (found "${extra.text}")`);
  }

  const key = normalizeParamName(canonical);
  const before = seen.get(key);
  if (before !== undefined && !REPEATABLE.has(key)) ctx.warn(nameWord.col, `PARAM ${canonical} was already given at line ${before}; this one wins`);
  seen.set(key, lineNo);

  try {
    spec.apply?.(draft, args.map((a) => a.text), { warn: (m) => ctx.warn(nameWord.col, m), executable: ctx.executable });
  } catch (e) {
    if (!(e instanceof ParamError)) throw e;
    const col = e.arg >= 0 ? (args[e.arg]?.col ?? nameWord.col) : nameWord.col;
    throw new LineError(col, `PARAM ${canonical}: ${e.message}`);
  }
  if (spec.note !== undefined) ctx.warn(nameWord.col, `PARAM ${canonical}: ${spec.note}`);
  draft.given.push({ name: canonical, pos: ctx.at(nameWord.col) });
}

function suggestName(name: string): string | undefined {
  const byKey = new Map(paramNames().map((n) => [normalizeParamName(n), n]));
  const near = suggest(normalizeParamName(name), byKey.keys());
  return near === undefined ? undefined : byKey.get(near);
}

/** Words of a PARAM line: white-space separated, quotes removed, "#word" starts a comment. */
function splitWords(line: string): Word[] {
  const words: Word[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    const c = line[i] as string;
    if (c === '#') break;
    if (c === '"' || c === "'") {
      const end = line.indexOf(c, i + 1);
      if (end < 0) throw new LineError(i + 1, `unterminated ${c === '"' ? 'double' : 'single'} quote`);
      words.push({ text: line.slice(i + 1, end), col: i + 1 });
      i = end + 1;
      continue;
    }
    const start = i;
    while (i < line.length && line[i] !== ' ' && line[i] !== '\t') i++;
    words.push({ text: line.slice(start, i), col: start + 1 });
  }
  return words;
}

/** $NAME, ${NAME}, $(NAME) from the ZENV variables; $$ is "$". */
function expand(w: Word, env: Readonly<Record<string, string>>): string {
  return w.text.replace(/\$(\$|\{([^}]*)\}|\(([^)]*)\)|([A-Za-z0-9_]+))/g, (all, _m, braced, paren, bare) => {
    if (all === '$$') return '$';
    const name = (braced ?? paren ?? bare) as string;
    const v = Object.prototype.hasOwnProperty.call(env, name) ? env[name] : undefined;
    if (v === undefined) throw new LineError(w.col, `undefined variable "$${name}" (known: ${Object.keys(env).sort().join(', ') || 'none'})`);
    return v;
  });
}

function heloLine(line: string, pos: Position, warn: (col: number, message: string) => void): HeloPattern {
  const m = /^(\S+)[ \t]*(.*)$/.exec(line);
  const pattern = (m?.[1] ?? '').toLowerCase();
  let rest = m?.[2] ?? '';
  let col = line.length - rest.length + 1;
  let maxLoadAvg: number | undefined;
  const load = /^([0-9]+|\*)(?=[ \t]|$)[ \t]*/.exec(rest);
  if (load !== null) {
    if (load[1] !== '*') {
      const n = Number(load[1]);
      if (n < 2) warn(col, `load average limit ${n} raised to 2, ZMailer's minimum`);
      // ZMailer's own "no limit" is 999.
      maxLoadAvg = n >= 999 ? undefined : Math.max(2, n);
    }
    rest = rest.slice(load[0].length);
    col += load[0].length;
  }
  if (rest.startsWith('!')) {
    const message = rest.slice(1).trim();
    return { pos, pattern, ...(maxLoadAvg !== undefined ? { maxLoadAvg } : {}), action: { kind: 'refuse', ...(message !== '' ? { message } : {}) } };
  }
  const hash = rest.indexOf('#');
  const flagsText = hash < 0 ? rest : rest.slice(0, hash);
  const r = parseStyleFlags(flagsText);
  if (!r.ok) throw new LineError(col, `HELO pattern "${pattern}": ${r.error}`);
  const inert = [...r.flags].filter((f) => INERT_STYLE_FLAGS.has(f));
  if (inert.length > 0) warn(col, `style flag${inert.length > 1 ? 's' : ''} ${inert.join(', ')} ${inert.length > 1 ? 'have' : 'has'} no effect in Postern (see docs/policy.md)`);
  return { pos, pattern, ...(maxLoadAvg !== undefined ? { maxLoadAvg } : {}), action: { kind: 'style', flags: r.flags } };
}

function freeze(d: ConfDraft): ZmailerConf {
  const conf: ZmailerConf = {
    ...d,
    bindAddresses: Object.freeze(d.bindAddresses.map((b) => Object.freeze(b))),
    disabledExtensions: new FrozenSet<ZmailerExtension>(d.disabledExtensions),
    hdr220: Object.freeze([...d.hdr220]),
    help: Object.freeze([...d.help]),
    tarpit: Object.freeze({ ...d.tarpit }),
    received: Object.freeze({ ...d.received }),
    etrnCluster: Object.freeze(d.etrnCluster.map((n) => Object.freeze({ ...n }))),
    ...(d.policyDb !== undefined ? { policyDb: Object.freeze({ ...d.policyDb }) } : {}),
    ...(d.contentFilter !== undefined ? { contentFilter: Object.freeze({ ...d.contentFilter }) } : {}),
    auth: Object.freeze({ ...d.auth }),
    tls: Object.freeze({ ...d.tls }),
    heloPatterns: Object.freeze(d.heloPatterns.map((p) => Object.freeze(p))),
    given: Object.freeze([...d.given]),
  };
  return deepFreeze(conf);
}
