/*
 * mailauth/sign/keys.ts — the DKIM keys of a sender domain, from the
 * table `mailauth sign <table>` names:
 *
 *   example.org   rsa2026:/etc/mail/dkim/example.org.rsa.pem, ed2026:/etc/mail/dkim/example.org.ed25519.pem
 *
 * One or more "selector:keyfile" entries (commas or spaces between them):
 * each is one signature, so an RSA and an Ed25519 key give dual signing
 * (RFC 8463 §4). The key type is read from the PEM file (RSA or Ed25519,
 * PKCS#8 or PKCS#1); RSA keys shorter than 1024 bits are refused (RFC 8301
 * §3.2), and key files are re-read when they change (checked at most once
 * a minute). A domain not in the table is not signed; a subdomain of a
 * listed domain uses its parent's keys (d= the parent: still aligned).
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Lookup } from '../../table/table.js';

export interface SigningKey {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: 'rsa-sha256' | 'ed25519-sha256';
  /** PKCS#8 PEM. */
  readonly pem: string;
}

export type KeyAnswer = { readonly kind: 'keys'; readonly keys: readonly SigningKey[] } | { readonly kind: 'none' } | { readonly kind: 'error'; readonly reason: string };

const RECHECK_MS = 60_000;
const MIN_RSA_BITS = 1024;
const MAX_KEY_FILE = 64 * 1024;

interface CachedFile {
  readonly mtimeMs: number;
  readonly size: number;
  readonly checked: number;
  readonly value: { readonly pem: string; readonly algorithm: SigningKey['algorithm'] } | { readonly error: string };
}

export class KeyTable {
  private readonly files = new Map<string, CachedFile>();

  constructor(
    private readonly lookup: (key: string) => Lookup,
    private readonly now: () => number = Date.now,
  ) {}

  /** The keys for mail whose From: domain is `domain` (or a parent domain's). */
  keysFor(domain: string): KeyAnswer {
    const labels = domain.toLowerCase().replace(/\.$/, '').split('.');
    for (let i = 0; i < labels.length - 1; i++) {
      const d = labels.slice(i).join('.');
      const r = this.lookup(d);
      if (r.kind === 'error') return { kind: 'error', reason: r.reason };
      if (r.kind === 'found') return this.parse(d, r.value);
    }
    return { kind: 'none' };
  }

  private parse(domain: string, value: string): KeyAnswer {
    const keys: SigningKey[] = [];
    for (const entry of value.split(/[\s,]+/).filter((e) => e !== '')) {
      const colon = entry.indexOf(':');
      const selector = colon > 0 ? entry.slice(0, colon) : '';
      const path = entry.slice(colon + 1);
      if (!/^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(selector) || !path.startsWith('/')) {
        return { kind: 'error', reason: `key entry "${entry}" for ${domain} is not "selector:/path/to/key.pem"` };
      }
      const f = this.file(path);
      if ('error' in f) return { kind: 'error', reason: `key ${selector} of ${domain}: ${f.error}` };
      keys.push({ domain, selector, algorithm: f.algorithm, pem: f.pem });
    }
    return keys.length > 0 ? { kind: 'keys', keys } : { kind: 'error', reason: `no keys listed for ${domain}` };
  }

  /** A key file, read again when it changed (checked at most once a minute). */
  file(path: string): CachedFile['value'] {
    const at = this.now();
    const hit = this.files.get(path);
    if (hit !== undefined && at - hit.checked < RECHECK_MS) return hit.value;
    let st;
    try {
      st = statSync(path);
    } catch (e) {
      return this.keep(path, { mtimeMs: 0, size: 0, checked: at, value: { error: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` } });
    }
    if (hit !== undefined && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return this.keep(path, { ...hit, checked: at });
    return this.keep(path, { mtimeMs: st.mtimeMs, size: st.size, checked: at, value: readKey(path, st.size) });
  }

  private keep(path: string, c: CachedFile): CachedFile['value'] {
    this.files.set(path, c);
    return c.value;
  }
}

/** A private key file as PKCS#8 PEM with its DKIM algorithm, or why it cannot sign. */
export function readKey(path: string, size: number): CachedFile['value'] {
  if (size > MAX_KEY_FILE) return { error: `${path} is larger than ${MAX_KEY_FILE} bytes: not a key` };
  try {
    const key = createPrivateKey(readFileSync(path));
    const type = key.asymmetricKeyType;
    if (type === 'ed25519') return { pem: key.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'ed25519-sha256' };
    if (type === 'rsa') {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) return { error: `${path}: an RSA key of ${bits} bits is too short (at least ${MIN_RSA_BITS}, RFC 8301)` };
      return { pem: key.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'rsa-sha256' };
    }
    return { error: `${path}: a ${type ?? 'unknown'} key; DKIM signs with RSA or Ed25519` };
  } catch (e) {
    return { error: `${path}: not a private key (${(e as Error).message})` };
  }
}
