/*
 * smtp/queries.ts — the commands that leave the session as it is: HELP,
 * VRFY, EXPN (RFC 5321 §3.5), ETRN (RFC 1985), and the EHLO keyword list.
 *
 * Each takes what it reads (a QueryScope, which the Session is) and returns
 * a CommandResult; none changes the session's state.
 */
import { parseRcptToArg, formatMailbox, type Mailbox } from '../mail/address.js';
import type { ExtensionsOn } from '../mail/params.js';
import { reply } from '../mail/reply.js';
import type { SessionFacts, RcptDecision } from '../policy/policy.js';
import type { StyleFlag } from '../policy/zmailer/helo-patterns.js';
import type { CommandResult } from './commands.js';
import type { SessionEnv } from './session-env.js';

export interface QueryScope {
  readonly env: SessionEnv;
  readonly ext: ExtensionsOn;
  /** ZMailer style flags in force; undefined without a ZMailer file. */
  readonly style: ReadonlySet<StyleFlag> | undefined;
  facts(): SessionFacts;
}

export function help(s: QueryScope): CommandResult {
  const lines = s.env.config.smtp.help;
  return { reply: reply(214, '2.0.0', ...(lines.length > 0 ? lines : ['This is Postern. Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY EXPN ETRN', 'End of HELP info'])) };
}

/** VRFY, when enabled (`smtp vrfy`, ZMailer's VRFYcmd; with a ZMailer style only under flag "v"): would RCPT TO this address be accepted? */
export async function vrfy(s: QueryScope, arg: string): Promise<CommandResult> {
  if (arg.trim() === '') return { reply: reply(501, '5.5.4', 'Syntax: VRFY address') };
  if (!s.env.config.smtp.vrfy || (s.style !== undefined && !s.style.has('v'))) return { reply: reply(252, '2.1.5', 'Cannot VRFY user, but will accept message and attempt delivery') };
  const r = await lookUp(s, arg);
  if (!('d' in r)) return r;
  if (r.d.kind === 'reject') return { reply: r.d.verdict.reply };
  return { reply: reply(250, '2.1.5', `<${formatMailbox(r.mailbox)}>`) };
}

/** EXPN, when enabled (`smtp expn`, EXPNcmd) and the style has "e": where mail to this address goes (aliases expanded). */
export async function expn(s: QueryScope, arg: string): Promise<CommandResult> {
  if (!s.env.config.smtp.expn) return { reply: reply(502, '5.5.1', 'EXPN command not available') };
  if (arg.trim() === '') return { reply: reply(501, '5.5.4', 'Syntax: EXPN list') };
  if (s.style?.has('e') !== true) return { reply: reply(252, '2.1.5', 'Cannot EXPN, but will accept message and attempt delivery') };
  const r = await lookUp(s, arg);
  if (!('d' in r)) return r;
  if (r.d.kind === 'reject') return { reply: r.d.verdict.reply };
  const lines = r.d.targets.slice(0, 100).map((t) => `<${t.address}>`);
  return { reply: reply(250, '2.1.5', ...(lines.length > 0 ? lines : [`<${formatMailbox(r.mailbox)}>`])) };
}

/** What RCPT TO this address would decide, outside any transaction. */
async function lookUp(s: QueryScope, arg: string): Promise<CommandResult | { readonly mailbox: Mailbox; readonly d: RcptDecision }> {
  const text = arg.trim();
  const path = parseRcptToArg(`TO:${text.startsWith('<') ? text : `<${text}>`}`, { smtputf8: s.ext.smtputf8, strict: false });
  if (!path.ok || !path.mailbox) return { reply: reply(501, '5.1.3', 'Bad address syntax') };
  const d = await s.env.policy.rcpt(s.facts(), { sender: null, params: { smtputf8: false }, rcptCount: 0 }, path.mailbox);
  return { mailbox: path.mailbox, d };
}

/** ETRN: RFC 1985's "@domain" includes subdomains, "#name" is a queue name; the scheduler reads both. */
export async function etrn(s: QueryScope, arg: string): Promise<CommandResult> {
  const node = arg.trim();
  if (node.replace(/^[@#]/, '') === '' || /[\s\x00-\x1f\x7f]/.test(node)) return { reply: reply(501, '5.5.4', 'Syntax: ETRN domain') };
  return { reply: await s.env.scheduler.etrn(node.toLowerCase(), s.facts().clientAddress) };
}

/** The EHLO keywords, in the order Postern offers them. */
export function ehloKeywords(s: QueryScope, on: (ext: string) => boolean, offer: { readonly starttls: boolean; readonly auth?: readonly string[] }): string[] {
  const out: string[] = [];
  if (on('PIPELINING')) out.push('PIPELINING');
  if (s.ext.size) out.push(`SIZE ${s.env.config.smtp.maxMessageSize}`);
  if (s.ext.eightBitMime) out.push('8BITMIME');
  if (s.ext.smtputf8) out.push('SMTPUTF8');
  if (s.ext.dsn) out.push('DSN');
  if (on('ENHANCEDSTATUSCODES')) out.push('ENHANCEDSTATUSCODES');
  if (s.ext.chunking) out.push('CHUNKING');
  if (on('ETRN')) out.push('ETRN');
  if (offer.starttls) out.push('STARTTLS');
  if (offer.auth) out.push(`AUTH ${offer.auth.join(' ')}`);
  out.push('HELP');
  return out;
}
