/*
 * tls/contexts.ts — server certificates, chosen by listener and by SNI.
 *
 * `pki NAME cert "F"` / `pki NAME key "F"` declare certificates; a listener
 * uses `pki NAME` (modern) or `certificate NAME` (OpenSMTPD 4.6: the files
 * /etc/mail/certs/NAME.crt and NAME.key when no pki of that name exists).
 * Without either, the pki named like the listener's hostname or the server
 * hostname, else the first one. With several pki, the client's SNI name
 * picks the one of that name (or "*.domain"). Minimum TLS 1.2 unless
 * `smtp tls-min-version TLSv1.3`; `smtp ciphers` overrides Node's modern
 * default list. reload() re-reads every file (SIGHUP / smtpctl reload).
 */
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Config, Listener, Pki } from '../config/model.js';

export class TlsError extends Error {}

interface Loaded {
  readonly name: string;
  readonly context: SecureContext;
}

export class TlsContexts {
  private byName = new Map<string, Loaded>();

  constructor(private readonly config: Config) {
    this.reload();
  }

  /** (Re-)read every certificate; throws TlsError naming the file when one cannot be used. */
  reload(): void {
    const next = new Map<string, Loaded>();
    for (const pki of this.config.pki.values()) next.set(pki.name.toLowerCase(), this.load(pki));
    for (const l of this.config.listeners) {
      if (l.tls === 'none' || l.pki === undefined || next.has(l.pki.toLowerCase())) continue;
      // OpenSMTPD 4.6 `certificate NAME`: /etc/mail/certs/NAME.crt and .key
      next.set(l.pki.toLowerCase(), this.load({ name: l.pki, pos: l.pos, cert: `/etc/mail/certs/${l.pki}.crt`, key: `/etc/mail/certs/${l.pki}.key` }));
    }
    const previous = this.byName;
    this.byName = next;
    for (const l of this.config.listeners) {
      if (l.tls !== 'none' && !this.defaultFor(l)) {
        this.byName = previous;
        throw new TlsError(`${l.pos.file}:${l.pos.line}: listen on ${l.on}: TLS needs a certificate (add a "pki" and "pki NAME" to the listener)`);
      }
    }
  }

  /** Options for a server-side TLSSocket on this listener. */
  serverOptions(l: Listener): { secureContext: SecureContext; SNICallback: (name: string, cb: (e: Error | null, ctx?: SecureContext) => void) => void; requestCert: boolean; rejectUnauthorized: boolean } | undefined {
    const def = this.defaultFor(l);
    if (!def) return undefined;
    return {
      secureContext: def.context,
      SNICallback: (servername, cb) => cb(null, this.forServername(servername)?.context ?? def.context),
      requestCert: l.tlsVerify === true,
      rejectUnauthorized: false,
    };
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

  private load(pki: Pki): Loaded {
    if (!pki.cert || !pki.key) throw new TlsError(`${pki.pos.file}:${pki.pos.line}: pki ${pki.name} needs both "cert" and "key"`);
    let cert: Buffer;
    let key: Buffer;
    try {
      cert = readFileSync(pki.cert);
      key = readFileSync(pki.key);
    } catch (e) {
      throw new TlsError(`${pki.pos.file}:${pki.pos.line}: pki ${pki.name}: ${(e as Error).message}`);
    }
    try {
      const context = createSecureContext({
        cert,
        key,
        minVersion: this.config.smtp.tlsMinVersion ?? 'TLSv1.2',
        ...(this.config.smtp.ciphers !== undefined ? { ciphers: this.config.smtp.ciphers } : {}),
        honorCipherOrder: true,
      });
      return { name: pki.name, context };
    } catch (e) {
      throw new TlsError(`${pki.pos.file}:${pki.pos.line}: pki ${pki.name}: ${(e as Error).message}`);
    }
  }
}
