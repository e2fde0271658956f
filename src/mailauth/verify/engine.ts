/*
 * mailauth/verify/engine.ts — DKIM, ARC and DMARC of one message, fed as
 * it arrives: mailauth's streaming DKIM verifier takes the chunks (body
 * hashes as they come), and at the end ARC and DMARC (with the SPF result
 * given from outside: SPF needs no content) complete the results.
 *
 * InlineEngine runs on the thread that makes it: in a verify worker
 * (verify-worker.ts, the daemon's way) or on the event loop (tests, the
 * bench). RemoteEngine (verify-pool.ts) has the same shape.
 */
import type { SPFResult } from 'mailauth';
import { arc, DkimVerifier, evaluateDmarc, type DkimVerifierStream, type MailAuthResolver } from '../lib.js';
import type { AuthResults } from './verdict.js';

export interface VerifyEngine {
  write(chunk: Buffer): void;
  /** The end of the message; `spf` is the SPF result, when it is known. */
  results(spf: Promise<SPFResult | undefined>): Promise<AuthResults>;
  abort(): void;
}

export interface EngineOptions {
  readonly resolver: MailAuthResolver;
  readonly minKeyBits: number;
  readonly clientAddress: string;
}

export class InlineEngine implements VerifyEngine {
  private readonly dkim: DkimVerifierStream;
  private streamError: Error | undefined;
  private readonly finished: Promise<void>;

  constructor(private readonly o: EngineOptions) {
    this.dkim = new DkimVerifier({ resolver: o.resolver, minBitLength: o.minKeyBits });
    this.finished = new Promise<void>((resolve) => {
      this.dkim.once('finish', () => resolve());
      this.dkim.once('error', (e: Error) => {
        this.streamError = e;
        resolve();
      });
    });
  }

  write(chunk: Buffer): void {
    if (this.streamError === undefined) this.dkim.write(chunk);
  }

  abort(): void {
    this.dkim.destroy();
  }

  async results(spfP: Promise<SPFResult | undefined>): Promise<AuthResults> {
    if (this.streamError === undefined) this.dkim.end();
    await this.finished;
    const spf = await spfP.catch(() => undefined);
    if (this.streamError !== undefined) {
      return { spf, dkim: [], arc: undefined, dmarc: undefined, note: `message not parseable for DKIM: ${this.streamError.message.slice(0, 120)}` };
    }
    const dkim = this.dkim.results ?? [];
    const { resolver, minKeyBits } = this.o;
    const arcResult = await arc(this.dkim.arc, { resolver, minBitLength: minKeyBits, ip: this.o.clientAddress }).catch(() => undefined);
    if (!this.dkim.headerFrom) return { spf, dkim, arc: arcResult, dmarc: undefined };
    const ev = await evaluateDmarc({
      headerFrom: this.dkim.headerFrom,
      fromFields: this.dkim.fromFields,
      spfDomains: spf?.status.result === 'pass' && spf.domain ? [spf.domain] : [],
      dkimDomains: dkim.filter((r) => r.status.result === 'pass').map((r) => ({ id: r.id, domain: r.signingDomain, aligned: r.status.aligned, underSized: r.status.underSized })),
      ...(arcResult ? { arcResult } : {}),
      resolver,
    });
    const note = !ev.response && ev.reason ? `dmarc not evaluated: ${ev.reason}` : undefined;
    return { spf, dkim, arc: arcResult, dmarc: ev.response || undefined, ...(note !== undefined ? { note } : {}) };
  }
}
