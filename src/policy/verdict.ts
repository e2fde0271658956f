/*
 * policy/verdict.ts — what a policy phase answers.
 *
 * Phases (connect, helo, mail, rcpt, data, commit) return verdicts; they
 * never touch the session. The session turns a verdict into a reply. As in
 * OpenSMTPD's matchers, a lookup that fails is a temporary failure, never a
 * "no match".
 */
import type { Reply } from '../mail/reply.js';

export type Verdict =
  /**
   * No objection; later phases/rules decide. At RCPT: `grant: relay` (the
   * rules file's `allow`): relay this recipient even when no smtpd.conf rule
   * accepts it, `rule` saying where the grant came from ("file:line");
   * `trusted`: this phase vouches for the recipient (ZMailer's policydb
   * relaycustnet, relaytarget …), so smtpd.conf's rules route it as mail
   * from this host — relaying allowed.
   */
  | { readonly kind: 'pass'; readonly grant?: { readonly kind: 'relay'; readonly rule: string }; readonly trusted?: string }
  /** Refuse with this reply (4xx or 5xx). */
  | {
      readonly kind: 'reject';
      readonly reply: Reply;
      /** Why, for the log (may name configuration; never shown to the client). */
      readonly reason: string;
      /** Close the session after the reply (deny, too many errors …). */
      readonly disconnect?: boolean;
      /** Wait this long before replying (tarpit, noto_delay, deny_delay). */
      readonly delayMs?: number;
    };

export const PASS: Verdict = Object.freeze({ kind: 'pass' });

export function reject(reply: Reply, reason: string, extra?: { disconnect?: boolean; delayMs?: number }): Verdict {
  return { kind: 'reject', reply, reason, ...extra };
}
