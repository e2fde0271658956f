/*
 * policy/zmailer/hdr220.ts — the greeting lines of PARAM hdr220.
 *
 * Each hdr220 line is one line of the 220 greeting, with ZMailer's tags:
 *
 *   %%  a "%"                 %H  this server's host name
 *   %I  "+IDENT" when ident   %i  the client's address, as [192.0.2.1]
 *       lookups are on        %p  the local port
 *   %V  the version           %T  the current time (RFC 5322 date)
 *   %X  the translation language (ZMailer's -X; empty in Postern)
 *
 * An unknown tag expands to nothing, as in ZMailer. Values are stripped of
 * control characters so nothing can split the greeting.
 */
import { rfc5322Date } from '../../mail/date.js';
import { sanitizeReplyText } from '../../mail/reply.js';

export interface Hdr220Values {
  readonly hostname: string;
  /** The client address (without brackets). */
  readonly clientAddress: string;
  readonly localPort: number;
  readonly version: string;
  readonly now: Date;
  /** Ident lookups are on (adds "+IDENT" for %I). Postern: always false. */
  readonly ident?: boolean;
  readonly language?: string;
}

/** ZMailer's greeting when no hdr220 is given, with Postern's name. */
export const DEFAULT_HDR220: readonly string[] = Object.freeze(['%H Postern %V ESMTP%I ready at %T']);

/** Expand the hdr220 lines (or the default) into greeting text lines. */
export function expandHdr220(lines: readonly string[], v: Hdr220Values): string[] {
  const source = lines.length > 0 ? lines : DEFAULT_HDR220;
  return source.map((l) => expandLine(l, v));
}

function expandLine(line: string, v: Hdr220Values): string {
  let out = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c !== '%') {
      out += c;
      continue;
    }
    const tag = line[++i];
    switch (tag) {
      case '%':
        out += '%';
        break;
      case 'H':
        out += v.hostname;
        break;
      case 'I':
        if (v.ident) out += '+IDENT';
        break;
      case 'i':
        out += `[${v.clientAddress}]`;
        break;
      case 'p':
        out += String(v.localPort);
        break;
      case 'V':
        out += v.version;
        break;
      case 'T':
        out += rfc5322Date(v.now);
        break;
      case 'X':
        out += v.language ?? '';
        break;
      default:
        // Unknown tag (or a lone "%" at the end): nothing, as ZMailer.
        break;
    }
  }
  return sanitizeReplyText(out);
}
