/*
 * tls/handshake.ts — the server side of a TLS handshake on an accepted
 * socket (STARTTLS after its 220, or smtps before the greeting), with a
 * deadline and an eye on the peer.
 *
 * While the handshake runs nothing else listens to the socket, so this is
 * where a client that leaves must be noticed: a FIN before or during the
 * ClientHello ('end' on the TLS socket: the listeners allow half-open
 * sockets, so nobody would close it otherwise), a reset or close, an
 * error, or the time limit (`smtp timeout tls-handshake`). Each settles the
 * handshake as failed and destroys the socket; the caller only ends its
 * session. Once secure, a further handshake on the same socket is a client
 * renegotiation (TLS 1.2): OpenSSL refuses it (tls/ciphers.ts), and the
 * caller is told through onRenegotiation so it can log it and hang up.
 */
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { X509Certificate } from 'node:crypto';

export interface HandshakeSettings {
  readonly secureContext: SecureContext;
  readonly SNICallback: (name: string, cb: (e: Error | null, ctx?: SecureContext) => void) => void;
  readonly requestCert: boolean;
  readonly rejectUnauthorized: boolean;
  /** A client certificate chain with more intermediates than this does not count as verified (tls-ccert-vd). */
  readonly verifyDepth?: number;
  /** The CA certificates the listener trusts, to tell a certificate they issued directly (depth 0). */
  readonly trustAnchors?: readonly X509Certificate[];
}

export type HandshakeOutcome =
  | {
      readonly ok: true;
      readonly version: string;
      readonly cipher: string;
      /** The client certificate's subject, its issuer, and whether it verified (only when one was asked for). */
      readonly peer?: string;
      readonly peerIssuer?: string;
      readonly peerVerified?: boolean;
      /** The name the client asked for (SNI). */
      readonly servername?: string;
    }
  | { readonly ok: false; readonly reason: 'timeout' | 'disconnect' | 'error'; readonly error: string };

export interface Handshake {
  /** The TLS socket, to read and write once `done` says ok. */
  readonly socket: TLSSocket;
  readonly done: Promise<HandshakeOutcome>;
}

/** Wrap `raw` (paused, with no listeners of the caller's) and run the handshake within timeoutMs. */
export function serverHandshake(raw: Socket, settings: HandshakeSettings, timeoutMs: number, onRenegotiation: () => void): Handshake {
  const { verifyDepth, trustAnchors, ...tlsOptions } = settings;
  const secure = new TLSSocket(raw, { isServer: true, ...tlsOptions });
  const done = new Promise<HandshakeOutcome>((resolve) => {
    let settled = false;
    const settle = (o: HandshakeOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      secure.off('error', onError);
      secure.off('end', onGone);
      secure.off('close', onGone);
      raw.off('close', onGone);
      if (!o.ok) {
        // Errors after the end (a late reset) must not become uncaught exceptions.
        secure.on('error', () => undefined);
        raw.on('error', () => undefined);
        secure.destroy();
        raw.destroy();
      }
      resolve(o);
    };
    const onError = (e: Error): void => settle({ ok: false, reason: 'error', error: e.message });
    const onGone = (): void => settle({ ok: false, reason: 'disconnect', error: 'the client closed the connection during the TLS handshake' });
    const timer = setTimeout(() => settle({ ok: false, reason: 'timeout', error: `no TLS handshake within ${Math.round(timeoutMs / 1000)} s` }), timeoutMs);
    timer.unref();
    secure.on('error', onError);
    secure.once('end', onGone);
    secure.once('close', onGone);
    raw.once('close', onGone);
    secure.once('secure', () => {
      // `verify`: a client certificate that does not verify against the listener's CA ends the
      // session here (a missing one already failed the handshake), as OpenSMTPD's does.
      const why = settings.requestCert ? (clientCertificateError(secure) ?? chainTooLong(secure, verifyDepth, trustAnchors ?? [])) : null;
      if (settings.rejectUnauthorized && why !== null) return settle({ ok: false, reason: 'error', error: `client certificate not accepted: ${why}` });
      // Node signals every later handshake on this socket with another 'secure'. TLS 1.3 has no
      // renegotiation (its post-handshake messages, such as KeyUpdate, are not one).
      if (secure.getProtocol() !== 'TLSv1.3') secure.on('secure', onRenegotiation);
      const cipher = secure.getCipher();
      const cert = secure.getPeerCertificate();
      const peer = cert && typeof cert.subject === 'object' && cert.subject ? dn(cert.subject) : undefined;
      const issuer = cert && typeof cert.issuer === 'object' && cert.issuer ? dn(cert.issuer) : undefined;
      const servername = typeof (secure as unknown as { servername?: unknown }).servername === 'string' ? (secure as unknown as { servername: string }).servername : undefined;
      settle({
        ok: true,
        version: secure.getProtocol() ?? 'TLS',
        cipher: cipher?.name ?? 'unknown',
        ...(peer ? { peer, ...(issuer ? { peerIssuer: issuer } : {}), ...(settings.requestCert ? { peerVerified: why === null } : {}) } : {}),
        ...(servername ? { servername } : {}),
      });
    });
  });
  return { socket: secure, done };
}

function dn(name: object): string {
  return Object.entries(name)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join('/');
}

/**
 * A verified chain longer than `depth` intermediates (ZMailer's
 * tls-ccert-vd, OpenSSL's verify depth): the reason, else null. A
 * certificate a trusted CA signed itself has none; otherwise the chain
 * the client sent is walked up to a self-signed certificate when Node
 * links it (it does not always, e.g. after an SNI context switch: then at
 * least one intermediate is counted).
 */
function chainTooLong(secure: TLSSocket, depth: number | undefined, anchors: readonly X509Certificate[]): string | null {
  if (depth === undefined) return null;
  const leaf = secure.getPeerX509Certificate();
  if (leaf === undefined) return null;
  if (anchors.some((a) => leaf.checkIssued(a) && leaf.verify(a.publicKey))) return null;
  let cert = secure.getPeerCertificate(true) as { issuerCertificate?: unknown; fingerprint256?: string } | undefined;
  let intermediates = -1;
  const seen = new Set<string>();
  while (cert && typeof cert.fingerprint256 === 'string' && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    intermediates++;
    cert = cert.issuerCertificate as typeof cert;
  }
  // The last certificate walked is the trust anchor (self-signed): not an intermediate.
  intermediates = Math.max(1, intermediates - 1);
  return intermediates > depth ? `chain of ${intermediates} intermediate certificates is longer than the verify depth ${depth}` : null;
}

/**
 * Why the client's certificate did not verify, or null if it did. Node
 * computes `authorized` only for sockets a tls.Server accepted, not for one
 * wrapped by hand as STARTTLS needs (the handshake then completes whatever
 * the certificate): the verification result is read from the TLS handle, as
 * Node's own server does. Should that ever be missing, the answer is "not
 * verified": this check fails closed.
 */
function clientCertificateError(secure: TLSSocket): string | null {
  const handle = (secure as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  if (typeof handle?.verifyError !== 'function') return 'cannot be verified';
  const err = handle.verifyError();
  if (err !== null) return err.code ?? err.message;
  return secure.getPeerX509Certificate() === undefined ? 'none presented' : null;
}
