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
 * A message larger than `holdLimit` (8 MiB) is not held in memory beyond
 * it: the content goes on into a private temporary file (spill.ts, mode
 * 0600 in a folder of its own), and at the end it is read back in 1 MiB
 * pieces after the Authentication-Results field — asynchronous I/O, so the
 * event loop never stalls, and the size is bounded by `smtp
 * max-message-size`. If the file cannot be written (a full disk), the
 * message is refused with 451 4.3.0, as the spool's own write failure is.
 */
import type { SPFResult } from 'mailauth';
import type { MailAuthVerifyOptions } from '../../config/mailauth-options.js';
import { reply } from '../../mail/reply.js';
import type { VerifyEngine } from './engine.js';
import { stripOwnResults } from './own-results.js';
import { Spill } from './spill.js';
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
  /** Where the content of a message larger than holdLimit goes meanwhile (default: the system's temporary folder). */
  readonly spillDir?: string;
}

export interface CheckOutcome {
  readonly verdict: AuthVerdict;
  /**
   * What to store now, in order: Authentication-Results (unless omitted),
   * then the held content — a list when it was held in memory (taken at
   * once, without an asynchronous step per piece), a large one read back
   * from its file.
   */
  readonly release: readonly Buffer[] | AsyncIterable<Buffer>;
  /** Fields for the mail log's one line (none for an unchecked message with nothing removed). */
  readonly fields?: Record<string, string | number>;
  /** One result word per method, for filters at phase commit (absent: the message was not checked). */
  readonly words?: AuthWords;
}

export class MessageCheck {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private spill: Spill | undefined;
  private removed = 0;

  constructor(
    private readonly ctx: CheckContext,
    /** undefined: no checks, only forged fields of ours removed (an authenticated or local sender). */
    private readonly engine: VerifyEngine | undefined,
  ) {}

  /** Content as it arrives; returns what may be stored now (nothing while it is held). */
  push(chunk: Buffer): readonly Buffer[] {
    this.engine?.write(chunk);
    if (this.spill !== undefined) {
      this.spill.write(chunk);
      return [];
    }
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes <= this.ctx.holdLimit) return [];
    // Larger than what is held in memory: on to a file (unchecked mail too: its forged fields of ours are removed from the held header).
    this.spill = new Spill(this.ctx.spillDir);
    for (const b of this.takeHeld()) this.spill.write(b);
    return [];
  }

  /** The end of the message: the results, the verdict and what to store. */
  async finish(): Promise<CheckOutcome> {
    const failed = await this.spill?.close();
    if (failed !== undefined) {
      this.abort();
      const reason = `content could not be held for the checks: ${failed}`;
      return { verdict: { kind: 'refuse', reply: reply(451, '4.3.0', 'Temporary local problem, try again later'), reason }, release: [], fields: { error: reason } };
    }
    if (this.engine === undefined) {
      const release = this.rest([]);
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
    const fields: Record<string, string | number> = { ...summary(results) };
    if (this.spill !== undefined) fields.spilled = this.spill.bytes;
    const release = this.rest([Buffer.from(resultsHeader(this.ctx.authservId, results), 'latin1')]);
    if (this.removed > 0) fields.removed = this.removed;
    return { verdict, release, fields, words: authWords(results) };
  }

  /** `first`, then what is held: in memory, or in the spill file (read back, then removed). */
  private rest(first: Buffer[]): readonly Buffer[] | AsyncIterable<Buffer> {
    const spill = this.spill;
    this.spill = undefined;
    if (spill === undefined) return [...first, ...this.takeHeld()];
    return spill.readBack(first);
  }

  /** The message was aborted: stop the checks. */
  abort(): void {
    this.held = [];
    this.spill?.discard();
    this.spill = undefined;
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
