/*
 * mailauth/lib.ts — the parts of the `mailauth` package Postern uses, typed.
 *
 * Postern calls mailauth's verifiers one by one (DKIM as a stream while the
 * message arrives, SPF, ARC, DMARC) rather than its authenticate(): that
 * also runs BIMI, whose HTTP client (undici) needs Node ≥ 22.19, and it
 * would look up SPF again after the check at MAIL. The package is pinned
 * to an exact version (package.json) since these are its lib/ modules.
 * Loading it here also makes this thread parse each key once
 * (key-cache.ts).
 */
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import type { ARCResult, DKIMResult, DKIMSignResult, DMARCResult, SPFOptions, SPFResult } from 'mailauth';

import { cacheParsedKeys } from './key-cache.js';

const require = createRequire(import.meta.url);
cacheParsedKeys();

/** (name, rrtype) → records, rejecting with a Node DNS error code (ENOTFOUND, ENODATA, ETIMEOUT …). */
export type MailAuthResolver = ((name: string, rrtype: string) => Promise<unknown[]>) & {
  /** The cached answer behind a lookup while it is fresh (dns/ttl-cache.ts entry()); absent: nothing is remembered (answer-memo.ts). */
  readonly entry?: (name: string, rrtype: string) => object | undefined;
};

/** mailauth's streaming DKIM verifier (lib/dkim/dkim-verifier.js): a Writable; results after 'finish'. */
export interface DkimVerifierStream extends Writable {
  readonly results: DKIMResult[];
  readonly headerFrom: string[];
  readonly fromFields: number;
  readonly arc: unknown;
}

interface DkimVerifierCtor {
  new (opts: { resolver: MailAuthResolver; minBitLength: number; sender?: string }): DkimVerifierStream;
}

export interface DmarcEvaluation {
  readonly response: DMARCResult | false;
  readonly reason?: string;
}

export const DkimVerifier = (require('mailauth/lib/dkim/dkim-verifier.js') as { DkimVerifier: DkimVerifierCtor }).DkimVerifier;

export const spf = (require('mailauth/lib/spf/index.js') as { spf: (o: SPFOptions) => Promise<SPFResult> }).spf;

export const arc = (require('mailauth/lib/arc/index.js') as { arc: (data: unknown, o: { resolver: MailAuthResolver; minBitLength: number; ip?: string }) => Promise<ARCResult> }).arc;

export const evaluateDmarc = (
  require('mailauth/lib/dmarc/verify.js') as {
    evaluateDmarc: (o: {
      headerFrom: string[];
      fromFields: number;
      spfDomains: string[];
      dkimDomains: { id?: string; domain?: string; aligned?: string | false; underSized?: number }[];
      arcResult?: ARCResult;
      resolver: MailAuthResolver;
    }) => Promise<DmarcEvaluation>;
  }
).evaluateDmarc;

/** One signature to make: mailauth's signatureData entry. */
export interface SignatureData {
  readonly signingDomain: string;
  readonly selector: string;
  readonly privateKey: string;
  readonly algorithm?: string;
  readonly canonicalization?: string;
}

export const dkimSign = (
  require('mailauth/lib/dkim/sign.js') as {
    dkimSign: (input: Buffer, o: { canonicalization?: string; signatureData: SignatureData[]; signTime?: Date }) => Promise<DKIMSignResult>;
  }
).dkimSign;

export interface SealData {
  readonly signingDomain: string;
  readonly selector: string;
  readonly privateKey: string;
  readonly algorithm?: string;
  readonly cv: string;
  readonly authResults: string;
}

export const sealMessage = (require('mailauth/lib/arc/index.js') as { sealMessage: (input: Buffer, seal: SealData) => Promise<Buffer> }).sealMessage;
