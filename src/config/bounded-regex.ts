/*
 * config/bounded-regex.ts — regular expressions from configuration files
 * (header_checks) that cannot hang the daemon.
 *
 * Node's RegExp backtracks: /^(a+)+$/ against 40 "a"s and a "!" runs for
 * years. Two bounds, chosen per pattern when the file is read:
 *
 * - "linear": V8's own linear-time engine can run the pattern (no
 *   backreferences or lookaround). V8 is told, once, to switch such a
 *   pattern to that engine after too many backtracks
 *   (--enable-experimental-regexp-engine-on-excessive-backtracks), so the
 *   usual fast backtracking engine runs normal input and a pathological
 *   input costs linear time. The linear engine knows no /i flag in the V8
 *   of Node 20–24, so a case-insensitive pattern is rewritten with
 *   both cases of each letter ([aA]) when that is simple to do.
 * - "guarded": anything else runs in a node:vm context with a time budget
 *   (runGuarded); past it the check fails (the caller answers 451 and logs
 *   it). A vm call costs ~0.1 ms, so this is only for patterns that need it.
 *
 * Chosen over the `re2` package (a native addon: its install downloads a
 * prebuilt binary or compiles RE2 and Abseil, neither fit for every
 * machine that runs `npm ci` here) — docs/architecture.md says so too.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let flagsSet = false;
function setEngineFlags(): void {
  if (flagsSet) return;
  flagsSet = true;
  v8.setFlagsFromString('--enable-experimental-regexp-engine');
  v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
}

export interface BoundedRegex {
  readonly regex: RegExp;
  /** true: safe to run directly; false: run through runGuarded(). */
  readonly linear: boolean;
}

/** Compile SOURCE with FLAGS ("i", "m", "s"); throws SyntaxError as RegExp does. */
export function compileBounded(source: string, flags: string): BoundedRegex {
  setEngineFlags();
  const regex = new RegExp(source, flags); // a syntax error is the caller's configuration error
  const rest = flags.replace('i', '');
  const candidates = flags.includes('i') ? [foldCase(source)] : [source];
  for (const c of candidates) {
    if (c === undefined) continue;
    try {
      new RegExp(c, `${rest}l`);
      return { regex: new RegExp(c, rest), linear: true };
    } catch {
      /* not linear: guarded */
    }
  }
  return { regex, linear: false };
}

/** /abc/i as /[aA][bB][cC]/ — undefined when the pattern has escapes or classes this does not handle. */
export function foldCase(source: string): string | undefined {
  let out = '';
  let i = 0;
  while (i < source.length) {
    const ch = source[i]!;
    if (ch === '\\') {
      const next = source[i + 1];
      if (next === undefined || /[pPkuxc0-9]/.test(next)) return undefined;
      out += ch + next;
      i += 2;
      continue;
    }
    if (ch === '[') {
      const end = classEnd(source, i);
      if (end < 0) return undefined;
      const folded = foldClass(source.slice(i + 1, end));
      if (folded === undefined) return undefined;
      out += `[${folded}]`;
      i = end + 1;
      continue;
    }
    if (ch === '(' && source[i + 1] === '?' && source[i + 2] === '<' && source[i + 3] !== '=' && source[i + 3] !== '!') return undefined;
    out += /[a-z]/i.test(ch) && ch.toLowerCase() !== ch.toUpperCase() ? `[${ch.toLowerCase()}${ch.toUpperCase()}]` : ch;
    i++;
  }
  return out;
}

function classEnd(s: string, start: number): number {
  for (let i = start + 1; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === ']' && i > start + 1 + (s[start + 1] === '^' ? 1 : 0)) return i;
  }
  return -1;
}

function foldClass(body: string): string | undefined {
  let out = body;
  const extra: string[] = [];
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === '\\') {
      if (/[pPkux]/.test(body[i + 1] ?? '')) return undefined;
      i++;
      continue;
    }
    const isRange = body[i + 1] === '-' && body[i + 2] !== undefined && body[i + 2] !== ']';
    if (isRange) {
      const hi = body[i + 2]!;
      if (/[a-z]/.test(ch) && /[a-z]/.test(hi)) extra.push(`${ch.toUpperCase()}-${hi.toUpperCase()}`);
      else if (/[A-Z]/.test(ch) && /[A-Z]/.test(hi)) extra.push(`${ch.toLowerCase()}-${hi.toLowerCase()}`);
      else if (/[a-zA-Z]/.test(ch) || /[a-zA-Z]/.test(hi)) return undefined;
      i += 2;
      continue;
    }
    if (/[a-zA-Z]/.test(ch)) extra.push(ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase());
  }
  if (out.endsWith('-')) out = out.slice(0, -1) + extra.join('') + '-';
  else out += extra.join('');
  return out;
}

const guardScript = new vm.Script('(() => { const out = []; for (const l of lines) out.push(re.map((r) => r.test(l))); return out; })()');

/** Test each of REGEXES against each of LINES within BUDGETMS: a matrix of results, or undefined when the budget ran out. */
export function runGuarded(regexes: readonly RegExp[], lines: readonly string[], budgetMs: number): boolean[][] | undefined {
  const ctx = vm.createContext({ re: regexes, lines });
  try {
    return guardScript.runInContext(ctx, { timeout: budgetMs }) as boolean[][];
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return undefined;
    throw e;
  }
}
