/*
 * filter/reply-text.ts — an SMTP reply a filter wrote as text
 * ("550 5.7.1 Go away", a milter's SMFIR_REPLYCODE, an smtpd-filters(7)
 * reject) into a Reply value. Only 4xx and 5xx are taken; anything else is
 * a malformed answer (undefined), which the caller treats as the filter's
 * failure. Multi-line replies ("550-5.7.1 a\r\n550 5.7.1 b") keep their lines.
 */
import { reply, type Reply } from '../mail/reply.js';

export function parseReplyText(text: string, fallbackEnhanced?: string): Reply | undefined {
  const raw = text.split(/\r?\n/).filter((l) => l !== '');
  if (raw.length === 0) return undefined;
  let code: number | undefined;
  let enhanced: string | undefined;
  const lines: string[] = [];
  for (const l of raw) {
    const m = /^([45]\d\d)(?:[ -](.*))?$/.exec(l);
    if (!m) return undefined;
    const c = Number(m[1]);
    if (code !== undefined && c !== code) return undefined;
    code = c;
    let rest = m[2] ?? '';
    const e = /^([45]\.\d{1,3}\.\d{1,3})(?: |$)(.*)$/.exec(rest);
    if (e) {
      if (e[1]![0] !== String(c)[0]) return undefined;
      enhanced ??= e[1];
      rest = e[2] ?? '';
    }
    lines.push(rest);
  }
  if (code === undefined) return undefined;
  return reply(code, enhanced ?? (fallbackEnhanced !== undefined && fallbackEnhanced[0] === String(code)[0] ? fallbackEnhanced : `${String(code)[0]}.7.1`), ...lines);
}
