/*
 * delivery/local/format.ts — OpenSMTPD's format specifiers (smtpd.conf(5),
 * "FORMAT SPECIFIERS") for maildir paths and mda commands.
 *
 *   %{sender} %{sender.user} %{sender.domain}     MAIL FROM ("" for <>)
 *   %{rcpt} %{rcpt.user} %{rcpt.domain}           RCPT TO as the client gave it
 *   %{dest} %{dest.user} %{dest.domain}           the address after expansion
 *   %{user.username} %{user.directory}            the delivery user and home
 *   %{mbox.from}                                  sender, or MAILER-DAEMON for <>
 *   %%                                            a "%"
 *   ~ or ~/ at the start of a maildir path        the user's home
 *
 * A token may take a substring, %{rcpt.user[0]} or %{rcpt[2:-1]} (offsets
 * inclusive, negative from the end) and modifiers after a colon,
 * %{rcpt.user:lowercase|strip}: lowercase, uppercase, strip (drop a
 * +extension) and raw (keep the characters below). As in OpenSMTPD, the
 * characters !#$%&'*\/?^`{|}~ of a value become ":" unless raw is given;
 * user.directory is taken as it is.
 *
 * Paths: a value from the envelope never contains "/", a control character
 * or a leading "." (an address such as "../../etc/passwd" is refused, not
 * rewritten), and the expanded path must stay inside the folder written
 * before the first such value ("/var/vmail/%{rcpt.domain}/…" stays in
 * /var/vmail).
 *
 * Commands: values are NEVER written into the command line (the shell would
 * parse them: OpenSMTPD's CVE-2020-7247). Each %{…} is replaced by a
 * reference to an environment variable, "$POSTERN_FORMAT_1" …, quoted for
 * where it stands (outside quotes, inside "…" or inside '…'), and the value
 * travels in that variable: the shell expands it as one word and never
 * parses it.
 */
import { isAbsolute, resolve } from 'node:path';
import { unsafeName } from './address.js';

export interface FormatContext {
  /** MAIL FROM, "" for the null sender. */
  readonly sender: string;
  /** RCPT TO as received (before expansion). */
  readonly rcpt: string;
  /** The recipient after expansion. */
  readonly dest: string;
  /** The delivery user. */
  readonly user: { readonly name: string; readonly home: string };
}

export type FormatError = { readonly ok: false; readonly error: string; /** true: the envelope's fault (5.1.3), else the configuration's (4.3.5). */ readonly unsafe: boolean };

const ESCAPED = /[!#$%&'*/?^`{|}~]/g;
const MAX_TOKEN = 128;

interface TokenValue {
  readonly value: string;
  /** Comes from the envelope (sanitized and checked), as opposed to the system. */
  readonly fromEnvelope: boolean;
}

function addressToken(addr: string, part: 'all' | 'user' | 'domain'): string {
  if (addr === '') return '';
  const at = addr.lastIndexOf('@');
  if (part === 'all') return addr;
  if (part === 'user') return at < 0 ? addr : addr.slice(0, at);
  return at < 0 ? '' : addr.slice(at + 1);
}

function baseValue(name: string, ctx: FormatContext): TokenValue | undefined {
  switch (name.toLowerCase()) {
    case 'sender':
      return { value: addressToken(ctx.sender, 'all'), fromEnvelope: true };
    case 'sender.user':
      return { value: addressToken(ctx.sender, 'user'), fromEnvelope: true };
    case 'sender.domain':
      return { value: addressToken(ctx.sender, 'domain'), fromEnvelope: true };
    case 'rcpt':
      return { value: ctx.rcpt, fromEnvelope: true };
    case 'rcpt.user':
      return { value: addressToken(ctx.rcpt, 'user'), fromEnvelope: true };
    case 'rcpt.domain':
      return { value: addressToken(ctx.rcpt, 'domain'), fromEnvelope: true };
    case 'dest':
      return { value: ctx.dest, fromEnvelope: true };
    case 'dest.user':
      return { value: addressToken(ctx.dest, 'user'), fromEnvelope: true };
    case 'dest.domain':
      return { value: addressToken(ctx.dest, 'domain'), fromEnvelope: true };
    case 'user.username':
      return { value: ctx.user.name, fromEnvelope: true };
    case 'user.directory':
      return { value: ctx.user.home, fromEnvelope: false };
    case 'mbox.from':
      return { value: ctx.sender === '' ? 'MAILER-DAEMON' : ctx.sender, fromEnvelope: true };
    default:
      return undefined;
  }
}

function stripExtension(v: string): string {
  const plus = v.indexOf('+');
  if (plus < 0) return v;
  const at = v.indexOf('@', plus);
  return v.slice(0, plus) + (at < 0 ? '' : v.slice(at));
}

/** The value of one token (the text between "%{" and "}"). */
export function expandToken(token: string, ctx: FormatContext): TokenValue | { readonly error: string } {
  if (token.length >= MAX_TOKEN) return { error: `format specifier too long` };
  let name = token;
  let mods: string | undefined;
  let range: [number, number] | undefined;
  const lb = token.indexOf('[');
  if (lb >= 0) {
    const rb = token.indexOf(']', lb);
    if (rb < 0 || rb - lb <= 1) return { error: `bad substring in %{${token}}` };
    name = token.slice(0, lb);
    const inner = token.slice(lb + 1, rb);
    const after = token.slice(rb + 1);
    if (after !== '' && !after.startsWith(':')) return { error: `bad format specifier %{${token}}` };
    if (after !== '') mods = after.slice(1);
    const m = /^(-?\d+)?(?::(-?\d+)?)?$/.exec(inner);
    if (!m || (m[1] === undefined && m[2] === undefined)) return { error: `bad substring in %{${token}}` };
    const hasColon = inner.includes(':');
    const b = m[1] === undefined ? 0 : Number(m[1]);
    const e = hasColon ? (m[2] === undefined ? Number.MAX_SAFE_INTEGER : Number(m[2])) : b;
    range = [b, e];
  } else {
    const colon = token.indexOf(':');
    if (colon >= 0) {
      name = token.slice(0, colon);
      mods = token.slice(colon + 1);
    }
  }
  const base = baseValue(name, ctx);
  if (!base) return { error: `unknown format specifier %{${token}}` };
  let value = base.value;
  let raw = false;
  if (mods !== undefined) {
    for (const mod of mods.split('|')) {
      switch (mod.toLowerCase()) {
        case 'lowercase':
          value = value.toLowerCase();
          break;
        case 'uppercase':
          value = value.toUpperCase();
          break;
        case 'strip':
          value = stripExtension(value);
          break;
        case 'raw':
          raw = true;
          break;
        default:
          return { error: `unknown modifier "${mod}" in %{${token}}` };
      }
    }
  }
  if (base.fromEnvelope && !raw) value = value.replace(ESCAPED, ':');
  if (range && value !== '') {
    const n = value.length;
    let [b, e] = range;
    if (b >= n) return { error: `substring out of range in %{${token}}` };
    if (e >= n) e = n - 1;
    if (b < 0) b += n;
    if (e < 0) e += n - 1;
    if (b < 0 || e < 0 || e < b) return { error: `substring out of range in %{${token}}` };
    value = value.slice(b, e + 1);
  }
  return { value, fromEnvelope: base.fromEnvelope };
}

type Piece = { readonly text: string; readonly fromEnvelope: boolean };

/** Split a template into literal text and token values. */
function pieces(template: string, ctx: FormatContext): Piece[] | { readonly error: string } {
  const out: Piece[] = [];
  let lit = '';
  for (let i = 0; i < template.length; ) {
    if (template.startsWith('%%', i)) {
      lit += '%';
      i += 2;
    } else if (template.startsWith('%{', i)) {
      const end = template.indexOf('}', i + 2);
      if (end < 0) return { error: `unterminated format specifier in "${template}"` };
      const v = expandToken(template.slice(i + 2, end), ctx);
      if ('error' in v) return v;
      if (lit !== '') out.push({ text: lit, fromEnvelope: false });
      lit = '';
      out.push({ text: v.value, fromEnvelope: v.fromEnvelope });
      i = end + 1;
    } else {
      lit += template[i];
      i++;
    }
  }
  if (lit !== '') out.push({ text: lit, fromEnvelope: false });
  return out;
}

/**
 * Expand a maildir path: `~` and format specifiers, relative paths taken
 * from the user's home. Refuses (unsafe: true) any envelope value that could
 * leave the mail root.
 */
export function expandPath(template: string, ctx: FormatContext): { readonly ok: true; readonly path: string; readonly root: string } | FormatError {
  let t = template;
  let home = '';
  if (t === '~' || t.startsWith('~/')) {
    home = ctx.user.home.replace(/\/+$/, '');
    t = t.slice(1);
  }
  const ps = pieces(t, ctx);
  if ('error' in ps) return { ok: false, error: ps.error, unsafe: false };
  let prefix = home;
  let seenData = false;
  let path = home;
  for (const p of ps) {
    if (p.fromEnvelope && p.text !== '') {
      const why = unsafeName(p.text);
      if (why !== undefined) return { ok: false, error: `unsafe value "${p.text}" in maildir path: ${why}`, unsafe: true };
      seenData = true;
    }
    path += p.text;
    if (!seenData) prefix += p.text;
  }
  const base = ctx.user.home === '' ? '/' : ctx.user.home;
  const full = isAbsolute(path) ? resolve(path) : resolve(base, path);
  const rootText = seenData ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : path;
  const root = isAbsolute(rootText) ? resolve(rootText) : resolve(base, rootText);
  if (full !== root && !full.startsWith(root === '/' ? '/' : `${root}/`)) {
    return { ok: false, error: `maildir path ${full} leaves ${root}`, unsafe: true };
  }
  return { ok: true, path: full, root };
}

/**
 * Turn an mda command with format specifiers into a command that reads the
 * values from environment variables, and those variables. Quote states are
 * tracked for '…', "…" and backslash escapes at the top level of the
 * command; whatever the state, a value reaches the shell only through a
 * variable, so it is never parsed as shell syntax.
 */
export function shellCommand(command: string, ctx: FormatContext): { readonly ok: true; readonly command: string; readonly env: Readonly<Record<string, string>> } | FormatError {
  const env: Record<string, string> = {};
  let n = 0;
  let out = '';
  let quote: 'none' | 'single' | 'double' = 'none';
  for (let i = 0; i < command.length; ) {
    const c = command[i] as string;
    if (command.startsWith('%%', i)) {
      out += '%';
      i += 2;
      continue;
    }
    if (command.startsWith('%{', i)) {
      const end = command.indexOf('}', i + 2);
      if (end < 0) return { ok: false, error: `unterminated format specifier in mda command`, unsafe: false };
      const v = expandToken(command.slice(i + 2, end), ctx);
      if ('error' in v) return { ok: false, error: v.error, unsafe: false };
      const name = `POSTERN_FORMAT_${++n}`;
      env[name] = v.value;
      out += quote === 'none' ? `"$${name}"` : quote === 'double' ? `\${${name}}` : `'"$${name}"'`;
      i = end + 1;
      continue;
    }
    if (quote === 'single') {
      if (c === "'") quote = 'none';
    } else if (c === '\\') {
      out += command.slice(i, i + 2);
      i += 2;
      continue;
    } else if (c === '"') {
      quote = quote === 'double' ? 'none' : 'double';
    } else if (c === "'" && quote === 'none') {
      quote = 'single';
    }
    out += c;
    i++;
  }
  return { ok: true, command: out, env };
}

/** The extension sub-folder name for a maildir, or why it is refused. */
export function extensionFolder(extension: string): { readonly ok: true; readonly folder: string } | FormatError {
  const v = extension.replace(ESCAPED, ':');
  const why = unsafeName(v);
  if (why !== undefined) return { ok: false, error: `unsafe address extension "${extension}": ${why}`, unsafe: true };
  return { ok: true, folder: `.${v}` };
}

