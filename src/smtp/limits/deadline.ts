/*
 * policy/limits/deadline.ts — a deadline per request, with credit for
 * data (slowloris protection).
 *
 * Postfix's smtpd_per_request_deadline / smtpd_min_data_rate, restated: a
 * request — one command line, or the content of DATA/BDAT — must finish
 * within `timeoutMs` of its start, however the bytes trickle in. For
 * content, every N bytes received push the deadline back by N / minDataRate
 * seconds, but never further than `timeoutMs` from now. A client that
 * keeps sending at least minDataRate bytes a second never runs out; one
 * that sends less uses up its credit and is cut off, however it spaces
 * the bytes out. (This is the "bytes per second over a window" check,
 * with the window sliding: bursts are fine, a long average below the rate
 * is not.)
 *
 * Clock-injected and pure: the connection asks remainingMs() to arm its
 * timer after each read.
 */
import { LIMIT_DEFAULTS } from '../../config/limits.js';

export interface DeadlineSettings {
  /** Time for one request, ms. */
  readonly timeoutMs: number;
  /** Bytes a second that earn more time; 0 = none (command lines). */
  readonly minDataRate: number;
}

export const COMMAND_DEADLINE: DeadlineSettings = Object.freeze({ timeoutMs: LIMIT_DEFAULTS.requestTimeoutMs, minDataRate: 0 });
export const DATA_DEADLINE: DeadlineSettings = Object.freeze({ timeoutMs: LIMIT_DEFAULTS.requestTimeoutMs, minDataRate: LIMIT_DEFAULTS.minDataRate });

export class RequestDeadline {
  private deadline: number;

  constructor(
    private readonly settings: DeadlineSettings,
    private readonly clock: () => number = Date.now,
  ) {
    if (!(settings.timeoutMs > 0)) throw new RangeError('request timeout must be more than 0 ms');
    if (!(settings.minDataRate >= 0)) throw new RangeError('minimum data rate must be 0 or more bytes a second');
    this.deadline = clock() + settings.timeoutMs;
  }

  /** A new request begins: the full time again. */
  start(): void {
    this.deadline = this.clock() + this.settings.timeoutMs;
  }

  /** n bytes of the request arrived. */
  onBytes(n: number): void {
    if (this.settings.minDataRate <= 0 || n <= 0) return;
    const now = this.clock();
    this.deadline = Math.min(now + this.settings.timeoutMs, this.deadline + (n * 1000) / this.settings.minDataRate);
  }

  /** Time left, ms (0 when expired). */
  remainingMs(): number {
    return Math.max(0, this.deadline - this.clock());
  }

  expired(): boolean {
    return this.clock() >= this.deadline;
  }
}
