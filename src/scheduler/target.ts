/*
 * scheduler/target.ts — what a queue operation applies to, as smtpctl
 * names it: a message id (8 hex digits), an envelope id (16) or "all".
 */

export type Target = { readonly kind: 'all' } | { readonly kind: 'msgid'; readonly id: string } | { readonly kind: 'evpid'; readonly id: string };

export function parseTarget(s: string): Target {
  const t = s.trim().toLowerCase();
  if (t === 'all') return { kind: 'all' };
  if (/^[0-9a-f]{8}$/.test(t)) return { kind: 'msgid', id: t };
  if (/^[0-9a-f]{16}$/.test(t)) return { kind: 'evpid', id: t };
  throw new RangeError(`not a message id, envelope id or "all": ${JSON.stringify(s)}`);
}
