/*
 * policy/limits/errors.ts — errors per session, Postfix style, and the
 * per-session pacing that combines them with ZMailer's tarpit.
 *
 * Every 4xx/5xx reply is an error. Once a session has made softLimit
 * errors without getting a message accepted, every reply waits sleepMs
 * (Postfix: "slows down all its responses"); once it has made hardLimit
 * errors, the next command is answered "421 4.7.0 … Error: too many
 * errors" and the session is closed. An accepted message starts the count
 * again (the limits count errors "without delivering mail").
 *
 * Pure and clock-free: the caller waits the returned delays.
 */
import { closing, reply, type Reply } from '../../mail/reply.js';
import { LIMIT_DEFAULTS, ErrorLimits, DEFAULT_ERROR_LIMITS, TarpitSettings, NO_TARPIT } from '../../config/limits.js';
import { Tarpit } from './tarpit.js';

export class ErrorCounter {
  private count = 0;

  constructor(private readonly limits: ErrorLimits = DEFAULT_ERROR_LIMITS) {}

  get errors(): number {
    return this.count;
  }

  /** Account for a reply about to be sent; returns the wait before it, ms. */
  onReply(code: number): number {
    if (code >= 400) this.count++;
    const l = this.limits;
    return l.softLimit > 0 && this.count >= l.softLimit ? l.sleepMs : 0;
  }

  /** Before reading the next command: the 421 that ends the session, if the hard limit is reached. */
  beforeCommand(hostname: string): Reply | undefined {
    const l = this.limits;
    if (l.hardLimit > 0 && this.count >= l.hardLimit) return closing(reply(421, '4.7.0', `${hostname} Error: too many errors`));
    return undefined;
  }

  /** A message was accepted: the error count starts again. */
  messageAccepted(): void {
    this.count = 0;
  }
}

/** One session's reply pacing: the error counter and the tarpit together. */
export class ReplyPacer {
  readonly errors: ErrorCounter;
  readonly tarpit: Tarpit;

  constructor(opts: { readonly errors?: ErrorLimits; readonly tarpit?: TarpitSettings } = {}) {
    this.errors = new ErrorCounter(opts.errors ?? DEFAULT_ERROR_LIMITS);
    this.tarpit = new Tarpit(opts.tarpit ?? NO_TARPIT);
  }

  /**
   * The wait before a reply with this code, ms: the longer of the tarpit's
   * and the soft-error slow-down (they punish the same thing, so they do
   * not add up).
   */
  delayFor(code: number): number {
    return Math.max(this.errors.onReply(code), this.tarpit.delayFor(code));
  }

  beforeCommand(hostname: string): Reply | undefined {
    return this.errors.beforeCommand(hostname);
  }

  messageAccepted(): void {
    this.errors.messageAccepted();
  }
}
