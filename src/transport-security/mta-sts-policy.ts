/*
 * transport-security/mta-sts-policy.ts — the text of MTA-STS (RFC 8461):
 * the `_mta-sts.DOMAIN` TXT record (§3.1) and the policy file fetched from
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt (§3.2). Pure functions: a
 * malformed record or file is a value saying what is wrong, never a throw.
 *
 *   TXT:    v=STSv1; id=20160831085700Z;
 *   policy: version: STSv1
 *           mode: enforce | testing | none
 *           mx: mail.example.com          (one or more; "*.example.net" allowed)
 *           max_age: 86400                (seconds, at most 31557600)
 */
import { nameMatches } from './policy-table.js';

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  readonly mode: StsMode;
  readonly mx: readonly string[];
  /** Seconds. */
  readonly maxAge: number;
  /** The policy text as fetched, CRLF-normalised (TLS-RPT's policy-string). */
  readonly text: string;
}

/** RFC 8461 §3.2: max_age at most 31557600 s (about one year). */
export const MAX_MAX_AGE = 31_557_600;

/**
 * The `_mta-sts` TXT answer: the id of the one record starting "v=STSv1",
 * or why there is none. Several STSv1 records are an error (§3.1: "as if
 * no policy").
 */
export function parseStsRecord(txts: readonly (readonly string[])[]): { readonly id: string } | { readonly none: string } {
  const records = txts.map((chunks) => chunks.join('')).filter((t) => /^v=STSv1(;|\s|$)/.test(t));
  if (records.length === 0) return { none: 'no v=STSv1 TXT record' };
  if (records.length > 1) return { none: 'more than one v=STSv1 TXT record' };
  const fields = (records[0] as string).split(';').map((f) => f.trim()).filter((f) => f !== '');
  let id: string | undefined;
  for (const f of fields.slice(1)) {
    const eq = f.indexOf('=');
    if (eq <= 0) return { none: `malformed field "${f.slice(0, 40)}" in the v=STSv1 record` };
    const k = f.slice(0, eq).trim();
    const v = f.slice(eq + 1).trim();
    if (k === 'id') {
      if (!/^[A-Za-z0-9]{1,32}$/.test(v)) return { none: `invalid id "${v.slice(0, 40)}" in the v=STSv1 record (1 to 32 letters and digits)` };
      id = v;
    }
  }
  if (id === undefined) return { none: 'the v=STSv1 record has no id' };
  return { id };
}

/** The policy file (§3.2), or what is wrong with it. */
export function parseStsPolicy(body: string): StsPolicy | { readonly error: string } {
  const text = body.replace(/\r\n/g, '\n');
  let version: string | undefined;
  let mode: string | undefined;
  let maxAge: number | undefined;
  const mx: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return { error: `line ${i + 1}: expected "key: value"` };
    const k = line.slice(0, colon).trim();
    const v = line.slice(colon + 1).trim();
    if (k === 'version') version ??= v;
    else if (k === 'mode') mode ??= v;
    else if (k === 'max_age') {
      if (!/^\d{1,10}$/.test(v)) return { error: `line ${i + 1}: max_age "${v.slice(0, 20)}" is not a number of seconds` };
      maxAge ??= Math.min(Number(v), MAX_MAX_AGE);
    } else if (k === 'mx') {
      if (!/^(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/.test(v)) return { error: `line ${i + 1}: invalid mx pattern "${v.slice(0, 60)}"` };
      mx.push(v.toLowerCase().replace(/\.$/, ''));
    }
    // Other keys: ignored (§3.2, extensions).
  }
  if (version !== 'STSv1') return { error: version === undefined ? 'no "version: STSv1" line' : `unknown version "${version.slice(0, 20)}"` };
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return { error: mode === undefined ? 'no "mode" line' : `unknown mode "${mode.slice(0, 20)}"` };
  if (maxAge === undefined) return { error: 'no "max_age" line' };
  if (mode !== 'none' && mx.length === 0) return { error: 'no "mx" line' };
  return { mode, mx, maxAge, text };
}

/** §4.1: does an MX host name match one of the policy's mx patterns ("*.example.net": exactly one more label)? */
export function mxAllowed(policy: Pick<StsPolicy, 'mx'>, host: string): boolean {
  return nameMatches(host, policy.mx);
}
