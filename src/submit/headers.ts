/*
 * submit/headers.ts — the header section of a locally submitted message:
 * find fields, pull recipients out of To/Cc/Bcc (sendmail -t), drop Bcc,
 * and add what a local submission lacks (Date:, Message-ID:, From:) as
 * RFC 5322 §3.6 requires and RFC 6409 §8 lets a submission server do.
 */
import emailAddresses from 'email-addresses';
import { randomBytes } from 'node:crypto';
import { rfc5322Date } from '../mail/date.js';

export interface HeaderField {
  readonly name: string;
  /** The whole field as written, continuation lines included, with its line end. */
  readonly raw: string;
  /** Unfolded value. */
  readonly value: string;
}

/** Split a message (LF or CRLF line ends) into header fields and the body that follows. */
export function splitHeaders(text: string): { fields: HeaderField[]; body: string } {
  const fields: HeaderField[] = [];
  let pos = 0;
  let current: { name: string; raw: string } | undefined;
  const flush = (): void => {
    if (!current) return;
    const value = current.raw.slice(current.raw.indexOf(':') + 1).replace(/\r?\n[ \t]/g, ' ').trim();
    fields.push({ name: current.name, raw: current.raw, value });
    current = undefined;
  };
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const end = nl < 0 ? text.length : nl + 1;
    const line = text.slice(pos, end);
    if (line === '\n' || line === '\r\n') {
      flush();
      return { fields, body: text.slice(end) };
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && current) {
      current.raw += line;
    } else {
      const m = /^([!-9;-~]+)[ \t]*:/.exec(line);
      if (!m || m[1] === undefined) {
        // Not a header: the message has no header section end; everything from here is body.
        flush();
        return { fields, body: text.slice(pos) };
      }
      flush();
      current = { name: m[1], raw: line };
    }
    pos = end;
  }
  flush();
  return { fields, body: '' };
}

/** The addresses of To, Cc and Bcc fields (sendmail -t). */
export function headerRecipients(fields: readonly HeaderField[]): string[] {
  const out: string[] = [];
  for (const f of fields) {
    if (!/^(to|cc|bcc|resent-to|resent-cc|resent-bcc)$/i.test(f.name)) continue;
    if (f.value === '') continue;
    const list = emailAddresses.parseAddressList({ input: f.value, rejectTLD: false, partial: false });
    if (!list) {
      out.push(...unqualified(f.value));
      continue;
    }
    for (const a of list) {
      if (a.type === 'group') for (const m of a.addresses) out.push(m.address);
      else out.push(a.address);
    }
  }
  return out;
}

/**
 * A list with local names in it (`To: root`, `To: Admin <root>, bob@example.org`), which RFC 5322
 * does not allow but sendmail -t always has: each item whole, a bare name as it is (the daemon
 * qualifies it as it does a recipient given on the command line).
 */
function unqualified(value: string): string[] {
  const out: string[] = [];
  for (const item of value.split(',')) {
    const one = emailAddresses.parseOneAddress({ input: item.trim(), rejectTLD: false });
    if (one && one.type === 'mailbox') {
      out.push(one.address);
      continue;
    }
    const m = /^\s*(?:[^<>]*<\s*([^\s<>@,;:"]+)\s*>|([^\s<>@,;:"]+))\s*$/.exec(item);
    const local = m?.[1] ?? m?.[2];
    if (local !== undefined) out.push(local);
  }
  return out;
}

export interface FixOptions {
  readonly hostname: string;
  /** The envelope sender, for a missing From:. */
  readonly from: string;
  readonly fullName?: string;
  /** sendmail -t: remove Bcc fields. */
  readonly dropBcc: boolean;
  readonly now: Date;
}

/** Rebuild the header section with CRLF line ends, adding Date/Message-ID/From when missing. */
export function fixHeaders(fields: readonly HeaderField[], o: FixOptions): string {
  const has = (n: string): boolean => fields.some((f) => f.name.toLowerCase() === n);
  let out = '';
  for (const f of fields) {
    if (o.dropBcc && f.name.toLowerCase() === 'bcc') continue;
    out += f.raw.replace(/\r?\n/g, '\r\n');
    if (!out.endsWith('\r\n')) out += '\r\n';
  }
  if (!has('from')) {
    const name = o.fullName ? `${quotePhrase(o.fullName)} ` : '';
    out += `From: ${name}<${o.from}>\r\n`;
  }
  if (!has('date')) out += `Date: ${rfc5322Date(o.now)}\r\n`;
  if (!has('message-id')) out += `Message-ID: <${Date.now().toString(36)}.${randomBytes(6).toString('hex')}@${o.hostname}>\r\n`;
  return out;
}

function quotePhrase(s: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\x00-\x1f\x7f]/g, ' ');
  return /^[A-Za-z0-9 !#$%&'*+\-/=?^_`{|}~]+$/.test(clean) ? clean : `"${clean.replace(/(["\\])/g, '\\$1')}"`;
}
