/*
 * policy/zmailer/phase.ts — the checks of smtpserver.conf that act on a
 * session, as a policy phase.
 *
 *   HELO/EHLO  the first matching HELO pattern: "!message" refuses with
 *              501 5.7.1 "Sorry <ip>, <message>" (ZMailer's reply); a load
 *              average above the pattern's limit ends the session with 421.
 *   RCPT       max-error-recipients: with MAIL FROM:<>, more recipients
 *              than that are refused (552 5.7.1, as ZMailer).
 *
 * Everything else in a ZmailerConf maps onto existing machinery: the
 * connection limits and tarpit (zmailer/limits.ts → policy/limits), and
 * the smtp options (sizes, recipient limit, extensions, HELP, VRFY/EXPN).
 * styleFor() gives the style flags a session runs with.
 */
import type { Mailbox } from '../../mail/address.js';
import { reply, sanitizeReplyText } from '../../mail/reply.js';
import { canonicalIp } from '../../net/ip.js';
import type { PolicyPhase, SessionFacts, TxFacts } from '../policy.js';
import { PASS, type Verdict } from '../verdict.js';
import { loadAverageRefusal } from '../load-average.js';
import { DEFAULT_STYLE, type HeloPattern, type StyleFlag } from '../../config/zmailer/helo-patterns.js';
import { findHeloPattern } from './helo-patterns.js';
import type { ZmailerConf } from '../../config/zmailer/params.js';

export interface ZmailerPhaseOptions {
  readonly conf: ZmailerConf;
  /** The current load average (os.loadavg()[0]); without it, load limits are not checked. */
  readonly loadAverage?: () => number;
}

export interface HeloExplanation {
  readonly verdict: Verdict;
  /** The HELO pattern that matched, if any. */
  readonly pattern?: HeloPattern;
  readonly why: string;
}

export interface ZmailerPolicyPhase extends PolicyPhase {
  helo(s: SessionFacts, helo: string): Verdict;
  rcpt(s: SessionFacts, tx: TxFacts, rcpt: Mailbox): Verdict;
  explainHelo(s: SessionFacts, helo: string): HeloExplanation;
}

export function zmailerPolicyPhase(opts: ZmailerPhaseOptions): ZmailerPolicyPhase {
  const conf = opts.conf;

  function explainHelo(s: SessionFacts, helo: string): HeloExplanation {
    const pattern = findHeloPattern(conf.heloPatterns, helo);
    if (pattern === undefined) return { verdict: PASS, why: `${conf.file}: no HELO pattern matches "${helo}"` };
    const where = `${pattern.pos.file}:${pattern.pos.line}`;
    if (pattern.action.kind === 'refuse') {
      const ip = canonicalIp(s.clientAddress);
      const text = `Sorry ${ip}, ${sanitizeReplyText(pattern.action.message ?? 'access denied.')}`;
      return { verdict: { kind: 'reject', reply: reply(501, '5.7.1', text), reason: `${where}: HELO ${helo} matches "${pattern.pattern}"` }, pattern, why: `${where}: ${pattern.pattern} !…` };
    }
    if (pattern.maxLoadAvg !== undefined && opts.loadAverage !== undefined) {
      const load = opts.loadAverage();
      const r = loadAverageRefusal(pattern.maxLoadAvg, load);
      if (r !== undefined) {
        return { verdict: { kind: 'reject', reply: r, reason: `${where}: load average ${load} over ${pattern.maxLoadAvg}`, disconnect: true }, pattern, why: `${where}: load limit ${pattern.maxLoadAvg}` };
      }
    }
    return { verdict: PASS, pattern, why: `${where}: ${pattern.pattern} style "${[...pattern.action.flags].join('')}"` };
  }

  return {
    name: 'zmailer',
    explainHelo,
    helo(s, helo) {
      return explainHelo(s, helo).verdict;
    },
    rcpt(_s, tx) {
      if (tx.sender === null && tx.rcptCount >= conf.maxErrorRecipients) {
        return {
          kind: 'reject',
          reply: reply(552, '5.7.1', 'SPAM trap -- too many recipients for an empty source address!'),
          reason: `more than ${conf.maxErrorRecipients} recipients with MAIL FROM:<> (max-error-recipients)`,
        };
      }
      return PASS;
    },
  };
}

/**
 * The style flags of a session: those of the HELO pattern that matched,
 * else the server's default (-s flags, or "ve").
 */
export function styleFor(conf: ZmailerConf, helo: string | undefined, fallback: ReadonlySet<StyleFlag> = DEFAULT_STYLE): ReadonlySet<StyleFlag> {
  if (helo === undefined) return fallback;
  const p = findHeloPattern(conf.heloPatterns, helo);
  return p !== undefined && p.action.kind === 'style' ? p.action.flags : fallback;
}
