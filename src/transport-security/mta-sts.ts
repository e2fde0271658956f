/*
 * transport-security/mta-sts.ts — the MTA-STS policy in force for a
 * domain (RFC 8461 §5): look up `_mta-sts.DOMAIN` TXT; when its id equals
 * the cached policy's and that is still within max_age, use the cache;
 * otherwise fetch the policy (mta-sts-fetch.ts) and cache it. A failed
 * fetch or a malformed policy falls back to a cached policy that has not
 * expired (§5.1), else to "no policy" — with the reason, which the caller
 * logs and reports through TLS-RPT (sts-policy-fetch-error,
 * sts-policy-invalid, sts-webpki-invalid).
 */
import { fetchStsPolicy, type FetchOptions } from './mta-sts-fetch.js';
import { parseStsPolicy, parseStsRecord, type StsPolicy } from './mta-sts-policy.js';
import type { StsCache } from './sts-cache.js';

export interface TxtDns {
  resolveTxt(name: string): Promise<string[][]>;
}

export type StsFailureType = 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid';

export type StsAnswer =
  | { readonly kind: 'policy'; readonly policy: StsPolicy; readonly id: string; readonly from: 'cache' | 'fetch' }
  /** No policy in force; `problem` when the domain publishes one that could not be had (logged, reported). */
  | { readonly kind: 'none'; readonly reason: string; readonly problem?: { readonly type: StsFailureType; readonly detail: string } };

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME']);

export class StsResolver {
  constructor(
    private readonly dns: TxtDns,
    private readonly cache: StsCache,
    private readonly fetch: FetchOptions,
    private readonly now: () => number = Date.now,
  ) {}

  async policyFor(domain: string): Promise<StsAnswer> {
    const d = domain.toLowerCase().replace(/\.$/, '');
    const cached = await this.cache.get(d).catch(() => undefined);
    const fresh = cached !== undefined && cached.fetched + cached.policy.maxAge * 1000 > this.now() ? cached : undefined;
    let txt: string[][];
    try {
      txt = await this.dns.resolveTxt(`_mta-sts.${d}`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      // §5.1: a cached policy stays in force when the record is gone or cannot be looked up.
      if (fresh !== undefined) return { kind: 'policy', policy: fresh.policy, id: fresh.id, from: 'cache' };
      return { kind: 'none', reason: NOT_FOUND.has(code) ? 'no _mta-sts record' : `_mta-sts lookup failed: ${code}` };
    }
    const rec = parseStsRecord(txt);
    if ('none' in rec) {
      if (fresh !== undefined) return { kind: 'policy', policy: fresh.policy, id: fresh.id, from: 'cache' };
      // A record that claims STSv1 but is broken is worth a log line (§3.1: treated as no policy); no record at all is not.
      const claimed = txt.some((chunks) => chunks.join('').startsWith('v=STSv1'));
      const detail = `_mta-sts.${d}: ${rec.none}`;
      return claimed ? { kind: 'none', reason: detail, problem: { type: 'sts-policy-invalid', detail } } : { kind: 'none', reason: rec.none };
    }
    if (fresh !== undefined && fresh.id === rec.id) return { kind: 'policy', policy: fresh.policy, id: fresh.id, from: 'cache' };
    const got = await fetchStsPolicy(d, this.fetch);
    if (got.kind === 'error') {
      if (fresh !== undefined) return { kind: 'policy', policy: fresh.policy, id: fresh.id, from: 'cache' };
      return { kind: 'none', reason: got.reason, problem: { type: got.tlsFailure ? 'sts-webpki-invalid' : 'sts-policy-fetch-error', detail: got.reason } };
    }
    const policy = parseStsPolicy(got.body);
    if ('error' in policy) {
      const detail = `malformed MTA-STS policy of ${d}: ${policy.error}`;
      if (fresh !== undefined) return { kind: 'policy', policy: fresh.policy, id: fresh.id, from: 'cache' };
      return { kind: 'none', reason: detail, problem: { type: 'sts-policy-invalid', detail } };
    }
    await this.cache.put(d, { id: rec.id, policy, fetched: this.now() }).catch(() => undefined);
    return { kind: 'policy', policy, id: rec.id, from: 'fetch' };
  }
}
