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
 */
import { Readable } from 'node:stream';
import { KeyTable } from './keys.js';
import { signMessage, type SignAnswer } from './sign-core.js';
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

export class OutboundSigner {
  constructor(
    private readonly keys: KeyTable,
    /** Sign in worker threads; undefined: on this thread (measurements, tests). */
    private readonly pool: SignPool | undefined,
  ) {}

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
    const domain = fromDomain(msg);
    if (domain === undefined) return { kind: 'unsigned', open: () => Readable.from([msg]), why: 'no single From: address' };
    const k = this.keys.keysFor(domain);
    if (k.kind === 'none') return { kind: 'unsigned', open: () => Readable.from([msg]), why: `no key for ${domain}` };
    if (k.kind === 'error') return { kind: 'error', reason: `DKIM keys for ${domain}: ${k.reason}` };
    const a = await this.sign(msg, k.keys);
    if ('error' in a) return { kind: 'error', reason: `DKIM signing for ${domain} failed: ${a.error}` };
    const head = Buffer.from(a.header, 'latin1');
    return { kind: 'signed', open: () => Readable.from([head, msg]), signatures: k.keys.map((x) => `${x.selector}._domainkey.${x.domain}`).join(',') };
  }

  private sign(msg: Buffer, keys: readonly SigningKey[]): Promise<SignAnswer> {
    return this.pool ? this.pool.sign(msg, keys) : signMessage(msg, keys).catch((e: unknown) => ({ error: (e as Error).message }));
  }
}
