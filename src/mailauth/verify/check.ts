/*
 * mailauth/verify/check.ts — the checks of one received message.
 *
 * The content reaches the DKIM verifier (mailauth's, a stream: body hashes
 * as the bytes arrive, no second read) while the front door receives it.
 * Meanwhile the content is held here, not stored: the Authentication-
 * Results field must go above it, and it is known only at the end. At the
 * end the held content is released, Authentication-Results first and any
 * field forging our authserv-id removed (own-results.ts).
 *
 * A message larger than `holdLimit` is released as soon as it passes the
 * limit (memory stays bounded): it is still checked, logged and refused or
 * held as the results say, but gets no Authentication-Results field (the
 * log line says `ar=omitted`).
 */
import type { SPFResult } from 'mailauth';
import type { MailAuthVerifyOptions } from '../../config/mailauth-options.js';
import { arc, DkimVerifier, evaluateDmarc, type DkimVerifierStream, type MailAuthResolver } from '../lib.js';
import { stripOwnResults } from './own-results.js';
import { decide, resultsHeader, summary, type AuthResults, type AuthVerdict } from './verdict.js';

/** How long the checks of one message may take in all before they count as a temporary failure. */
export const CHECK_DEADLINE_MS = 30_000;

export interface CheckContext {
  readonly opts: MailAuthVerifyOptions;
  readonly authservId: string;
  readonly resolver: MailAuthResolver;
  readonly holdLimit: number;
  /** SPF for this message (verifier.ts: the same as at MAIL). */
  readonly spf: () => Promise<SPFResult | undefined>;
  readonly clientAddress: string;
  readonly deadlineMs?: number;
}

export interface CheckOutcome {
  readonly verdict: AuthVerdict;
  /** What to store now, in order: Authentication-Results (unless omitted), then the held content. */
  readonly release: readonly Buffer[];
  /** Fields for the mail log's one line. */
  readonly fields: Record<string, string | number>;
}

export class MessageCheck {
  private readonly dkim: DkimVerifierStream;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private passthrough = false;
  private removed = 0;
  private streamError: Error | undefined;
  private readonly finished: Promise<void>;

  constructor(private readonly ctx: CheckContext) {
    this.dkim = new DkimVerifier({ resolver: ctx.resolver, minBitLength: ctx.opts.minKeyBits });
    this.finished = new Promise<void>((resolve) => {
      this.dkim.once('finish', () => resolve());
      this.dkim.once('error', (e: Error) => {
        this.streamError = e;
        resolve();
      });
    });
  }

  /** Content as it arrives; returns what may be stored now (nothing while it is held). */
  push(chunk: Buffer): readonly Buffer[] {
    if (this.streamError === undefined) this.dkim.write(chunk);
    if (this.passthrough) return [chunk];
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes <= this.ctx.holdLimit) return [];
    this.passthrough = true;
    return this.takeHeld();
  }

  /** The end of the message: the results, the verdict and what to store. */
  async finish(): Promise<CheckOutcome> {
    const deadlineMs = this.ctx.deadlineMs ?? CHECK_DEADLINE_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<AuthResults>((resolve) => {
      timer = setTimeout(() => resolve({ spf: undefined, dkim: [], arc: undefined, dmarc: undefined, note: `checks took longer than ${deadlineMs} ms` }), deadlineMs);
    });
    const results = await Promise.race([this.run(), late]).finally(() => clearTimeout(timer));
    const timedOut = results.note?.startsWith('checks took') === true;
    let verdict = decide(results, this.ctx.opts);
    if (timedOut && (this.ctx.opts.dmarcReject || this.ctx.opts.quarantine === 'hold')) {
      verdict = { kind: 'refuse', reply: { code: 451, enhanced: '4.7.0', lines: ['Sender authentication could not be completed in time, try again later'] }, reason: results.note ?? 'timeout' };
    }
    const release: Buffer[] = [];
    const fields: Record<string, string | number> = { ...summary(results) };
    if (this.passthrough) fields.ar = 'omitted';
    else release.push(Buffer.from(resultsHeader(this.ctx.authservId, results), 'latin1'));
    release.push(...this.takeHeld());
    if (this.removed > 0) fields.removed = this.removed;
    return { verdict, release, fields };
  }

  /** The message was aborted: stop the verifier. */
  abort(): void {
    this.held = [];
    this.dkim.destroy();
  }

  private takeHeld(): Buffer[] {
    if (this.held.length === 0) return [];
    const all = this.held.length === 1 ? (this.held[0] as Buffer) : Buffer.concat(this.held);
    this.held = [];
    this.heldBytes = 0;
    const s = stripOwnResults(all, this.ctx.authservId);
    this.removed += s.removed;
    return [s.content];
  }

  private async run(): Promise<AuthResults> {
    const spfP = this.ctx.spf().catch(() => undefined);
    if (this.streamError === undefined) this.dkim.end();
    await this.finished;
    const spfResult = await spfP;
    if (this.streamError !== undefined) {
      return { spf: spfResult, dkim: [], arc: undefined, dmarc: undefined, note: `message not parseable for DKIM: ${this.streamError.message.slice(0, 120)}` };
    }
    const dkim = this.dkim.results ?? [];
    const { resolver, opts } = this.ctx;
    const arcResult = await arc(this.dkim.arc, { resolver, minBitLength: opts.minKeyBits, ip: this.ctx.clientAddress }).catch(() => undefined);
    let dmarcResult;
    let note: string | undefined;
    if (this.dkim.headerFrom) {
      const ev = await evaluateDmarc({
        headerFrom: this.dkim.headerFrom,
        fromFields: this.dkim.fromFields,
        spfDomains: spfResult?.status.result === 'pass' && spfResult.domain ? [spfResult.domain] : [],
        dkimDomains: dkim.filter((r) => r.status.result === 'pass').map((r) => ({ id: r.id, domain: r.signingDomain, aligned: r.status.aligned, underSized: r.status.underSized })),
        ...(arcResult ? { arcResult } : {}),
        resolver,
      });
      dmarcResult = ev.response || undefined;
      if (!ev.response && ev.reason) note = `dmarc not evaluated: ${ev.reason}`;
    }
    return { spf: spfResult, dkim, arc: arcResult, dmarc: dmarcResult, ...(note !== undefined ? { note } : {}) };
  }
}
