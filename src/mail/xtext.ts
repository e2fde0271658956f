/*
 * smtp/xtext.ts — the xtext encoding of ESMTP parameter values.
 *
 * RFC 3461 §4: ENVID, ORCPT and (RFC 4954 §5) AUTH carry their value as
 * xtext: printable ASCII 33–126 except "+" and "=", any other octet
 * written as "+" and two UPPERCASE hex digits.
 *
 *   xtext   = *( xchar / hexchar )
 *   xchar   = %d33-42 / %d44-60 / %d62-126
 *   hexchar = "+" 2( %x30-39 / %x41-46 )
 *
 * xtext is an octet encoding: decodeXtext() turns the octets into a string
 * by strict UTF-8 (plain ASCII in practice), so encodeXtext() and
 * decodeXtext() are exact inverses. Decoding does not judge the content:
 * "+0D" decodes to CR. Callers that store or echo a value must refuse
 * control characters themselves (smtp/params.ts does).
 *
 * RFC 6533 §3 adds, for the "utf-8" address type of ORCPT, the
 * utf-8-addr-xtext form (ASCII with "\x{HEX}" escapes for code points)
 * and, once SMTPUTF8 is in use, utf-8-addr-unitext (the same, with raw
 * UTF-8 allowed). decodeUtf8AddrXtext() reads both.
 */

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decode RFC 3461 xtext; null when malformed (bad "+XX", a character outside 33–126, "=", or octets that are not UTF-8). */
export function decodeXtext(s: string): string | null {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2b /* + */) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c >= 33 && c <= 126 && c !== 0x3d /* = */) {
      bytes.push(c);
    } else {
      return null;
    }
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

/** Encode a string as RFC 3461 xtext (non-ASCII characters as their UTF-8 octets). */
export function encodeXtext(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    if (byte >= 33 && byte <= 126 && byte !== 0x2b && byte !== 0x3d) out += String.fromCharCode(byte);
    else out += '+' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** RFC 6533 QCHAR: printable ASCII except "\", "+" and "=". */
function isQchar(c: number): boolean {
  return c >= 0x21 && c <= 0x7e && c !== 0x5c && c !== 0x2b && c !== 0x3d;
}

/**
 * Decode RFC 6533 utf-8-addr-xtext (unitext = false) or utf-8-addr-unitext
 * (unitext = true: raw non-ASCII allowed, for use with SMTPUTF8). An escape
 * is "\x{" 1–6 uppercase hex digits "}" without leading zeros, naming a
 * Unicode scalar value; ASCII code points may only be escaped when they
 * could not appear literally. null when malformed or empty.
 */
export function decodeUtf8AddrXtext(s: string, unitext: boolean): string | null {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const cp = s.codePointAt(i) ?? 0;
    if (cp === 0x5c /* \ */) {
      const m = /^\\x\{([1-9A-F][0-9A-F]{0,5})\}/.exec(s.slice(i));
      if (m === null || m[1] === undefined) return null;
      const v = parseInt(m[1], 16);
      if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return null;
      if (v < 0x80 && isQchar(v)) return null;
      out += String.fromCodePoint(v);
      i += m[0].length;
    } else if (isQchar(cp) || (unitext && cp >= 0x80 && !(cp >= 0xd800 && cp <= 0xdfff))) {
      out += String.fromCodePoint(cp);
      i += cp > 0xffff ? 2 : 1;
    } else {
      return null;
    }
  }
  return out.length > 0 ? out : null;
}

/** Encode a string as RFC 6533 utf-8-addr-xtext (7-bit, safe without SMTPUTF8). */
export function encodeUtf8AddrXtext(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    out += isQchar(cp) ? ch : `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return out;
}
