/*
 * smtp/limits/lifetime.ts — the two deadlines that do not move: a session's
 * (`smtp timeout session`) and a transaction's (`smtp timeout transaction`).
 *
 * The request deadline (deadline.ts) bounds one command or one message
 * content; a client that keeps sending cheap commands (a NOOP a second, a
 * RCPT a minute) meets it every time and could hold its connection slot for
 * ever. These two bound the whole: the session from its accept, the
 * transaction from the first step that opened it (MAIL) to its end (the
 * final reply, RSET, or HELO/EHLO). When either passes, the connection
 * answers 421 4.4.2 and closes. Postfix has neither; see
 * config/defaults.ts for the defaults and why.
 *
 * Pure, clock injected: the connection tells it whether a transaction is
 * open after each step, and arms its one timer for the nearest deadline.
 */

export interface LifetimeSettings {
  /** A whole session, ms; 0 = no limit. */
  readonly sessionMs: number;
  /** One transaction, ms; 0 = no limit. */
  readonly transactionMs: number;
}

export type LifetimeExpiry = 'session' | 'transaction';

export class Lifetimes {
  private readonly sessionEnds: number;
  private transactionEnds: number | undefined;

  constructor(
    private readonly settings: LifetimeSettings,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.sessionEnds = settings.sessionMs > 0 ? clock() + settings.sessionMs : Infinity;
  }

  /** After each step: is a transaction open now? Its deadline starts when it opens and goes when it ends. */
  transaction(open: boolean): void {
    if (!open) this.transactionEnds = undefined;
    else if (this.transactionEnds === undefined) this.transactionEnds = this.settings.transactionMs > 0 ? this.clock() + this.settings.transactionMs : Infinity;
  }

  /** Time until the nearer deadline, ms (Infinity without one, 0 when passed). */
  remainingMs(): number {
    const at = Math.min(this.sessionEnds, this.transactionEnds ?? Infinity);
    return Math.max(0, at - this.clock());
  }

  /**
   * Which deadline has passed, if any (the session's first: it is the one that ends everything).
   * `slackMs`: count a deadline this close as passed (a timer may fire a hair early).
   */
  expired(slackMs = 0): LifetimeExpiry | undefined {
    const now = this.clock() + slackMs;
    if (now >= this.sessionEnds) return 'session';
    if (this.transactionEnds !== undefined && now >= this.transactionEnds) return 'transaction';
    return undefined;
  }
}
