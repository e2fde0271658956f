/*
 * mailauth/verify/check.ts — the checks of one received message.
 *
 * The content reaches the verify engine (engine.ts: mailauth's streaming
 * DKIM verifier, in a worker thread in the daemon) while the front door
 * receives it. Meanwhile the content is held here, not stored: the
 * Authentication-Results field must go above it, and it is known only at
 * the end. At the end the held content is released, Authentication-Results
 * first and any field forging our authserv-id removed (own-results.ts).
 *
 * A message larger than `holdLimit` is released as soon as it passes the
 * limit (memory stays bounded): it is still checked, logged and refused or
 * held as the results say, but gets no Authentication-Results field (the
 * log line says `ar=omitted`).
 */
import type { SPFResult } from 'mailauth';
import type { MailAuthVerifyOptions } from '../../config/mailauth-options.js';
import type { VerifyEngine } from './engine.js';
import { stripOwnResults } from './own-results.js';
import { authWords, decide, resultsHeader, summary, type AuthResults, type AuthVerdict, type AuthWords } from './verdict.js';

/** How long the checks of one message may take in all before they count as a temporary failure. */
export const CHECK_DEADLINE_MS = 30_000;

export interface CheckContext {
  readonly opts: MailAuthVerifyOptions;
  readonly authservId: string;
  readonly holdLimit: number;
  /** SPF for this message (verifier.ts: the same as at MAIL). */
  readonly spf: () => Promise<SPFResult | undefined>;
  readonly deadlineMs?: number;
}

export interface CheckOutcome {
  readonly verdict: AuthVerdict;
  /** What to store now, in order: Authentication-Results (unless omitted), then the held content. */
  readonly release: readonly Buffer[];
  /** Fields for the mail log's one line (none for an unchecked message with nothing removed). */
  readonly fields?: Record<string, string | number>;
  /** One result word per method, for filters at phase commit (absent: the message was not checked). */
  readonly words?: AuthWords;
}

export class MessageCheck {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private passthrough = false;
  private removed = 0;

  constructor(
    private readonly ctx: CheckContext,
    /** undefined: no checks, only forged fields of ours removed (an authenticated or local sender). */
    private readonly engine: VerifyEngine | undefined,
  ) {}

  /** Content as it arrives; returns what may be stored now (nothing while it is held). */
  push(chunk: Buffer): readonly Buffer[] {
    this.engine?.write(chunk);
    if (this.passthrough) return [chunk];
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes <= this.ctx.holdLimit) return [];
    this.passthrough = true;
    return this.takeHeld();
  }

  /** The end of the message: the results, the verdict and what to store. */
  async finish(): Promise<CheckOutcome> {
    if (this.engine === undefined) {
      const release = this.takeHeld();
      return { verdict: { kind: 'accept' }, release, ...(this.removed > 0 ? { fields: { checks: 'skipped', removed: this.removed } } : {}) };
    }
    const engine = this.engine;
    const deadlineMs = this.ctx.deadlineMs ?? CHECK_DEADLINE_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<AuthResults>((resolve) => {
      timer = setTimeout(() => resolve({ spf: undefined, dkim: [], arc: undefined, dmarc: undefined, note: `checks took longer than ${deadlineMs} ms`, incomplete: true }), deadlineMs);
    });
    const results = await Promise.race([engine.results(this.ctx.spf()), late]).finally(() => clearTimeout(timer));
    const verdict = decide(results, this.ctx.opts);
    const release: Buffer[] = [];
    const fields: Record<string, string | number> = { ...summary(results) };
    if (this.passthrough) fields.ar = 'omitted';
    else release.push(Buffer.from(resultsHeader(this.ctx.authservId, results), 'latin1'));
    release.push(...this.takeHeld());
    if (this.removed > 0) fields.removed = this.removed;
    return { verdict, release, fields, words: authWords(results) };
  }

  /** The message was aborted: stop the checks. */
  abort(): void {
    this.held = [];
    this.engine?.abort();
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
}
