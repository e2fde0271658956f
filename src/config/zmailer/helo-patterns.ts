/*
 * config/zmailer/helo-patterns.ts — ZMailer's HELO-pattern lines and the
 * style flags of `smtpserver -s` (seed 000), as read; matching them against
 * a client's HELO is policy/zmailer/helo-patterns.ts.
 *
 *   <glob> [maxloadavg] <style flags>
 *   <glob> [maxloadavg] !message
 *
 * The glob is shell-style (*, ?, [a-z], [!a-z], \ escapes) and is matched
 * case-insensitively against the HELO/EHLO argument; the first matching
 * line is used. "!message" refuses the greeting with that message (501
 * 5.7.1, as ZMailer); flags set the style of the session. The optional
 * load average (at least 2, as ZMailer clamps it) refuses the greeting
 * with 421 4.3.2 when the system is busier than that; a "*" in its place
 * (the form of ZMailer's later example file) means no limit.
 *
 * Style flags (ZMailer's meaning; what Postern does with them is in
 * docs/policy.md):
 *   f  check MAIL FROM addresses      F  do not check MAIL FROM
 *   t  check RCPT TO addresses        T  do not check RCPT TO
 *   v  check the VRFY argument        e  check the EXPN argument
 *   R  require local@domain addresses (strict RFC 821; <postmaster> excepted)
 *   S  sloppy: accept MAIL FROM:user@domain without brackets, extra spaces,
 *      no HELO
 *   h  check the HELO argument        D  keep partial messages (debugging)
 *   -  no flags
 * The default style is "ve". `-s strict` / `-s sloppy` are protocol modes,
 * not flags.
 */
import { FrozenSet } from '../freeze.js';
import type { Position } from '../model.js';

export type StyleFlag = 'f' | 't' | 'v' | 'e' | 'R' | 'S' | 'h' | 'D' | 'F' | 'T';

export const STYLE_FLAGS: readonly StyleFlag[] = ['f', 't', 'v', 'e', 'R', 'S', 'h', 'D', 'F', 'T'];

/** ZMailer's default style when no HELO pattern matched and no -s was given. */
export const DEFAULT_STYLE: ReadonlySet<StyleFlag> = new FrozenSet<StyleFlag>(['v', 'e']);

/** Flags Postern parses but that change nothing (ZMailer's router, debugging); reported as warnings. */
export const INERT_STYLE_FLAGS: ReadonlySet<StyleFlag> = new FrozenSet<StyleFlag>(['f', 'F', 't', 'T', 'h', 'D']);

export type StyleResult = { readonly ok: true; readonly flags: ReadonlySet<StyleFlag> } | { readonly ok: false; readonly error: string };

/** Parse a flag string such as "veR" ("-" or "" = none). Spaces are ignored. */
export function parseStyleFlags(s: string): StyleResult {
  const flags = new Set<StyleFlag>();
  const text = s.trim();
  if (text === '-' || text === '') return { ok: true, flags: freezeSet(flags) };
  for (const ch of text) {
    if (ch === ' ' || ch === '\t') continue;
    if (!(STYLE_FLAGS as readonly string[]).includes(ch)) {
      return { ok: false, error: `unknown style flag "${ch}" (expected some of ${STYLE_FLAGS.join('')}, or "-" for none)` };
    }
    flags.add(ch as StyleFlag);
  }
  return { ok: true, flags: freezeSet(flags) };
}

/** The argument of `smtpserver -s`: "strict", "sloppy" or style flags. */
export type StyleOption =
  | { readonly kind: 'strict' }
  | { readonly kind: 'sloppy' }
  | { readonly kind: 'flags'; readonly flags: ReadonlySet<StyleFlag> };

export function parseStyleOption(arg: string): StyleOption | { readonly kind: 'error'; readonly error: string } {
  if (arg === 'strict') return { kind: 'strict' };
  if (arg === 'sloppy') return { kind: 'sloppy' };
  const r = parseStyleFlags(arg);
  return r.ok ? { kind: 'flags', flags: r.flags } : { kind: 'error', error: r.error };
}

export type HeloAction =
  | { readonly kind: 'style'; readonly flags: ReadonlySet<StyleFlag> }
  | { readonly kind: 'refuse'; readonly message?: string };

export interface HeloPattern {
  readonly pos: Position;
  /** The glob, lowercased as ZMailer does. */
  readonly pattern: string;
  /** Refuse greetings when the load average is above this; undefined = no limit. */
  readonly maxLoadAvg?: number;
  readonly action: HeloAction;
}

function freezeSet<T>(s: Set<T>): ReadonlySet<T> {
  return Object.freeze(new FrozenSet(s));
}
