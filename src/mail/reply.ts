/*
 * smtp/reply.ts — SMTP replies as values.
 *
 * Every command handler returns a Reply; only the connection writes it.
 * A Reply carries the basic code (RFC 5321 §4.2), the enhanced status code
 * (RFC 3463, shown when ENHANCEDSTATUSCODES is on), the text lines and
 * whether the session ends after it is written.
 */

export interface Reply {
  readonly code: number;
  /** RFC 3463 "class.subject.detail", e.g. "2.1.0"; omitted on greeting/EHLO. */
  readonly enhanced?: string;
  readonly lines: readonly string[];
  /** Close the connection once this reply is written. */
  readonly close?: boolean;
}

export function reply(code: number, enhanced: string | undefined, ...lines: string[]): Reply {
  return { code, enhanced, lines: lines.length > 0 ? lines : [''] };
}

export function closing(r: Reply): Reply {
  return { ...r, close: true };
}

export interface FormatOptions {
  /** Prefix the enhanced status code (ENHANCEDSTATUSCODES negotiated/offered). */
  readonly enhanced: boolean;
  /** Allow multi-line replies (ZMailer's no-multiline-replies turns them off except for EHLO). */
  readonly multiline: boolean;
}

/** Render a reply as wire text. Never emits a bare CR or LF from reply text. */
export function formatReply(r: Reply, opts: FormatOptions): string {
  const lines = opts.multiline ? r.lines : [r.lines.join(' ')];
  const prefix = opts.enhanced && r.enhanced ? `${r.enhanced} ` : '';
  let out = '';
  for (let i = 0; i < lines.length; i++) {
    const sep = i === lines.length - 1 ? ' ' : '-';
    const text = sanitizeReplyText(lines[i] ?? '');
    // "334 " keeps its space even with an empty challenge (RFC 4954 §4 continue-req).
    out += `${r.code}${sep}${prefix}${text}\r\n`;
  }
  return out;
}

/** Replies never carry control characters: a client- or server-supplied string cannot split a reply. */
export function sanitizeReplyText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, ' ');
}

export function isPositive(r: Reply): boolean {
  return r.code >= 200 && r.code < 400;
}
