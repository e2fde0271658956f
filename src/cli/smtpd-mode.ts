/*
 * cli/smtpd-mode.ts — which smtpd a command line means: OpenSMTPD's (the
 * default) or Obtuse's (seed 001: `smtpd -c /home/smtpd -d /spool -u daemon
 * -g daemon -D [-L]`). Pure: argv in, a decision out.
 *
 * The rule (docs/moving-from-obtuse.md): **-c HOME selects Obtuse smtpd.**
 * -c, -u, -g and -L exist only in Obtuse's smtpd; -d and -D exist in both
 * with other meanings (OpenSMTPD: -d foreground, -D name=value a macro;
 * Obtuse: -d SPOOL the spool below the home, -D run as a daemon), so they
 * are read as Obtuse's only when -c is given. A command line that mixes
 * the two (an Obtuse letter without -c, an OpenSMTPD-only letter with -c)
 * is refused with one line naming the letter.
 *
 * Postern adds two options to the Obtuse form, for addresses and ports
 * other than *:25: -l ADDRESS and -p PORT.
 */
import { getopt } from './getopt.js';

const OPENSMTPD_SPEC = 'dFhnvb:D:f:T:P:';
const OBTUSE_SPEC = 'c:d:u:g:DLl:p:';
const OBTUSE_ONLY = new Set(['c', 'u', 'g', 'L', 'l', 'p']);
const OPENSMTPD_ONLY = new Set(['F', 'h', 'n', 'v', 'b', 'f', 'T', 'P']);

export const OBTUSE_USAGE = 'usage: smtpd -c home [-d spool] [-u user] [-g group] -D [-L] [-l address] [-p port]';

/** What Obtuse's smtpd was told (defaults: Obtuse's Makefile in seed 001). */
export interface ObtuseSmtpdOptions {
  /** -c: the home the receiver is confined to (absolute). */
  readonly home: string;
  /** -d: the spool, a path inside the home ("/spool"). */
  readonly spool: string;
  /** -u, -g: who the receiver runs as once the port is bound. */
  readonly user: string;
  readonly group: string;
  /** -L: accepted; Postern's receiver logs to standard error either way. */
  readonly noOpenlog: boolean;
  /** -l, -p (Postern's): where to listen; default every address, port 25. */
  readonly address: string;
  readonly port: number;
}

export type SmtpdMode = { readonly kind: 'opensmtpd' } | { readonly kind: 'obtuse'; readonly options: ObtuseSmtpdOptions } | { readonly kind: 'error'; readonly message: string };

/** Decide which smtpd `argv` asks for; an error is one line without the "smtpd: " prefix. */
export function chooseSmtpdMode(argv: readonly string[]): SmtpdMode {
  const open = getopt(argv, OPENSMTPD_SPEC);
  const obtuse = getopt(argv, OBTUSE_SPEC);
  const obtuseLetter = 'error' in obtuse ? undefined : [...OBTUSE_ONLY].find((c) => obtuse.values.has(c) || obtuse.flags.has(c));
  // OpenSMTPD's getopt stops at the first operand: `-d /spool -u daemon` parses, with "/spool" left over.
  if (!('error' in open) && (open.operands.length === 0 || obtuseLetter === undefined)) return { kind: 'opensmtpd' };
  if ('error' in obtuse) {
    const letter = obtuse.error.slice(-1);
    const usedObtuse = 'error' in open && [...OBTUSE_ONLY].some((c) => open.error.endsWith(` -- ${c}`));
    if (usedObtuse && OPENSMTPD_ONLY.has(letter)) return { kind: 'error', message: `-${letter} is an option of OpenSMTPD's smtpd and cannot be mixed with Obtuse smtpd's options (${OBTUSE_USAGE})` };
    // No Obtuse option: OpenSMTPD's smtpd reports its own error (with its usage).
    if (!usedObtuse) return { kind: 'opensmtpd' };
    return { kind: 'error', message: `${obtuse.error} (${OBTUSE_USAGE})` };
  }
  if (!obtuse.values.has('c')) {
    // The letter OpenSMTPD's smtpd does not know (getopt failed on it), else the first of Obtuse's given.
    const given = 'error' in open ? open.error.slice(-1) : (obtuseLetter ?? '?');
    return { kind: 'error', message: `-${given} is an option of Obtuse's smtpd, which needs -c HOME (${OBTUSE_USAGE})` };
  }
  if (obtuse.operands.length > 0) return { kind: 'error', message: `unexpected argument "${obtuse.operands[0]}" (${OBTUSE_USAGE})` };
  const last = (c: string, d: string): string => obtuse.values.get(c)?.at(-1) ?? d;
  const home = last('c', '');
  if (!home.startsWith('/')) return { kind: 'error', message: `-c ${home}: the home must be an absolute path` };
  const spool = last('d', '/spool');
  if (!spool.startsWith('/') || spool.split('/').includes('..')) return { kind: 'error', message: `-d ${spool}: the spool is a path inside the home, starting with "/" (as -d /spool)` };
  if (!obtuse.flags.has('D')) return { kind: 'error', message: `without -D Obtuse's smtpd serves one SMTP session from inetd on standard input; Postern's Obtuse mode runs as a daemon only: add -D` };
  const portText = last('p', '25');
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 0 && port <= 65535)) return { kind: 'error', message: `-p ${portText}: not a port number` };
  for (const c of ['u', 'g'] as const) {
    const v = last(c, 'daemon');
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(v)) return { kind: 'error', message: `-${c} ${v}: not a ${c === 'u' ? 'user' : 'group'} name or number` };
  }
  return {
    kind: 'obtuse',
    options: { home, spool, user: last('u', 'daemon'), group: last('g', 'daemon'), noOpenlog: obtuse.flags.has('L'), address: last('l', '0.0.0.0'), port },
  };
}
