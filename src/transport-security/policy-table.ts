/*
 * transport-security/policy-table.ts — the per-destination TLS policy
 * table (`mta tls-policy <TABLE>`), as Postfix's smtp_tls_policy_maps.
 *
 * Keys: a domain ("example.org"), a parent domain with a leading dot
 * (".example.org": every subdomain), or for a smarthost its host name.
 * The exact key wins over the nearest ".parent" key. Values:
 *
 *   none                  no STARTTLS at all
 *   may                   STARTTLS when offered, certificate not checked
 *   encrypt               STARTTLS required, certificate not checked
 *   verify                STARTTLS required, the certificate must chain to
 *                         a trusted CA and name the MX host (or smarthost)
 *   secure                as verify, but the name must be one of the match
 *                         names (default: the destination domain and its
 *                         subdomains), so an MX record forged in DNS cannot
 *                         redirect the mail to a host with any valid certificate
 *   dane                  DANE (RFC 7672) when the MX host has usable TLSA
 *                         records, else may
 *   dane-only             DANE required: no usable TLSA record defers
 *
 * followed by options `match=NAME[:NAME…]` (secure, verify) — a name with a
 * leading dot matches any subdomain.
 */

export type TlsLevel = 'none' | 'may' | 'encrypt' | 'verify' | 'secure' | 'dane' | 'dane-only';

export const TLS_LEVELS: readonly TlsLevel[] = ['none', 'may', 'encrypt', 'verify', 'secure', 'dane', 'dane-only'];

export interface TablePolicy {
  readonly level: TlsLevel;
  /** Names the certificate must carry (secure, verify); empty ⇒ the default. */
  readonly match: readonly string[];
  /** The table key that matched, for the log. */
  readonly key: string;
}

/** A table value as a policy, or a message saying what is wrong with it. */
export function parsePolicyValue(value: string, key = ''): TablePolicy | { readonly error: string } {
  const words = value.trim().split(/\s+/).filter((w) => w !== '');
  const level = words[0]?.toLowerCase();
  if (level === undefined) return { error: `empty TLS policy for "${key}"` };
  if (!(TLS_LEVELS as readonly string[]).includes(level)) return { error: `unknown TLS policy "${level}" for "${key}" (expected one of ${TLS_LEVELS.join(', ')})` };
  const match: string[] = [];
  for (const w of words.slice(1)) {
    const m = /^match=(.+)$/i.exec(w);
    if (m === null || m[1] === undefined) return { error: `unknown option "${w}" in the TLS policy for "${key}" (expected match=NAME[:NAME…])` };
    for (const n of m[1].split(':')) {
      const name = n.trim().toLowerCase();
      if (!/^\.?[a-z0-9_*-]+(\.[a-z0-9_-]+)*\.?$/.test(name)) return { error: `invalid name "${n}" in match= for "${key}"` };
      match.push(name.replace(/\.$/, ''));
    }
  }
  return { level: level as TlsLevel, match, key };
}

export type TableAnswer = { readonly kind: 'found'; readonly value: string } | { readonly kind: 'notfound' } | { readonly kind: 'error'; readonly reason: string };

export type PolicyLookup = { readonly kind: 'policy'; readonly policy: TablePolicy } | { readonly kind: 'none' } | { readonly kind: 'error'; readonly reason: string };

/** The policy of a destination: the exact key, then ".parent" keys from the nearest up. */
export function lookupPolicy(get: (key: string) => TableAnswer, destination: string): PolicyLookup {
  const d = destination.toLowerCase().replace(/\.$/, '');
  const keys = [d];
  const labels = d.split('.');
  for (let i = 1; i < labels.length; i++) keys.push(`.${labels.slice(i).join('.')}`);
  for (const key of keys) {
    const r = get(key);
    if (r.kind === 'error') return { kind: 'error', reason: r.reason };
    if (r.kind === 'notfound') continue;
    const p = parsePolicyValue(r.value, key);
    if ('error' in p) return { kind: 'error', reason: p.error };
    return { kind: 'policy', policy: p };
  }
  return { kind: 'none' };
}

/** Does `host` match one of `patterns` ("name", ".parent" for any subdomain, "*.parent" for one label)? */
export function nameMatches(host: string, patterns: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return patterns.some((p) => {
    const q = p.toLowerCase().replace(/\.$/, '');
    if (q.startsWith('*.')) {
      const rest = q.slice(1);
      return h.endsWith(rest) && !h.slice(0, -rest.length).includes('.') && h.length > rest.length;
    }
    if (q.startsWith('.')) return h.endsWith(q) && h.length > q.length;
    return h === q;
  });
}
