/*
 * mailauth/sign/signer.ts — DKIM signatures for mail that leaves through a
 * relay action (MX or smarthost), added by the relay client just before it
 * sends (mta/agent.ts): per sender domain (the From: address's), with the
 * keys of `mailauth sign <table>` (keys.ts), in worker threads
 * (sign-pool.ts). The message is read once, signed, and sent from memory
 * with its DKIM-Signature fields on top, for every host tried.
 *
 * Outcomes: signed; unsigned (no keys for the domain, or no usable From:);
 * or an error (table lookup failed, key unreadable, signer failed), which
 * defers the delivery (4.7.0) rather than send mail its domain's DMARC
 * policy may have refused without the signature.
 *
 * ARC (`mailauth seal`, RFC 8617): a message that carries this server's
 * Authentication-Results field — mail it received from outside and checked,
 * such as mail an alias forwards to another domain — also gets an ARC set
 * on top, carrying those results (cv= from their arc= result), so that the
 * next receiver can trust them when forwarding broke SPF or DKIM.
 */
import { Readable } from 'node:stream';
import { KeyTable } from './keys.js';
import { signMessage, type SealRequest, type SignAnswer } from './sign-core.js';
import { authservId } from '../verify/own-results.js';
import type { SignPool } from './sign-pool.js';
import type { SigningKey } from './keys.js';

export type SignOutcome =
  | { readonly kind: 'signed'; readonly open: () => Readable; readonly signatures: string }
  | { readonly kind: 'unsigned'; readonly open: () => Readable; readonly why: string }
  | { readonly kind: 'error'; readonly reason: string };

/** The header section of a message: the bytes before the first empty line (all of it when there is none). */
function headerSection(msg: Buffer): string {
  const end = msg.indexOf('\r\n\r\n');
  return msg.subarray(0, end < 0 ? Math.min(msg.length, 256 * 1024) : end + 2).toString('latin1');
}

/** The domain of the single address in From: (RFC 5322 §3.6.2), or undefined. */
export function fromDomain(msg: Buffer): string | undefined {
  const m = /(?:^|\r\n)From[ \t]*:((?:[^\r]|\r\n[ \t])*)/i.exec(headerSection(msg));
  if (!m) return undefined;
  const value = (m[1] ?? '').replace(/\r\n[ \t]/g, ' ').replace(/\([^()]*\)/g, '').replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const addrs = [...value.matchAll(/@([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)\s*>?/g)];
  if (addrs.length !== 1) return undefined;
  return (addrs[0]?.[1] ?? '').toLowerCase();
}

/** `mailauth seal`: the sealer's key file and this server's authserv-id. */
export interface SealConfig {
  readonly domain: string;
  readonly selector: string;
  readonly keyFile: string;
  readonly authservId: string;
}

/** The value of this server's Authentication-Results field (after "id;"), and the cv= its arc= result gives. */
export function ownResults(msg: Buffer, id: string): { readonly authResults: string; readonly cv: string } | undefined {
  for (const m of headerSection(msg).matchAll(/(?:^|\r\n)(Authentication-Results[ \t]*:(?:[^\r]|\r\n[ \t])*)/gi)) {
    const field = m[1] ?? '';
    if (authservId(field) !== id) continue;
    const value = field.replace(/\r\n[ \t]+/g, ' ');
    const semi = value.indexOf(';');
    if (semi < 0) return undefined;
    const authResults = value.slice(semi + 1).trim();
    const arc = /(?:^|[;\s])arc=(pass|fail|none)\b/i.exec(authResults)?.[1]?.toLowerCase();
    return { authResults, cv: arc ?? 'none' };
  }
  return undefined;
}

export class OutboundSigner {
  constructor(
    private readonly keys: KeyTable,
    /** Sign in worker threads; undefined: on this thread (measurements, tests). */
    private readonly pool: SignPool | undefined,
    private readonly seal?: SealConfig,
  ) {}

  /** Stop the signing workers (a reload that drops or replaces `mailauth sign|seal`). */
  close(): Promise<void> {
    return this.pool?.close() ?? Promise.resolve();
  }

  /** Read the message and sign it if its From: domain has keys. */
  async prepare(open: () => Readable, maxBytes: number): Promise<SignOutcome> {
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const c of open()) {
        const b = c as Buffer;
        size += b.length;
        if (size > maxBytes) return { kind: 'error', reason: `message larger than ${maxBytes} bytes cannot be signed in memory` };
        chunks.push(b);
      }
    } catch (e) {
      return { kind: 'error', reason: `cannot read the message: ${(e as Error).message}` };
    }
    const msg = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    const seal = this.sealFor(msg);
    if (seal !== undefined && 'error' in seal) return { kind: 'error', reason: seal.error };
    const domain = fromDomain(msg);
    const k = domain === undefined ? ({ kind: 'none' } as const) : this.keys.keysFor(domain);
    if (k.kind === 'error') return { kind: 'error', reason: `DKIM keys for ${domain}: ${k.reason}` };
    const keys = k.kind === 'keys' ? k.keys : [];
    if (keys.length === 0 && seal === undefined) return { kind: 'unsigned', open: () => Readable.from([msg]), why: domain === undefined ? 'no single From: address' : `no key for ${domain}` };
    const a = await this.sign(msg, keys, seal);
    if ('error' in a) return { kind: 'error', reason: `DKIM signing for ${domain ?? 'the message'} failed: ${a.error}` };
    const head = Buffer.from(a.header, 'latin1');
    const made = keys.map((x) => `${x.selector}._domainkey.${x.domain}`);
    if (seal !== undefined) made.push(`arc:${seal.key.selector}._domainkey.${seal.key.domain}`);
    return { kind: 'signed', open: () => Readable.from([head, msg]), signatures: made.join(',') };
  }

  /** The ARC set to add: only to a message with our results, when sealing is on. */
  private sealFor(msg: Buffer): SealRequest | { readonly error: string } | undefined {
    const s = this.seal;
    if (s === undefined) return undefined;
    const own = ownResults(msg, s.authservId);
    if (own === undefined) return undefined;
    const f = this.keys.file(s.keyFile);
    if ('error' in f) return { error: `ARC sealing key: ${f.error}` };
    return { key: { domain: s.domain, selector: s.selector, algorithm: f.algorithm, pem: f.pem }, cv: own.cv, authResults: own.authResults };
  }

  private sign(msg: Buffer, keys: readonly SigningKey[], seal: SealRequest | undefined): Promise<SignAnswer> {
    return this.pool ? this.pool.sign(msg, keys, seal) : signMessage(msg, keys, seal).catch((e: unknown) => ({ error: (e as Error).message }));
  }
}
