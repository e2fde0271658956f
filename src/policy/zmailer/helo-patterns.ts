/*
 * policy/zmailer/helo-patterns.ts — matching a client's HELO/EHLO argument
 * against smtpserver.conf's HELO patterns (read by
 * config/zmailer/helo-patterns.ts, where the pattern lines and the style
 * flags are described).
 *
 * The glob is shell-style (*, ?, [a-z], [!a-z], \ escapes), matched
 * case-insensitively; the first matching line is used.
 */
import type { HeloPattern } from '../../config/zmailer/helo-patterns.js';

/** For smtp/session.ts, which still names the style flags from here. */
export type { StyleFlag } from '../../config/zmailer/helo-patterns.js';

/** The first pattern matching the HELO/EHLO argument. */
export function findHeloPattern(patterns: readonly HeloPattern[], helo: string): HeloPattern | undefined {
  const h = helo.toLowerCase();
  return patterns.find((p) => shellGlob(p.pattern, h));
}

/**
 * Shell-style glob over the whole text: "*" any run, "?" one character,
 * "[...]" a class ("!" or "^" negates, "a-z" ranges), "\x" the character x.
 * Iterative with one backtrack point, so no pattern takes exponential time.
 */
export function shellGlob(pattern: string, text: string): boolean {
  const p = [...pattern];
  const s = [...text];
  let pi = 0;
  let si = 0;
  let starP = -1;
  let starS = 0;
  while (si < s.length) {
    const c = p[pi];
    if (c === '*') {
      starP = ++pi;
      starS = si;
      continue;
    }
    if (c !== undefined) {
      const step = matchOne(p, pi, s[si] as string);
      if (step > 0) {
        pi += step;
        si++;
        continue;
      }
    }
    if (starP < 0) return false;
    pi = starP;
    si = ++starS;
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

/** Does the pattern element at p[i] match ch? Returns its length in p, or 0. */
function matchOne(p: readonly string[], i: number, ch: string): number {
  const c = p[i] as string;
  if (c === '?') return 1;
  if (c === '\\' && i + 1 < p.length) return p[i + 1] === ch ? 2 : 0;
  if (c !== '[') return c === ch ? 1 : 0;
  let j = i + 1;
  let negate = false;
  if (p[j] === '!' || p[j] === '^') {
    negate = true;
    j++;
  }
  let found = false;
  let first = true;
  while (j < p.length && (p[j] !== ']' || first)) {
    first = false;
    let lo = p[j] as string;
    if (lo === '\\' && j + 1 < p.length) lo = p[++j] as string;
    if (p[j + 1] === '-' && j + 2 < p.length && p[j + 2] !== ']') {
      let hi = p[j + 2] as string;
      let end = j + 2;
      if (hi === '\\' && j + 3 < p.length) hi = p[(end = j + 3)] as string;
      if (lo <= ch && ch <= hi) found = true;
      j = end + 1;
    } else {
      if (lo === ch) found = true;
      j++;
    }
  }
  if (j >= p.length) return c === ch ? 1 : 0; // no closing "]": a literal "["
  return found !== negate ? j - i + 1 : 0;
}
