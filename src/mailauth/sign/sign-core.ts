/*
 * mailauth/sign/sign-core.ts — DKIM-sign one message with its keys
 * (RFC 6376; Ed25519: RFC 8463), relaxed/relaxed, with mailauth's signer
 * and its default list of header fields: our own signer (fast-sign.ts) for
 * the plain message, mailauth's for the rest and for ARC sets. Runs in a
 * worker (sign-worker.ts) or, when asked, on the calling thread.
 */
import { dkimSign, sealMessage } from '../lib.js';
import { fastSign } from './fast-sign.js';
import type { SigningKey } from './keys.js';

/** An ARC set to add (RFC 8617): the sealer's key, the chain's state when received, our results. */
export interface SealRequest {
  readonly key: SigningKey;
  readonly cv: string;
  readonly authResults: string;
}

export interface SignJob {
  readonly id: number;
  readonly message: Uint8Array;
  readonly keys: readonly SigningKey[];
  readonly seal?: SealRequest;
}

export type SignAnswer = { readonly header: string } | { readonly error: string };

export async function signMessage(message: Buffer, keys: readonly SigningKey[], seal?: SealRequest): Promise<SignAnswer> {
  const dkim = keys.length > 0 ? await dkimOnly(message, keys) : { header: '' };
  if (seal === undefined || 'error' in dkim) return dkim;
  const k = seal.key;
  const arcSet = await sealMessage(Buffer.concat([Buffer.from(dkim.header, 'latin1'), message]), {
    signingDomain: k.domain,
    selector: k.selector,
    privateKey: k.pem,
    algorithm: k.algorithm,
    cv: seal.cv,
    authResults: seal.authResults,
  });
  if (arcSet.length === 0) return { error: 'ARC sealing made no ARC set' };
  return { header: arcSet.toString('latin1') + dkim.header };
}

async function dkimOnly(message: Buffer, keys: readonly SigningKey[]): Promise<SignAnswer> {
  const fast = await fastSign(message, keys);
  if (fast !== undefined) return { header: fast };
  const r = await dkimSign(message, {
    canonicalization: 'relaxed/relaxed',
    signatureData: keys.map((k) => ({ signingDomain: k.domain, selector: k.selector, privateKey: k.pem, algorithm: k.algorithm })),
  });
  const errors = (r.errors ?? []) as { error?: string; selector?: string; signingDomain?: string }[];
  if (errors.length > 0) return { error: errors.map((e) => `${e.selector ?? '?'}._domainkey.${e.signingDomain ?? '?'}: ${e.error ?? 'signing failed'}`).join('; ') };
  if (!r.signatures) return { error: 'no signature made' };
  return { header: r.signatures.endsWith('\r\n') ? r.signatures : `${r.signatures}\r\n` };
}
