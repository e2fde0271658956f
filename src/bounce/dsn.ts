/*
 * bounce/dsn.ts — the delivery status notification message (RFC 3464),
 * built as bytes by a pure function.
 *
 *   From: Mail Delivery System <MAILER-DAEMON@HOST>
 *   To: <SENDER>
 *   Subject: Undelivered Mail Returned to Sender | Delivery Status Notification (Delay|Success)
 *   Auto-Submitted: auto-replied                      (RFC 3834 §5)
 *   Content-Type: multipart/report; report-type=delivery-status; boundary=…   (RFC 6522)
 *
 *   1. text/plain: what happened, one line per recipient, for people
 *   2. message/delivery-status (RFC 3464 §2): per-message fields
 *      (Reporting-MTA, X-Postern-Queue-ID, Original-Envelope-Id, Arrival-Date),
 *      then a block per recipient (Original-Recipient, Final-Recipient,
 *      Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date,
 *      Will-Retry-Until)
 *   3. the original: message/rfc822 (whole) or text/rfc822-headers (header
 *      section), copied byte for byte
 *
 * Internationalised mail (RFC 6533): when the original came with SMTPUTF8
 * and its returned header section or an address is not ASCII, parts 2 and 3
 * become message/global-delivery-status and message/global or
 * message/global-headers, non-ASCII addresses are typed "utf-8", and the
 * report must itself travel with SMTPUTF8 (DsnMessage.utf8).
 *
 * Every value that came from outside (addresses, agent details, remote
 * replies, ENVID) is stripped of control characters, so none can end a
 * field or start a new one; long fields are folded at spaces.
 */
import { createHash } from 'node:crypto';
import { rfc5322Date } from '../mail/date.js';
import type { DsnKind } from './rules.js';

export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

export interface DsnRecipient {
  /** The address the report is about (RFC 3464 Final-Recipient). */
  readonly address: string;
  /** ORCPT as stored: "addr-type;address", decoded. */
  readonly orcpt?: string;
  /** The RCPT TO address it was expanded from, for the human-readable part. */
  readonly original?: string;
  readonly action: DsnAction;
  /** RFC 3463 status "5.1.1". */
  readonly status: string;
  /** "dns; mx.example.org" */
  readonly remoteMta?: string;
  /** "smtp; 550 5.1.1 <bob@example.org>: no such user" */
  readonly diagnostic?: string;
  /** One line for people: what went wrong or what happened. */
  readonly detail?: string;
  readonly lastAttempt?: number;
  /** For delays: when Postern gives up. */
  readonly willRetryUntil?: number;
}

export interface DsnInput {
  /** Our name: Reporting-MTA and the MAILER-DAEMON address. */
  readonly hostname: string;
  readonly kind: DsnKind;
  /** The original message. */
  readonly original: {
    readonly msgid: string;
    readonly sender: string;
    readonly envid?: string;
    readonly arrival: number;
    readonly smtputf8: boolean;
  };
  readonly recipients: readonly DsnRecipient[];
  /** What to return of the original: the whole message, or its header section; none if unreadable. */
  readonly returned?: { readonly bytes: Buffer; readonly whole: boolean };
  /** Report date, ms since the epoch. */
  readonly date: number;
  /** Message-ID of the report, without angle brackets. */
  readonly messageId: string;
}

export interface DsnMessage {
  readonly bytes: Buffer;
  /** Needs SMTPUTF8 (RFC 6531) to travel. */
  readonly utf8: boolean;
  /** Has 8-bit content: BODY=8BITMIME. */
  readonly eightBit: boolean;
}

const CRLF = '\r\n';

const SUBJECT: Record<DsnKind, string> = {
  failure: 'Undelivered Mail Returned to Sender',
  delay: 'Delivery Status Notification (Delay)',
  success: 'Delivery Status Notification (Success)',
};

export function buildDsn(input: DsnInput): DsnMessage {
  const { hostname, kind, original: orig } = input;
  const host = clean(hostname);
  const returned = input.returned;
  const nonAscii =
    !isAscii(orig.sender) ||
    input.recipients.some((r) => !isAscii(r.address) || !isAscii(r.orcpt ?? '') || !isAscii(r.original ?? '')) ||
    (returned !== undefined && hasHighBytes(returned.whole ? headerSection(returned.bytes) : returned.bytes));
  const utf8 = orig.smtputf8 && nonAscii;

  const human = humanPart(input);
  const status = statusPart(input, utf8);
  const parts: { headers: string[]; body: Buffer }[] = [
    {
      headers: [`Content-Type: text/plain; charset=${isAscii(human) ? 'us-ascii' : 'utf-8'}`, 'Content-Description: Notification', `Content-Transfer-Encoding: ${isAscii(human) ? '7bit' : '8bit'}`],
      body: Buffer.from(human, 'utf8'),
    },
    {
      headers: [
        `Content-Type: ${utf8 ? 'message/global-delivery-status' : 'message/delivery-status'}`,
        'Content-Description: Delivery report',
        `Content-Transfer-Encoding: ${isAscii(status) ? '7bit' : '8bit'}`,
      ],
      body: Buffer.from(status, 'utf8'),
    },
  ];
  if (returned !== undefined) {
    const type = returned.whole ? (utf8 ? 'message/global' : 'message/rfc822') : utf8 ? 'message/global-headers' : 'text/rfc822-headers';
    const what = kind === 'failure' ? 'Undelivered message' : 'Message';
    parts.push({
      headers: [`Content-Type: ${type}`, `Content-Description: ${what}${returned.whole ? '' : ' headers'}`, `Content-Transfer-Encoding: ${hasHighBytes(returned.bytes) ? '8bit' : '7bit'}`],
      body: returned.bytes,
    });
  }

  const boundary = pickBoundary(input, parts.map((p) => p.body));
  const top = [
    `From: Mail Delivery System <MAILER-DAEMON@${host}>`,
    `To: <${clean(orig.sender)}>`,
    `Subject: ${SUBJECT[kind]}`,
    `Date: ${rfc5322Date(new Date(input.date))}`,
    `Message-ID: <${clean(input.messageId)}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;${CRLF}\tboundary="${boundary}"`,
  ];
  const chunks: Buffer[] = [Buffer.from(top.join(CRLF) + CRLF + CRLF + 'This is a MIME-encapsulated message.' + CRLF, 'utf8')];
  for (const p of parts) {
    chunks.push(Buffer.from(`${CRLF}--${boundary}${CRLF}${p.headers.join(CRLF)}${CRLF}${CRLF}`, 'utf8'));
    chunks.push(p.body);
  }
  chunks.push(Buffer.from(`${CRLF}--${boundary}--${CRLF}`, 'ascii'));
  const bytes = Buffer.concat(chunks);
  return { bytes, utf8, eightBit: hasHighBytes(bytes) };
}

/* ------------------------------------------------------- the human part */

function humanPart(input: DsnInput): string {
  const host = clean(input.hostname);
  const out: string[] = [`This is the mail system at ${host}.`, ''];
  const rcpts = input.recipients;
  switch (input.kind) {
    case 'failure':
      out.push('Your message could not be delivered to the recipients listed below.');
      if (input.returned !== undefined) out.push(input.returned.whole ? 'It is attached to this report.' : 'Its header section is attached to this report.');
      break;
    case 'delay': {
      const until = Math.max(...rcpts.map((r) => r.willRetryUntil ?? 0));
      out.push('Your message has not been delivered yet to the recipients listed below.');
      if (until > 0) out.push(`Delivery will be tried again until ${rfc5322Date(new Date(until))};`);
      out.push('you will be told if it fails. There is no need to send it again.');
      break;
    }
    case 'success':
      out.push('Your message was delivered to the recipients listed below, or passed on');
      out.push('to a mail system that sends no delivery notices of its own.');
      break;
  }
  out.push('');
  for (const r of rcpts) {
    const from = r.original !== undefined && r.original !== r.address ? ` (expanded from <${clean(r.original)}>)` : '';
    const what = r.detail !== undefined && r.detail !== '' ? clean(r.detail) : r.diagnostic !== undefined ? clean(r.diagnostic) : '';
    const verb: Record<DsnAction, string> = { failed: 'failed', delayed: 'delayed', delivered: 'delivered', relayed: 'relayed', expanded: 'expanded' };
    out.push(`<${clean(r.address)}>${from}: ${verb[r.action]}, ${r.status}${what === '' ? '' : `: ${what}`}`);
  }
  return out.join(CRLF) + CRLF;
}

/* ------------------------------------------- message/delivery-status */

function statusPart(input: DsnInput, utf8: boolean): string {
  const orig = input.original;
  const fields: string[] = [`Reporting-MTA: dns; ${clean(input.hostname)}`, `X-Postern-Queue-ID: ${clean(orig.msgid)}`];
  if (orig.envid !== undefined) fields.push(`Original-Envelope-Id: ${clean(orig.envid)}`);
  fields.push(`Arrival-Date: ${rfc5322Date(new Date(orig.arrival))}`);
  const blocks = [fields];
  for (const r of input.recipients) {
    const b: string[] = [];
    if (r.orcpt !== undefined) {
      const semi = r.orcpt.indexOf(';');
      b.push(`Original-Recipient: ${clean(r.orcpt.slice(0, semi))};${clean(r.orcpt.slice(semi + 1))}`);
    }
    b.push(`Final-Recipient: ${addrType(r.address, utf8)};${clean(r.address)}`);
    b.push(`Action: ${r.action}`);
    b.push(`Status: ${statusCode(r)}`);
    if (r.remoteMta !== undefined) b.push(`Remote-MTA: ${clean(r.remoteMta)}`);
    const diag = r.diagnostic ?? (r.detail !== undefined && (r.action === 'failed' || r.action === 'delayed') ? `X-Postern; ${r.detail}` : undefined);
    if (diag !== undefined) b.push(`Diagnostic-Code: ${clean(diag)}`);
    if (r.lastAttempt !== undefined) b.push(`Last-Attempt-Date: ${rfc5322Date(new Date(r.lastAttempt))}`);
    if (r.action === 'delayed' && r.willRetryUntil !== undefined) b.push(`Will-Retry-Until: ${rfc5322Date(new Date(r.willRetryUntil))}`);
    blocks.push(b);
  }
  return blocks.map((b) => b.map(fold).join(CRLF) + CRLF).join(CRLF);
}

/** RFC 6533 §3: "utf-8" for an address that is not ASCII (only in a global report). */
function addrType(address: string, utf8: boolean): string {
  return utf8 && !isAscii(address) ? 'utf-8' : 'rfc822';
}

/** The status, checked (RFC 3463 class.subject.detail) and matching the action's class. */
function statusCode(r: DsnRecipient): string {
  const cls = r.action === 'failed' ? ['5', '4'] : r.action === 'delayed' ? ['4'] : ['2'];
  const m = /^([245])\.\d{1,3}\.\d{1,3}$/.exec(r.status);
  if (m && cls.includes(m[1] as string)) return r.status;
  return `${cls[0]}.0.0`;
}

/* -------------------------------------------------------------- helpers */

/** Fold a header-like field at spaces so lines stay near 78 characters (RFC 5322 §2.2.3). */
function fold(line: string): string {
  if (line.length <= 78) return line;
  const words = line.split(' ');
  const out: string[] = [];
  let cur = words[0] as string;
  for (const w of words.slice(1)) {
    if (cur.length + 1 + w.length > 78 && cur.trim() !== '') {
      out.push(cur);
      cur = ` ${w}`;
    } else {
      cur += ` ${w}`;
    }
  }
  out.push(cur);
  return out.join(CRLF);
}

/** A boundary that appears in none of the parts. */
function pickBoundary(input: DsnInput, bodies: readonly Buffer[]): string {
  for (let i = 0; ; i++) {
    const h = createHash('sha256').update(`${input.messageId}\0${input.date}\0${i}`);
    for (const b of bodies) h.update(b);
    const boundary = `=_postern_${h.digest('hex').slice(0, 24)}`;
    if (!bodies.some((b) => b.includes(`--${boundary}`))) return boundary;
  }
}

/** The header section of a message: up to and including the CRLF before the empty line. */
export function headerSection(message: Buffer): Buffer {
  if (message.subarray(0, 2).toString('latin1') === CRLF) return message.subarray(0, 0);
  const end = message.indexOf('\r\n\r\n');
  return end < 0 ? message : message.subarray(0, end + 2);
}

function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
}

function isAscii(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(s);
}

function hasHighBytes(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if ((b[i] as number) >= 0x80) return true;
  return false;
}
