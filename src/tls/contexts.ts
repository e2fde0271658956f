/*
 * tls/contexts.ts — server certificates, chosen by listener and by SNI.
 *
 * `pki NAME cert "F"` / `pki NAME key "F"` declare certificates; a listener
 * uses `pki NAME` (modern) or `certificate NAME` (OpenSMTPD 4.6: the files
 * /etc/mail/certs/NAME.crt and NAME.key when no pki of that name exists).
 * Without either, the pki named like the listener's hostname or the server
 * hostname, else the first one. With several pki, the client's SNI name
 * picks the one of that name (or "*.domain"). Minimum TLS 1.2 unless
 * `smtp tls-min-version TLSv1.3`; `smtp ciphers` overrides the default
 * suites (Mozilla "intermediate", tls/ciphers.ts); client-initiated
 * renegotiation is refused. reload() re-reads every file (SIGHUP / smtpctl reload).
 *
 * `tls-require verify` / `smtps verify` require a client certificate that
 * verifies against the listener's `ca NAME` (`ca NAME cert "FILE"`), or
 * against the well-known CAs Node trusts when the listener names none: the
 * handshake fails otherwise, and the session ends there (as OpenSMTPD's
 * "SSL certificate check failed"). A listener's `ca` makes one context per
 * certificate that trusts it, SNI choices included.
 */
import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { readSecret } from '../privsep/secrets.js';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Config, Listener, Pki } from '../config/model.js';
import { SERVER_SECURE_OPTIONS, serverCiphers } from './ciphers.js';
import type { HandshakeSettings } from './handshake.js';

export class TlsError extends Error {}

interface Loaded {
  readonly name: string;
  readonly context: SecureContext;
}

/** While reloading: the files too, for the contexts that trust a listener's CA (the key is not kept after). */
interface Read extends Loaded {
  readonly cert: Buffer;
  readonly key: Buffer;
}

export class TlsContexts {
  private byName = new Map<string, Loaded>();
  /** CA name → pki name (lower case) → a context that also trusts that CA for client certificates. */
  private withCa = new Map<string, Map<string, SecureContext>>();
  /** The CA certificates of each `ca`, for the verify depth (tls-ccert-vd). */
  private anchors = new Map<string, X509Certificate[]>();

  constructor(private readonly config: Config) {
    this.reload();
  }

  /** (Re-)read every certificate; throws TlsError naming the file when one cannot be used. */
  reload(): void {
    const next = new Map<string, Read>();
    for (const pki of this.config.pki.values()) next.set(pki.name.toLowerCase(), this.load(pki));
    for (const l of this.config.listeners) {
      if (l.tls === 'none' || l.pki === undefined || next.has(l.pki.toLowerCase())) continue;
      // OpenSMTPD 4.6 `certificate NAME`: /etc/mail/certs/NAME.crt and .key
      next.set(l.pki.toLowerCase(), this.load({ name: l.pki, pos: l.pos, cert: `/etc/mail/certs/${l.pki}.crt`, key: `/etc/mail/certs/${l.pki}.key` }));
    }
    // Read the CAs before anything is replaced: a reload that fails keeps the old contexts whole.
    const withCa = this.loadCas(next);
    const previous = this.byName;
    this.byName = new Map([...next].map(([n, x]) => [n, { name: x.name, context: x.context }]));
    for (const l of this.config.listeners) {
      if (l.tls !== 'none' && !this.defaultFor(l)) {
        this.byName = previous;
        throw new TlsError(`${l.pos.file}:${l.pos.line}: listen on ${l.on}: TLS needs a certificate (add a "pki" and "pki NAME" to the listener)`);
      }
    }
    this.withCa = withCa;
  }

  /** Options for a server-side TLSSocket on this listener. */
  serverOptions(l: Listener): HandshakeSettings | undefined {
    const def = this.defaultFor(l);
    if (!def) return undefined;
    const verify = l.tlsVerify === true;
    const asks = verify || l.tlsAskCert === true;
    const trusting = asks && l.ca !== undefined ? this.withCa.get(l.ca) : undefined;
    const contextOf = (x: Loaded): SecureContext => trusting?.get(x.name.toLowerCase()) ?? x.context;
    return {
      secureContext: contextOf(def),
      SNICallback: (servername, cb) => cb(null, contextOf(this.forServername(servername) ?? def)),
      requestCert: asks,
      rejectUnauthorized: verify,
      ...(l.tlsVerifyDepth !== undefined ? { verifyDepth: l.tlsVerifyDepth, trustAnchors: l.ca !== undefined ? (this.anchors.get(l.ca) ?? []) : [] } : {}),
    };
  }

  /** For each CA a verifying listener names: a context per certificate that trusts it. */
  private loadCas(certs: ReadonlyMap<string, Read>): Map<string, Map<string, SecureContext>> {
    const out = new Map<string, Map<string, SecureContext>>();
    for (const l of this.config.listeners) {
      if (l.tls === 'none' || (l.tlsVerify !== true && l.tlsAskCert !== true) || l.ca === undefined || out.has(l.ca)) continue;
      const ca = this.config.ca?.get(l.ca);
      if (ca === undefined) throw new TlsError(`${l.pos.file}:${l.pos.line}: listen on ${l.on}: no ca named ${l.ca}`);
      let pem: Buffer;
      try {
        pem = Buffer.concat([...(ca.cert !== '' ? [readSecret(ca.cert)] : []), ...(ca.dir !== undefined ? caFolder(ca.dir) : [])]);
      } catch (e) {
        throw new TlsError(`${ca.pos.file}:${ca.pos.line}: ca ${ca.name}: ${(e as Error).message}`);
      }
      const contexts = new Map<string, SecureContext>();
      for (const [name, x] of certs) {
        try {
          contexts.set(name, this.context(x.cert, x.key, pem));
        } catch (e) {
          throw new TlsError(`${ca.pos.file}:${ca.pos.line}: ca ${ca.name}: ${(e as Error).message}`);
        }
      }
      out.set(l.ca, contexts);
      this.anchors.set(l.ca, pemCertificates(pem));
    }
    return out;
  }

  private context(cert: Buffer, key: Buffer, ca?: Buffer): SecureContext {
    return createSecureContext({
      cert,
      key,
      ...(ca !== undefined ? { ca } : {}),
      minVersion: this.config.smtp.tlsMinVersion ?? 'TLSv1.2',
      ciphers: serverCiphers(this.config.smtp.ciphers),
      // ECDHE groups as Mozilla's intermediate profile; DHE with OpenSSL's well-known group sized to the key (2048 bits for RSA 2048).
      ecdhCurve: 'X25519:prime256v1:secp384r1',
      dhparam: 'auto',
      secureOptions: SERVER_SECURE_OPTIONS,
      honorCipherOrder: true,
    });
  }

  private defaultFor(l: Listener): Loaded | undefined {
    const names = [l.pki, l.hostname, this.config.hostname, l.on].filter((x): x is string => x !== undefined).map((x) => x.toLowerCase());
    for (const n of names) {
      const hit = this.byName.get(n);
      if (hit) return hit;
    }
    return this.byName.values().next().value;
  }

  private forServername(name: string): Loaded | undefined {
    const n = name.toLowerCase();
    const exact = this.byName.get(n);
    if (exact) return exact;
    const dot = n.indexOf('.');
    return dot > 0 ? this.byName.get(`*${n.slice(dot)}`) : undefined;
  }

  private load(pki: Pki): Read {
    if (!pki.cert || !pki.key) throw new TlsError(`${pki.pos.file}:${pki.pos.line}: pki ${pki.name} needs both "cert" and "key"`);
    let cert: Buffer;
    let key: Buffer;
    try {
      cert = readSecret(pki.cert);
      key = readSecret(pki.key);
    } catch (e) {
      throw new TlsError(`${pki.pos.file}:${pki.pos.line}: pki ${pki.name}: ${(e as Error).message}`);
    }
    try {
      return { name: pki.name, context: this.context(cert, key), cert, key };
    } catch (e) {
      throw new TlsError(`${pki.pos.file}:${pki.pos.line}: pki ${pki.name}: ${(e as Error).message}`);
    }
  }
}

/**
 * The CA certificates in a folder (OpenSSL's CApath, ZMailer's tls-CApath):
 * every regular file holding a PEM certificate, hashed names (c_rehash's
 * "5d30f3c5.0" links) and plain ".pem"/".crt" files alike, each read once.
 */
function caFolder(dir: string): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    let real: string;
    try {
      real = realpathSync(path);
      if (!statSync(real).isFile() || seen.has(real)) continue;
    } catch {
      continue;
    }
    seen.add(real);
    const text = readFileSync(real);
    if (text.includes('-----BEGIN CERTIFICATE-----')) out.push(text, Buffer.from('\n'));
  }
  return out;
}

/** Every certificate of a PEM bundle (text that is not one is skipped). */
function pemCertificates(pem: Buffer): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const m of pem.toString('latin1').matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)) {
    try {
      out.push(new X509Certificate(m[0]));
    } catch {
      /* not a certificate OpenSSL reads: the context creation said so already */
    }
  }
  return out;
}
