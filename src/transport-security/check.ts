/*
 * transport-security/check.ts — after the TLS handshake, does the server's
 * certificate satisfy what the policy asks? Pure: it reads what the
 * handshake saw (PeerTls) and answers undefined or a failure with its
 * TLS-RPT result type (RFC 8460 §4.3).
 *
 *   webpki  the chain verifies against the trusted CAs (Node's verdict,
 *           host name check switched off) and the certificate names one of
 *           `names` (RFC 6125 rules, tls.checkServerIdentity)
 *   dane    daneMatch() against the usable TLSA records (tlsa.ts)
 */
import tls from 'node:tls';
import { daneMatch, type TlsaRecord } from './tlsa.js';
import type { TlsRptResultType } from './tlsrpt-store.js';

/** What the relay client learned of the server in the handshake (mta/client.ts TlsInfo.peer). */
export interface PeerTls {
  /** DER, the server's certificate first. */
  readonly chain: readonly Buffer[];
  readonly cert?: tls.PeerCertificate;
  /** The chain verified against the trusted CAs (names not checked). */
  readonly chainVerified: boolean;
  readonly chainError?: string;
}

export type Requirement = { readonly kind: 'webpki'; readonly names: readonly string[] } | { readonly kind: 'dane'; readonly records: readonly TlsaRecord[]; readonly names: readonly string[] };

export interface CheckFailure {
  readonly type: TlsRptResultType;
  readonly detail: string;
}

const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

export function checkPeer(req: Requirement, peer: PeerTls): CheckFailure | undefined {
  if (req.kind === 'dane') {
    const m = daneMatch(req.records, peer.chain, req.names);
    return m.ok ? undefined : { type: 'validation-failure', detail: `DANE: ${m.reason}` };
  }
  if (!peer.chainVerified || peer.cert === undefined) {
    const code = peer.chainError ?? 'no certificate';
    return { type: EXPIRED.has(code) ? 'certificate-expired' : 'certificate-not-trusted', detail: `the certificate does not verify: ${code}` };
  }
  const cert = peer.cert;
  if (req.names.some((n) => identityOk(n, cert))) return undefined;
  return { type: 'certificate-host-mismatch', detail: `the certificate does not name ${req.names.join(' or ')}` };
}

function identityOk(name: string, cert: tls.PeerCertificate): boolean {
  if (name.startsWith('.')) {
    // ".example.org": any subdomain — accept when one of the certificate's DNS names is under it.
    const alt = String(cert.subjectaltname ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => s.slice(4).toLowerCase());
    return alt.some((a) => a.endsWith(name) && !a.includes('*') && tls.checkServerIdentity(a, cert) === undefined);
  }
  return tls.checkServerIdentity(name, cert) === undefined;
}
