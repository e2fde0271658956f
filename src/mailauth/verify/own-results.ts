/*
 * mailauth/verify/own-results.ts — Authentication-Results fields that claim
 * to be ours, removed before the message is stored (RFC 8601 §5: a header
 * with this server's authserv-id that arrived from outside is a forgery
 * that a reader further on would trust).
 *
 * Works on the message's header section as bytes: a field starts at a line
 * that does not begin with SP/HT; the authserv-id is the value's first
 * token after comments (RFC 8601 §2.2), compared without case.
 */

const HEADER_END = Buffer.from('\r\n\r\n', 'latin1');
const NAME = /^authentication-results[ \t]*:/i;

/** `content` without the Authentication-Results fields whose authserv-id is `id`; `removed` counts them. */
export function stripOwnResults(content: Buffer, id: string): { readonly content: Buffer; readonly removed: number } {
  const end = content.indexOf(HEADER_END);
  const headerLen = end < 0 ? content.length : end + 2;
  const header = content.subarray(0, headerLen).toString('latin1');
  if (!/^authentication-results[ \t]*:/im.test(header)) return { content, removed: 0 };
  const fields = splitFields(header);
  const kept = fields.filter((f) => !(NAME.test(f) && authservId(f) === id.toLowerCase()));
  const removed = fields.length - kept.length;
  if (removed === 0) return { content, removed: 0 };
  return { content: Buffer.concat([Buffer.from(kept.join(''), 'latin1'), content.subarray(headerLen)]), removed };
}

/** The header section's fields, each with its continuation lines and line ends. */
function splitFields(header: string): string[] {
  const lines = header.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  const fields: string[] = [];
  for (const line of lines) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) fields[fields.length - 1] += line;
    else fields.push(line);
  }
  return fields;
}

/** The authserv-id of one Authentication-Results field, lowercased ('' when there is none). */
export function authservId(field: string): string {
  let v = field.slice(field.indexOf(':') + 1).replace(/\r?\n[ \t]/g, ' ');
  // Comments, possibly nested, before the id.
  for (;;) {
    v = v.replace(/^[ \t]+/, '');
    if (!v.startsWith('(')) break;
    let depth = 0;
    let i = 0;
    for (; i < v.length; i++) {
      if (v[i] === '\\') i++;
      else if (v[i] === '(') depth++;
      else if (v[i] === ')' && --depth === 0) break;
    }
    v = v.slice(i + 1);
  }
  const quoted = /^"((?:[^"\\]|\\.)*)"/.exec(v);
  if (quoted) return (quoted[1] ?? '').replace(/\\(.)/g, '$1').toLowerCase();
  return (/^[^\s;()]*/.exec(v)?.[0] ?? '').toLowerCase();
}
