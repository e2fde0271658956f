/*
 * mta/commands.ts — the MAIL FROM and RCPT TO lines the client sends.
 *
 * Parameters are given only when the server offered their extension:
 *   MAIL: SIZE=n (RFC 1870), BODY=8BITMIME|BINARYMIME (RFC 6152, 3030),
 *         SMTPUTF8 (RFC 6531), RET= and ENVID= (RFC 3461, ENVID as xtext)
 *   RCPT: NOTIFY= and ORCPT= (RFC 3461; ORCPT "type;xtext", RFC 6533's
 *         utf-8-addr-xtext for the utf-8 type)
 * Addresses come from the spool in canonical form ("local@domain", the
 * local part quoted when needed). A line is never built from a value with
 * a control character in it: such a value can only come from a damaged
 * spool and is refused (the caller fails that recipient permanently).
 */
import { encodeUtf8AddrXtext, encodeXtext } from '../mail/xtext.js';
import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import { has, type Capabilities } from './ehlo.js';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

export function safeValue(s: string): boolean {
  return !CONTROL.test(s);
}

export interface MailOptions {
  /** The reverse path to send ("" for <>), after `mail-from` / `as` rewriting. */
  readonly sender: string;
}

export function mailCommand(env: Envelope, caps: Capabilities, opts: MailOptions): string {
  let line = `MAIL FROM:<${opts.sender}>`;
  if (has(caps, 'SIZE') && env.size > 0) line += ` SIZE=${env.size}`;
  if (env.body === 'BINARYMIME') line += ' BODY=BINARYMIME';
  else if (env.body === '8BITMIME' && has(caps, '8BITMIME')) line += ' BODY=8BITMIME';
  if (env.smtputf8 && has(caps, 'SMTPUTF8')) line += ' SMTPUTF8';
  if (has(caps, 'DSN')) {
    if (env.ret !== undefined) line += ` RET=${env.ret}`;
    if (env.envid !== undefined && env.envid !== '') line += ` ENVID=${encodeXtext(env.envid)}`;
  }
  return line;
}

export function rcptCommand(rcpt: EnvelopeRecipient, caps: Capabilities): string {
  let line = `RCPT TO:<${rcpt.address}>`;
  if (has(caps, 'DSN')) {
    if (rcpt.notify === 'NEVER') line += ' NOTIFY=NEVER';
    else if (rcpt.notify !== undefined && rcpt.notify.length > 0) line += ` NOTIFY=${rcpt.notify.join(',')}`;
    const orcpt = orcptParam(rcpt.orcpt);
    if (orcpt !== undefined) line += ` ORCPT=${orcpt}`;
  }
  return line;
}

/** "rfc822;user@example.org" → "rfc822;user@example.org" xtext-encoded; undefined when unusable. */
export function orcptParam(orcpt: string | undefined): string | undefined {
  if (orcpt === undefined) return undefined;
  const semi = orcpt.indexOf(';');
  if (semi <= 0) return undefined;
  const type = orcpt.slice(0, semi);
  const addr = orcpt.slice(semi + 1);
  if (!/^[A-Za-z0-9-]+$/.test(type) || addr === '') return undefined;
  return type.toLowerCase() === 'utf-8' ? `${type};${encodeUtf8AddrXtext(addr)}` : `${type};${encodeXtext(addr)}`;
}

/** Did the sender ask for a success DSN that the next hop cannot give (RFC 3461 §5.2.2.2 "relayed")? */
export function wantsRelayedDsn(rcpt: EnvelopeRecipient, caps: Capabilities): boolean {
  return !has(caps, 'DSN') && Array.isArray(rcpt.notify) && rcpt.notify.includes('SUCCESS');
}

/**
 * The sender after `mail-from ADDR` (modern) / `as ADDR` (legacy):
 * "user@domain" replaces it; "@domain" keeps the local part and replaces
 * the domain; "user" or "user@" keeps the domain and replaces the local
 * part. The null sender <> is never rewritten: bounces stay bounces.
 */
export function rewriteSender(sender: string, mailFrom: string | undefined): string {
  if (mailFrom === undefined || sender === '') return sender;
  const at = mailFrom.lastIndexOf('@');
  const sAt = sender.lastIndexOf('@');
  const sLocal = sAt >= 0 ? sender.slice(0, sAt) : sender;
  const sDomain = sAt >= 0 ? sender.slice(sAt + 1) : '';
  if (at < 0) return sDomain === '' ? mailFrom : `${mailFrom}@${sDomain}`;
  const local = mailFrom.slice(0, at);
  const domain = mailFrom.slice(at + 1);
  if (local === '') return `${sLocal}@${domain}`;
  if (domain === '') return sDomain === '' ? local : `${local}@${sDomain}`;
  return mailFrom;
}
