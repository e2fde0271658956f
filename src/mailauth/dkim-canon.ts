/*
 * mailauth/dkim-canon.ts — a message cut into header fields and body, and
 * the canonicalizations of RFC 6376 §3.4 (simple and relaxed, header and
 * body), for our DKIM verifier (verify/fast-dkim.ts) and signer
 * (sign/fast-sign.ts). Only a message of plain CRLF lines with a header
 * section is cut here; anything else is left to mailauth.
 */

export const FIELD_NAME = /^[!-9;-~]+$/;

/**
 * The runs of SP and HTAB that relaxed canonicalization changes into one
 * SP: every run but a lone SP, which stays as it is. Matching only those
 * (not each space between words, as /[ \t]+/g does) made a 1 KB body's
 * canonicalization 3–4 times faster; the result is the same.
 */
const WSP_TO_SPACE = /[ \t]{2,}|\t/g;

export interface Field {
  /** Lower-case name. */
  readonly name: string;
  /** The field as received, without its final CRLF (latin1: one char per byte). */
  readonly raw: string;
}

export interface MessageParts {
  readonly fields: readonly Field[];
  /** The body (latin1), empty or ending with CRLF. */
  readonly body: string;
}

/** The fields and body of `msg`, or undefined: no header section, a bare CR or LF, a body without its last CRLF, a line that is not a field. */
export function messageParts(msg: Buffer): MessageParts | undefined {
  const text = msg.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end <= 0 || /\r(?!\n)|(?<!\r)\n/.test(text)) return undefined;
  const fields = splitFields(text.slice(0, end + 2));
  const body = text.slice(end + 4);
  if (fields === undefined || (body !== '' && !body.endsWith('\r\n'))) return undefined;
  return { fields, body };
}

/** The header fields, or undefined for a line that is not a field (mailauth decides about those). */
function splitFields(head: string): Field[] | undefined {
  const out: Field[] = [];
  for (const raw of head.slice(0, -2).split(/\r\n(?![ \t])/)) {
    const colon = raw.indexOf(':');
    if (colon <= 0) return undefined;
    const name = raw.slice(0, colon);
    if (!FIELD_NAME.test(name)) return undefined;
    out.push({ name: name.toLowerCase(), raw });
  }
  return out;
}

/** The body as RFC 6376 §3.4.3 (simple) or §3.4.4 (relaxed) makes it; `body` ends with CRLF or is empty. */
export function canonBody(body: string, canon: 'relaxed' | 'simple'): string {
  const b = canon === 'relaxed' ? body.replace(/[ \t]+\r\n/g, '\r\n').replace(WSP_TO_SPACE, ' ') : body;
  let end = b.length;
  while (end >= 2 && b.charCodeAt(end - 2) === 13 && b.charCodeAt(end - 1) === 10) end -= 2;
  if (end === 0) return canon === 'relaxed' ? '' : '\r\n';
  return `${b.slice(0, end)}\r\n`;
}

/** One header field as RFC 6376 §3.4.1 (simple) or §3.4.2 (relaxed) makes it, without CRLF. */
export function canonField(raw: string, canon: 'relaxed' | 'simple'): string {
  if (canon === 'simple') return raw;
  const colon = raw.indexOf(':');
  const value = raw.slice(colon + 1).replace(/\r\n(?=[ \t])/g, '').replace(WSP_TO_SPACE, ' ').replace(/^ | $/g, '');
  return `${raw.slice(0, colon).toLowerCase()}:${value}`;
}

