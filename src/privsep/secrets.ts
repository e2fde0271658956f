/*
 * privsep/secrets.ts — files the SMTP side reads that only root may read:
 * certificate keys, certificates, CA files, the HTTP listener's token files.
 *
 * When smtpd runs as root, its SMTP side (daemon/privsep/child.ts) reads
 * them as root just before it gives up root, and again through the
 * privileged parent at reload (the parent reads what its own reading of
 * the configuration names, never a path the child chose). Everywhere else
 * this is readFileSync: a daemon not started as root reads as itself.
 */
import { readFileSync } from 'node:fs';

let overlay: ReadonlyMap<string, Buffer> | undefined;

/** The contents of a secret file: the copy read while root, else the file itself. */
export function readSecret(path: string): Buffer {
  return overlay?.get(path) ?? readFileSync(path);
}

/** The same, as UTF-8 text. */
export function readSecretText(path: string): string {
  return readSecret(path).toString('utf8');
}

/** Read every path now (as root, before the drop); one that cannot be read is left to fail later, where it is used. */
export function preloadSecrets(paths: Iterable<string>): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const p of paths) {
    try {
      m.set(p, readFileSync(p));
    } catch {
      /* reported by the code that needs it */
    }
  }
  return m;
}

/** Use these copies from now on (they replace the previous set). */
export function setSecrets(files: ReadonlyMap<string, Buffer>): void {
  overlay = files;
}

/** The secret files a configuration names: pki certificates and keys, CA files, HTTP token files. */
export function secretPaths(config: {
  readonly pki: ReadonlyMap<string, { readonly cert?: string; readonly key?: string }>;
  readonly ca?: ReadonlyMap<string, { readonly cert?: string }>;
  readonly listeners?: readonly { readonly pki?: string }[];
  readonly http?: { readonly tokens: readonly { readonly file?: string }[] };
}): string[] {
  const out = new Set<string>();
  for (const p of config.pki.values()) {
    if (p.cert !== undefined) out.add(p.cert);
    if (p.key !== undefined) out.add(p.key);
  }
  for (const c of config.ca?.values() ?? []) if (c.cert !== undefined) out.add(c.cert);
  // OpenSMTPD 4.6's `certificate NAME` without a pki of that name: /etc/mail/certs/NAME.crt and .key (tls/contexts.ts).
  for (const l of config.listeners ?? []) {
    if (l.pki === undefined || [...config.pki.keys()].some((k) => k.toLowerCase() === l.pki?.toLowerCase())) continue;
    out.add(`/etc/mail/certs/${l.pki}.crt`);
    out.add(`/etc/mail/certs/${l.pki}.key`);
  }
  for (const t of config.http?.tokens ?? []) if (t.file !== undefined) out.add(t.file);
  return [...out];
}
