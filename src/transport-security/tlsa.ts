/*
 * transport-security/tlsa.ts — TLSA records (RFC 6698) as SMTP uses them
 * (RFC 7672 §3.1): which records are usable, and does a server's
 * certificate chain match one of them. Pure; no I/O.
 *
 * Usable: certificate usage DANE-TA(2) or DANE-EE(3) (PKIX-TA(0) and
 * PKIX-EE(1) are not for SMTP, §3.1.3), selector Cert(0) or SPKI(1),
 * matching type Full(0), SHA2-256(1) (32 bytes) or SHA2-512(2) (64 bytes).
 *
 *  DANE-EE(3)  the server's own certificate (or its public key) is the
 *              record's: no name check, no expiry check (§3.1.1).
 *  DANE-TA(2)  a certificate the server presents in its chain is the
 *              record's trust anchor; the chain from the server's
 *              certificate up to it must verify (signatures, validity
 *              dates) and the server's certificate must name the MX host
 *              (or the destination domain) (§3.1.2, §3.2.2).
 */
import { createHash, X509Certificate } from 'node:crypto';

export interface TlsaRecord {
  readonly usage: number;
  readonly selector: number;
  readonly matchingType: number;
  readonly data: Buffer;
}

/** Why a record is unusable, or undefined when it is usable. */
export function unusable(r: TlsaRecord): string | undefined {
  if (r.usage !== 2 && r.usage !== 3) return `certificate usage ${r.usage} is not DANE-TA(2) or DANE-EE(3)`;
  if (r.selector !== 0 && r.selector !== 1) return `unknown selector ${r.selector}`;
  if (r.matchingType === 1 && r.data.length !== 32) return `SHA2-256 data of ${r.data.length} bytes`;
  if (r.matchingType === 2 && r.data.length !== 64) return `SHA2-512 data of ${r.data.length} bytes`;
  if (r.matchingType > 2) return `unknown matching type ${r.matchingType}`;
  if (r.matchingType === 0 && r.data.length === 0) return 'empty data';
  return undefined;
}

/** "3 1 1 ab12…" for logs and TLS-RPT policy strings. */
export function tlsaText(r: TlsaRecord): string {
  return `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`;
}

function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === 0 ? cert.raw : (cert.publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
}

function matches(r: TlsaRecord, cert: X509Certificate): boolean {
  const s = selected(cert, r.selector);
  const d = r.matchingType === 0 ? s : createHash(r.matchingType === 1 ? 'sha256' : 'sha512').update(s).digest();
  return d.equals(r.data);
}

export type DaneMatch = { readonly ok: true; readonly by: string } | { readonly ok: false; readonly reason: string };

/**
 * Does the chain (DER, the server's certificate first) satisfy one of the
 * usable records? `names` are the reference identifiers for DANE-TA.
 */
export function daneMatch(records: readonly TlsaRecord[], chainDer: readonly Buffer[], names: readonly string[], now: Date = new Date()): DaneMatch {
  let chain: X509Certificate[];
  try {
    chain = chainDer.map((d) => new X509Certificate(d));
  } catch (e) {
    return { ok: false, reason: `the server's certificate cannot be read: ${(e as Error).message}` };
  }
  const leaf = chain[0];
  if (leaf === undefined) return { ok: false, reason: 'the server presented no certificate' };
  const usable = records.filter((r) => unusable(r) === undefined);
  for (const r of usable.filter((x) => x.usage === 3)) {
    if (matches(r, leaf)) return { ok: true, by: `DANE-EE ${tlsaText(r).slice(0, 24)}…` };
  }
  let why = 'the certificate chain matches no usable TLSA record';
  for (const r of usable.filter((x) => x.usage === 2)) {
    const at = chain.findIndex((c) => matches(r, c));
    if (at < 0) continue;
    const broken = chainBreak(chain.slice(0, at + 1), now);
    if (broken !== undefined) {
      why = `the chain to the DANE-TA trust anchor does not verify: ${broken}`;
      continue;
    }
    const named = names.some((n) => leaf.checkHost(n, { subject: 'default', wildcards: true, partialWildcards: false }) !== undefined);
    if (!named) {
      why = `the certificate names none of ${names.join(', ')}`;
      continue;
    }
    return { ok: true, by: `DANE-TA ${tlsaText(r).slice(0, 24)}…` };
  }
  return { ok: false, reason: why };
}

/** Why the chain (leaf first, the trust anchor last) does not verify, or undefined. */
function chainBreak(chain: readonly X509Certificate[], now: Date): string | undefined {
  for (let i = 0; i < chain.length; i++) {
    const c = chain[i] as X509Certificate;
    if (new Date(c.validFrom) > now) return `certificate ${c.subject.replace(/\n/g, ', ')} is not yet valid`;
    if (new Date(c.validTo) < now) return `certificate ${c.subject.replace(/\n/g, ', ')} has expired`;
    const issuer = chain[i + 1];
    if (issuer === undefined) break;
    if (!c.checkIssued(issuer) || !c.verify(issuer.publicKey)) return `certificate ${c.subject.replace(/\n/g, ', ')} is not signed by the next one`;
  }
  return undefined;
}
