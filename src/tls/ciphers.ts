/*
 * tls/ciphers.ts — the cipher suites Postern offers and accepts, inbound
 * and outbound, and the OpenSSL options every server context gets.
 *
 * Inbound (listeners), unless `smtp ciphers` says otherwise: Mozilla's
 * "intermediate" profile (server-side TLS guidelines, version 5.7) — for
 * TLS 1.2 only ECDHE (and DHE) key exchange with AEAD ciphers (AES-GCM,
 * ChaCha20-Poly1305): no static RSA key exchange (no forward secrecy), no
 * CBC (LUCKY13 and its kind), no CCM8 (short tags), no ARIA or Camellia.
 * TLS 1.3's own suites are all AEAD and are always offered. TLS 1.2 is the
 * minimum (`smtp tls-min-version TLSv1.3` raises it).
 *
 * Outbound, the policy depends on what TLS is for:
 *  - required / smtps (verified, or a configured smarthost): the same
 *    intermediate set; a peer that cannot do it fails (4.7.x, retried);
 *  - opportunistic (STARTTLS to an MX when offered): the intermediate suites
 *    first, then the older ones (ECDHE with CBC, static RSA with GCM or CBC)
 *    still TLS 1.2. RFC 7435: any encryption beats the clear-text retry that
 *    follows a failed handshake, and a passive eavesdropper is the threat
 *    here. TLS 1.0/1.1 are not offered (OpenSSL 3 would need security level
 *    0); such a peer gets the clear-text retry, as before.
 *
 * Renegotiation: TLS 1.2 client-initiated renegotiation is refused by
 * OpenSSL (SSL_OP_NO_RENEGOTIATION) on every server context; Node's own
 * CLIENT_RENEG_LIMIT does not apply to sockets wrapped by hand for STARTTLS.
 */
import { constants } from 'node:crypto';

/** TLS 1.3 suites (Node takes them in the same list, by their TLS_ names). */
const TLS13 = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

/** Mozilla intermediate, TLS 1.2 part, in its order. */
export const INTERMEDIATE_TLS12: readonly string[] = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
];

/** What opportunistic outbound TLS accepts after the intermediate suites (old MX hosts). */
const LEGACY_TLS12: readonly string[] = [
  'ECDHE-ECDSA-AES128-SHA256',
  'ECDHE-RSA-AES128-SHA256',
  'ECDHE-ECDSA-AES128-SHA',
  'ECDHE-RSA-AES128-SHA',
  'ECDHE-ECDSA-AES256-SHA384',
  'ECDHE-RSA-AES256-SHA384',
  'ECDHE-ECDSA-AES256-SHA',
  'ECDHE-RSA-AES256-SHA',
  'AES128-GCM-SHA256',
  'AES256-GCM-SHA384',
  'AES128-SHA256',
  'AES256-SHA256',
  'AES128-SHA',
  'AES256-SHA',
];

/** The listeners' default (`smtp ciphers` replaces it). */
export const DEFAULT_SERVER_CIPHERS = [...TLS13, ...INTERMEDIATE_TLS12].join(':');

/** Outbound TLS whose failure fails the delivery (required, smtps). */
export const OUTBOUND_STRICT_CIPHERS = DEFAULT_SERVER_CIPHERS;

/** Outbound opportunistic STARTTLS: strong first, older suites after, never clear text by choice. */
export const OUTBOUND_OPPORTUNISTIC_CIPHERS = [...TLS13, ...INTERMEDIATE_TLS12, ...LEGACY_TLS12].join(':');

/**
 * The list a listener uses: `smtp ciphers` when given. A list without any
 * TLS 1.3 suite (OpenSMTPD's `ciphers` is about TLS 1.2 and older) keeps the
 * TLS 1.3 ones: otherwise Node would turn TLS 1.3 off altogether.
 */
export function serverCiphers(configured: string | undefined): string {
  if (configured === undefined) return DEFAULT_SERVER_CIPHERS;
  return configured.split(':').some((c) => c.startsWith('TLS_')) ? configured : [...TLS13, configured].join(':');
}

/** OpenSSL options for every server context: no client-initiated renegotiation (TLS 1.2). */
export const SERVER_SECURE_OPTIONS = constants.SSL_OP_NO_RENEGOTIATION;
