/*
 * smtp/received.ts — the Received: trace header Postern prepends
 * (RFC 5321 §4.4, RFC 3848 protocol names, RFC 6531 §3.7.3 UTF8SMTP).
 *
 *   Received: from HELO (RDNS [IP])
 *   	by HOSTNAME (Postern) with ESMTPS id MSGID
 *   	for <RCPT>; DATE
 *
 * "for" is given only for a single recipient (no leak of Bcc lists). Every
 * value is cleaned so that nothing a client sends can break the header.
 * A listener with `mask-src` (OpenSMTPD's) leaves the "from" clause out —
 * the client's name and address — and starts at "by".
 */
import { rfc5322Date } from '../mail/date.js';

export interface ReceivedInfo {
  readonly helo?: string;
  readonly rdns?: string;
  readonly ip: string;
  readonly hostname: string;
  readonly proto: string;
  readonly msgid: string;
  readonly rcpt?: string;
  readonly tls?: string;
  readonly date: Date;
  /** `mask-src`: no "from" clause. */
  readonly maskSource?: boolean;
  /** The client's ident (RFC 1413) user, shown as ZMailer's rcvd-ident does. */
  readonly ident?: string;
  /** The whoson user of the client's address, shown as ZMailer's rcvd-whoson does. */
  readonly whoson?: string;
  /** The AUTH user, shown as ZMailer's rcvd-auth-user does. */
  readonly authUser?: string;
}

export function receivedHeader(r: ReceivedInfo): string {
  let h: string;
  if (r.maskSource === true) {
    h = `Received: by ${clean(r.hostname)} (Postern) with ${r.proto} id ${r.msgid}`;
    if (r.tls) h += `\r\n\t(${clean(r.tls)})`;
  } else {
    const ipText = r.ip.includes(':') ? `IPv6:${r.ip}` : r.ip;
    const ident = r.ident !== undefined ? ` ident: ${clean(r.ident)}` : '';
    const whoson = r.whoson !== undefined ? ` whoson: ${clean(r.whoson)}` : '';
    h = `Received: from ${clean(r.helo ?? 'unknown')} (${clean(r.rdns ?? 'unknown')} [${ipText}]${ident}${whoson})\r\n`;
    if (r.authUser !== undefined) h += `\t(smtp-auth: ${clean(r.authUser)})\r\n`;
    if (r.tls) h += `\t(${clean(r.tls)})\r\n`;
    h += `\tby ${clean(r.hostname)} (Postern) with ${r.proto} id ${r.msgid}`;
  }
  if (r.rcpt !== undefined) h += `\r\n\tfor <${clean(r.rcpt)}>`;
  h += `;\r\n\t${rfc5322Date(r.date)}\r\n`;
  return h;
}

/**
 * The Received: header of a message handed to the local enqueue socket
 * (sendmail): who submitted it, unless that listener has `mask-src`.
 */
export function localReceivedHeader(r: { readonly hostname: string; readonly uid: number; readonly msgid: string; readonly date: Date; readonly maskSource?: boolean }): string {
  const from = r.maskSource === true ? '' : `, from userid ${r.uid}`;
  return `Received: by ${clean(r.hostname)} (Postern${from})\r\n\tid ${r.msgid}; ${rfc5322Date(r.date)}\r\n`;
}

/** RFC 3848 / RFC 6531 protocol name for the "with" clause. */
export function protocolName(p: { esmtp: boolean; tls: boolean; auth: boolean; utf8: boolean }): string {
  if (!p.esmtp) return 'SMTP';
  const base = p.utf8 ? 'UTF8SMTP' : 'ESMTP';
  return `${base}${p.tls ? 'S' : ''}${p.auth ? 'A' : ''}`;
}


function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f()\\]/g, '?').slice(0, 255);
}
