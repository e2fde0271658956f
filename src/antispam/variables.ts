/*
 * antispam/variables.ts — seed 002's "mail variables" in reply texts of
 * the checks at the door (dnsbl/rhsbl reply, header_checks REJECT text):
 *
 *   $CLIENT_ADDR    the client's address          $CLIENT_HOST   its forward-confirmed name, or "unknown"
 *   $CLIENT_HELO    the HELO/EHLO name, or ""     $SENDER        the envelope sender, or "" for <>
 *   $SENDER_DOMAIN  the sender's domain           $DNSBL_LIST    the list(s) that listed the client
 *
 * ${NAME} works too. Unknown names stay as written. Values are cleaned of
 * control characters so a client cannot break a reply line.
 */
import type { SessionFacts, TxFacts } from '../policy/policy.js';

export type MailVariables = Readonly<Record<string, string>>;

export function mailVariables(s: SessionFacts, tx?: Pick<TxFacts, 'sender'>, extra: Record<string, string> = {}): MailVariables {
  const sender = tx?.sender;
  return {
    CLIENT_ADDR: s.clientAddress,
    CLIENT_HOST: s.rdns ?? 'unknown',
    CLIENT_HELO: s.helo ?? '',
    SENDER: sender ? `${sender.local}@${sender.domain}` : '',
    SENDER_DOMAIN: sender?.domain ?? '',
    ...extra,
  };
}

export function expandVariables(text: string, vars: MailVariables): string {
  return text.replace(/\$(?:\{([A-Z_]+)\}|([A-Z_]+))/g, (whole, a: string | undefined, b: string | undefined) => {
    const v = vars[a ?? b ?? ''];
    return v === undefined ? whole : v.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 256);
  });
}
