/*
 * filter/message-parts.ts — a message cut into its header fields and body,
 * and a message built again from them, with the edits filters ask for
 * (libmilter's add/insert/change header, replace body). Pure.
 *
 * A field keeps its raw bytes (folding included) unless it is changed, so
 * an unchanged field is stored exactly as received (DKIM signatures over it
 * stay valid). The header section ends at the first empty line (RFC 5322
 * §2.1); a message without one is all header.
 */
import type { HeaderEdit, MessageEdits } from './filter.js';

export interface HeaderField {
  readonly name: string;
  /** The value as received: everything after the colon, folding kept, without the final CRLF. */
  readonly value: string;
  /** The whole field with its CRLF, exactly as received. */
  readonly raw: Buffer;
}

export interface MessageParts {
  readonly fields: HeaderField[];
  /** The body after the empty line (the empty line itself not included). */
  readonly body: Buffer;
  /** Whether the message had the empty line. */
  readonly separated: boolean;
}

export function splitMessage(m: Buffer): MessageParts {
  let end: number;
  let separated = true;
  if (m.subarray(0, 2).toString('latin1') === '\r\n') end = 0;
  else {
    const i = m.indexOf('\r\n\r\n');
    if (i < 0) {
      end = m.length;
      separated = false;
    } else end = i + 2;
  }
  const fields: HeaderField[] = [];
  let start = 0;
  while (start < end) {
    // A field runs to the CRLF not followed by a space or a tab.
    let stop = start;
    for (;;) {
      const nl = m.indexOf('\r\n', stop);
      if (nl < 0 || nl + 2 >= end) {
        stop = nl < 0 ? end : Math.min(nl + 2, end);
        break;
      }
      const next = m[nl + 2];
      stop = nl + 2;
      if (next !== 0x20 && next !== 0x09) break;
    }
    const raw = m.subarray(start, stop);
    const text = raw.toString('utf8').replace(/\r\n$/, '');
    const colon = text.indexOf(':');
    fields.push({ name: colon < 0 ? text : text.slice(0, colon), value: colon < 0 ? '' : text.slice(colon + 1), raw });
    start = stop;
  }
  const body = separated ? m.subarray(end === 0 ? 2 : end + 2) : Buffer.alloc(0);
  return { fields, body, separated };
}

/** Bare LF → CRLF, and a value that does not start with a space gets one after the colon. */
function field(name: string, value: string): HeaderField {
  const v = value.replace(/\r?\n/g, '\r\n');
  const text = `${name}:${/^[ \t]/.test(v) ? '' : ' '}${v}`;
  return { name, value: text.slice(name.length + 1), raw: Buffer.from(`${text}\r\n`, 'utf8') };
}

function applyHeaderEdit(fields: HeaderField[], e: HeaderEdit): void {
  switch (e.op) {
    case 'add':
      fields.push(field(e.name, e.value));
      return;
    case 'insert':
      fields.splice(Math.min(e.index, fields.length), 0, field(e.name, e.value));
      return;
    case 'change': {
      const lower = e.name.toLowerCase();
      let seen = 0;
      const at = fields.findIndex((f) => f.name.toLowerCase() === lower && ++seen === Math.max(1, e.index));
      if (at < 0) {
        if (e.value !== '') fields.push(field(e.name, e.value));
        return;
      }
      if (e.value === '') fields.splice(at, 1);
      else fields[at] = field(fields[at]!.name, e.value);
      return;
    }
  }
}

/** The message with the edits applied (header edits in order, then a new body). */
export function applyEdits(m: Buffer, edits: Pick<MessageEdits, 'headers' | 'body' | 'message'>): Buffer {
  const base = edits.message ?? m;
  if (edits.headers.length === 0 && edits.body === undefined) return base;
  const parts = splitMessage(base);
  const fields = [...parts.fields];
  for (const e of edits.headers) applyHeaderEdit(fields, e);
  const body = edits.body !== undefined ? crlf(edits.body) : parts.body;
  return Buffer.concat([...fields.map((f) => f.raw), Buffer.from('\r\n'), body]);
}

/** Bare LF and bare CR become CRLF (a milter's new body may use either). */
export function crlf(b: Buffer): Buffer {
  if (b.indexOf(0x0a) < 0 && b.indexOf(0x0d) < 0) return b;
  return Buffer.from(b.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
}
