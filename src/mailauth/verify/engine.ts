/*
 * mailauth/verify/engine.ts — DKIM, ARC and DMARC of one message, and at
 * the end ARC and DMARC (with the SPF result given from outside: SPF needs
 * no content) complete the results.
 *
 * A message of up to FAST_MAX_BYTES is gathered and, at its end, checked
 * by our own DKIM verifier for the common case (fast-dkim.ts: a pass only,
 * no ARC fields); when that declines, by mailauth's streaming verifier on
 * the same bytes, as is a larger message, fed chunk by chunk as it
 * arrives (body hashes as they come). ARC without ARC fields is mailauth's
 * answer for an empty chain.
 *
 * InlineEngine runs on the thread that makes it: in a verify worker
 * (verify-worker.ts, the daemon's way) or on the event loop (tests, the
 * bench). RemoteEngine (verify-pool.ts) has the same shape.
 */
import type { ARCResult, SPFResult } from 'mailauth';
import { AnswerMemo } from '../answer-memo.js';
import { arc, DkimVerifier, evaluateDmarc, type DkimVerifierStream, type DmarcEvaluation, type MailAuthResolver } from '../lib.js';
import { fastDkim, type FastDkim } from './fast-dkim.js';
import type { AuthResults } from './verdict.js';

/** Largest message gathered for fast-dkim.ts; a larger one streams into mailauth's verifier. */
export const FAST_MAX_BYTES = 1024 * 1024;

export interface VerifyEngine {
  write(chunk: Buffer): void;
  /** The end of the message; `spf` is the SPF result, when it is known. */
  results(spf: Promise<SPFResult | undefined>): Promise<AuthResults>;
  abort(): void;
}

/** DMARC results per resolver (one per configuration and thread), kept while their DNS answers are. */
const dmarcMemos = new WeakMap<MailAuthResolver, AnswerMemo<DmarcEvaluation>>();

function dmarcMemo(resolver: MailAuthResolver): AnswerMemo<DmarcEvaluation> {
  let m = dmarcMemos.get(resolver);
  if (m === undefined) dmarcMemos.set(resolver, (m = new AnswerMemo()));
  return m;
}

/** The ARC data of a message without ARC fields (the fast path's). */
const NO_CHAIN = Object.freeze({ chain: false, warnings: [] });
/**
 * mailauth's ARC result for NO_CHAIN ({ status: { result: 'none' }, i: 0 }):
 * the same for every message whatever the options (no chain, not strict),
 * read only by DMARC and the results; made once per thread.
 */
let noChainResult: Promise<ARCResult | undefined> | undefined;

export interface EngineOptions {
  readonly resolver: MailAuthResolver;
  readonly minKeyBits: number;
  readonly clientAddress: string;
}

export class InlineEngine implements VerifyEngine {
  /** mailauth's verifier, once the message is too large for the fast path or the fast path declined. */
  private dkim: DkimVerifierStream | undefined;
  private streamError: Error | undefined;
  private finished: Promise<void> | undefined;
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;

  constructor(
    private readonly o: EngineOptions,
    private readonly fastMax = FAST_MAX_BYTES,
  ) {}

  write(chunk: Buffer): void {
    if (this.dkim === undefined) {
      this.gathered.push(chunk);
      this.gatheredBytes += chunk.length;
      if (this.gatheredBytes > this.fastMax) this.stream();
    } else if (this.streamError === undefined) this.dkim.write(chunk);
  }

  abort(): void {
    this.gathered = [];
    this.dkim?.destroy();
  }

  /** On to mailauth's streaming verifier, with what was gathered. */
  private stream(): DkimVerifierStream {
    const dkim = new DkimVerifier({ resolver: this.o.resolver, minBitLength: this.o.minKeyBits });
    this.dkim = dkim;
    this.finished = new Promise<void>((resolve) => {
      dkim.once('finish', () => resolve());
      dkim.once('error', (e: Error) => {
        this.streamError = e;
        resolve();
      });
    });
    const gathered = this.gathered;
    this.gathered = [];
    for (const c of gathered) dkim.write(c);
    return dkim;
  }

  /** The DKIM step: ours when it answers, else mailauth's verifier's (with its ARC data). */
  private async dkimStep(): Promise<(FastDkim & { readonly arc: unknown }) | { readonly error: Error }> {
    if (this.dkim === undefined) {
      const all = this.gathered.length === 1 ? (this.gathered[0] as Buffer) : Buffer.concat(this.gathered, this.gatheredBytes);
      const fast = await fastDkim(all, this.o.resolver, this.o.minKeyBits).catch(() => undefined);
      if (fast !== undefined) return { ...fast, arc: NO_CHAIN };
      this.gathered = [all];
      this.stream();
    }
    const dkim = this.dkim as DkimVerifierStream;
    if (this.streamError === undefined) dkim.end();
    await this.finished;
    if (this.streamError !== undefined) return { error: this.streamError };
    return { results: dkim.results ?? [], headerFrom: dkim.headerFrom, fromFields: dkim.fromFields, arc: dkim.arc };
  }

  async results(spfP: Promise<SPFResult | undefined>): Promise<AuthResults> {
    const step = await this.dkimStep();
    const spf = await spfP.catch(() => undefined);
    if ('error' in step) {
      return { spf, dkim: [], arc: undefined, dmarc: undefined, note: `message not parseable for DKIM: ${step.error.message.slice(0, 120)}` };
    }
    const dkim = step.results;
    const { resolver, minKeyBits } = this.o;
    const arcOf = (data: unknown): Promise<ARCResult | undefined> => arc(data, { resolver, minBitLength: minKeyBits, ip: this.o.clientAddress }).catch(() => undefined);
    const arcResult = await (step.arc === NO_CHAIN ? (noChainResult ??= arcOf(NO_CHAIN)) : arcOf(step.arc));
    if (!step.headerFrom) return { spf, dkim, arc: arcResult, dmarc: undefined };
    const spfDomains = spf?.status.result === 'pass' && spf.domain ? [spf.domain] : [];
    const dkimDomains = dkim.filter((r) => r.status.result === 'pass').map((r) => ({ id: r.id, domain: r.signingDomain, aligned: r.status.aligned, underSized: r.status.underSized }));
    const evaluate = (r: MailAuthResolver): Promise<DmarcEvaluation> => evaluateDmarc({ headerFrom: step.headerFrom, fromFields: step.fromFields, spfDomains, dkimDomains, ...(arcResult ? { arcResult } : {}), resolver: r });
    // Kept while its DNS answers are (answer-memo.ts), without an ARC chain: the result reads nothing else than these inputs.
    const ev =
      arcResult !== undefined && arcResult.status.result !== 'none'
        ? await evaluate(resolver)
        : await dmarcMemo(resolver).get(
            JSON.stringify([step.headerFrom, step.fromFields, spfDomains, dkimDomains.map((d) => [d.domain, d.aligned, d.underSized]), arcResult === undefined]),
            resolver,
            evaluate,
            (e) => e.response === false || e.response.status.result !== 'temperror',
          );
    const note = !ev.response && ev.reason ? `dmarc not evaluated: ${ev.reason}` : undefined;
    return { spf, dkim, arc: arcResult, dmarc: ev.response || undefined, ...(note !== undefined ? { note } : {}) };
  }
}
