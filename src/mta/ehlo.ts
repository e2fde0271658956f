/*
 * mta/ehlo.ts — what the server offers: the EHLO reply as capabilities.
 *
 * RFC 5321 §4.1.1.1: the first line of the 250 reply is the server's name
 * and greeting, each further line one extension keyword and its
 * parameters. Keywords are case-insensitive; an unknown one is kept and
 * ignored. "AUTH=LOGIN PLAIN" (the pre-RFC 4954 form some servers still
 * send) counts as AUTH.
 */
import type { ServerReply } from './reply-parser.js';

export interface Capabilities {
  /** Extension keyword (upper case) → its parameters. */
  readonly ext: ReadonlyMap<string, readonly string[]>;
  /** SIZE limit in bytes; 0 = no limit announced (or SIZE without a value). */
  readonly maxSize: number;
  /** AUTH mechanisms, upper case. */
  readonly auth: ReadonlySet<string>;
  /** The session speaks ESMTP (EHLO was accepted); false after a HELO fallback. */
  readonly esmtp: boolean;
}

export const NO_CAPABILITIES: Capabilities = { ext: new Map(), maxSize: 0, auth: new Set(), esmtp: false };

export function parseEhlo(r: ServerReply): Capabilities {
  const ext = new Map<string, string[]>();
  const auth = new Set<string>();
  for (const line of r.lines.slice(1)) {
    const words = line.trim().split(/\s+/).filter((w) => w !== '');
    const first = words[0];
    if (first === undefined) continue;
    let keyword = first.toUpperCase();
    let params = words.slice(1);
    if (keyword.startsWith('AUTH=')) {
      params = [keyword.slice(5), ...params];
      keyword = 'AUTH';
    }
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(keyword)) continue;
    ext.set(keyword, params);
    if (keyword === 'AUTH') for (const p of params) if (p !== '') auth.add(p.toUpperCase());
  }
  const size = ext.get('SIZE')?.[0];
  const maxSize = size !== undefined && /^\d{1,15}$/.test(size) ? Number(size) : 0;
  return { ext, maxSize, auth, esmtp: true };
}

export function has(caps: Capabilities, keyword: string): boolean {
  return caps.ext.has(keyword);
}
