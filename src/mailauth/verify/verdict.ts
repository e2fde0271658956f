/*
 * mailauth/verify/verdict.ts — from the results of the checks to what
 * happens to the message, as a value (the front door carries it out).
 *
 *   DMARC fail, p=reject, `dmarc-reject`        550 5.7.1 (RFC 7489 §6.6.3)
 *   DMARC fail, p=quarantine (or p=reject
 *     without dmarc-reject), `quarantine hold`  held in the queue
 *   anything else                               accepted and tagged
 *
 * A check that is enforced never turns a DNS failure into a pass or a
 * fail: DMARC temperror, or a DMARC fail while SPF or a DKIM signature
 * had a temporary error (it might have passed), answer 451 4.7.0 where
 * the result would have refused or held the message.
 */
import type { ARCResult, DKIMResult, DMARCResult, SPFResult } from 'mailauth';
import type { MailAuthVerifyOptions } from '../../config/mailauth-options.js';
import { reply, type Reply } from '../../mail/reply.js';

export interface AuthResults {
  readonly spf: SPFResult | undefined;
  readonly dkim: readonly DKIMResult[];
  readonly arc: ARCResult | undefined;
  readonly dmarc: DMARCResult | undefined;
  /** Why DMARC was not evaluated (no or several From: domains), or why the checks could not finish. */
  readonly note?: string;
  /** The checks could not finish (a deadline, a failed worker): a temporary failure where enforced. */
  readonly incomplete?: boolean;
}

export type AuthVerdict =
  | { readonly kind: 'accept' }
  | { readonly kind: 'hold'; readonly reason: string }
  | { readonly kind: 'refuse'; readonly reply: Reply; readonly reason: string };

const TEMP = reply(451, '4.7.0', 'Sender authentication could not be completed (DNS failure), try again later');

export function decide(r: AuthResults, opts: MailAuthVerifyOptions): AuthVerdict {
  const d = r.dmarc;
  const dmarc = d?.status.result;
  const policy = d?.policy;
  const enforced = opts.dmarcReject || opts.quarantine === 'hold';
  const temporary = r.spf?.status.result === 'temperror' || r.dkim.some((s) => s.status.result === 'temperror');
  if (r.incomplete === true && enforced) return { kind: 'refuse', reply: TEMP, reason: `checks incomplete (${r.note ?? 'unknown'})` };
  if (dmarc === 'temperror' && enforced) return { kind: 'refuse', reply: TEMP, reason: `dmarc=temperror (${d?.status.comment ?? 'DNS failure'})` };
  if (dmarc !== 'fail') return { kind: 'accept' };
  const why = `dmarc=fail policy=${policy ?? 'none'} header.from=${d?.status.header?.from ?? '?'}`;
  if (policy === 'reject' && opts.dmarcReject) {
    if (temporary) return { kind: 'refuse', reply: TEMP, reason: `${why}, with a temporary SPF or DKIM error` };
    const domain = d?.status.header?.from ?? 'the sender domain';
    return { kind: 'refuse', reply: reply(550, '5.7.1', `Message rejected: DMARC policy of ${domain} says reject, and it is neither SPF- nor DKIM-aligned`), reason: why };
  }
  if ((policy === 'quarantine' || policy === 'reject') && opts.quarantine === 'hold') {
    if (temporary) return { kind: 'refuse', reply: TEMP, reason: `${why}, with a temporary SPF or DKIM error` };
    return { kind: 'hold', reason: why };
  }
  return { kind: 'accept' };
}

/** One result word per method, for `filter … phase commit match dkim pass …` (filter/builtin/session.ts). */
export interface AuthWords {
  readonly spf: string;
  /** pass when any signature passes; else the first signature's result; none without one. */
  readonly dkim: string;
  readonly dmarc: string;
  readonly arc: string;
}

export function authWords(r: AuthResults): AuthWords {
  if (r.incomplete) return { spf: r.spf?.status.result ?? 'temperror', dkim: 'temperror', dmarc: 'temperror', arc: 'temperror' };
  const dkim = r.dkim.some((s) => s.status.result === 'pass') ? 'pass' : (r.dkim[0]?.status.result ?? 'none');
  return { spf: r.spf?.status.result ?? 'none', dkim, dmarc: r.dmarc?.status.result ?? 'none', arc: r.arc?.status.result ?? 'none' };
}

/** The log line's fields: one result per check (dkim: each signature as result:domain). */
export function summary(r: AuthResults): Record<string, string> {
  const dkim = r.dkim.length === 0 ? 'none' : r.dkim.map((s) => (s.signingDomain ? `${s.status.result}:${s.signingDomain}` : s.status.result)).join(',');
  return {
    spf: r.spf ? `${r.spf.status.result}${r.spf.domain ? `:${r.spf.domain}` : ''}` : 'none',
    dkim,
    dmarc: r.dmarc ? `${r.dmarc.status.result}${r.dmarc.policy ? `:p=${r.dmarc.policy}` : ''}` : 'none',
    arc: r.arc ? r.arc.status.result : 'none',
    ...(r.note !== undefined ? { note: r.note } : {}),
  };
}

/** The Authentication-Results field (RFC 8601), with CRLF, from mailauth's per-method texts. */
export function resultsHeader(authservId: string, r: AuthResults): string {
  const parts: string[] = [];
  for (const s of r.dkim) if (typeof (s as { info?: unknown }).info === 'string') parts.push((s as { info: string }).info);
  if (r.spf) parts.push(r.spf.info);
  if (r.arc?.info) parts.push(r.arc.info);
  if (r.dmarc?.info) parts.push(r.dmarc.info);
  const body = parts.length > 0 ? parts.map((p) => clean(p)).join(';\r\n\t') : 'none';
  return `Authentication-Results: ${authservId};\r\n\t${body}\r\n`;
}

/** No line breaks or control characters from outside text into a header of ours. */
function clean(s: string): string {
  return s.replace(/\r?\n[ \t]*/g, ' ').replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '?');
}
