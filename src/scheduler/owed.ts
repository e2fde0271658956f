/*
 * scheduler/owed.ts — permanent failures known in memory whose outcome is
 * not recorded yet, gathered per message so that recipients failing close
 * together share one report (effects.ts records them after the report).
 *
 * A message's failures are reported when none of its other recipients is
 * in flight (nothing else is about to fail), or gatherMs after the first of
 * them at the latest; after a spool error, not before retryAt.
 */
import type { EnvelopeRecipient } from '../mail/envelope.js';

export interface Failure {
  readonly evpid: string;
  readonly rcpt: EnvelopeRecipient;
  readonly status: string;
  readonly detail: string;
  readonly diagnostic?: string;
  readonly remoteMta?: string;
  readonly lastAttempt?: number;
  /** A failure report is owed for it (NOTIFY, sender not <>). */
  readonly report: boolean;
}

export interface Owed {
  /** When the oldest waiting item was added. */
  since: number;
  /** Waiting for their report. */
  readonly items: Failure[];
  /** Report queued (or none owed); waiting for their record. */
  readonly reported: Failure[];
  /** After a spool error: not before then. */
  retryAt?: number;
  /** A flush is queued in the message's serial chain. */
  flushing: boolean;
}

export class OwedFailures {
  private readonly byMsg = new Map<string, Owed>();

  add(msgid: string, f: Failure, now: number): void {
    let o = this.byMsg.get(msgid);
    if (o === undefined) this.byMsg.set(msgid, (o = { since: now, items: [], reported: [], flushing: false }));
    if (o.items.length === 0 && o.reported.length === 0) o.since = now;
    o.items.push(f);
  }

  get(msgid: string): Owed | undefined {
    return this.byMsg.get(msgid);
  }

  has(msgid: string): boolean {
    return this.byMsg.has(msgid);
  }

  /** Forget the message's entry once nothing is left in it. */
  tidy(msgid: string): void {
    const o = this.byMsg.get(msgid);
    if (o && o.items.length === 0 && o.reported.length === 0) this.byMsg.delete(msgid);
  }

  delete(msgid: string): void {
    this.byMsg.delete(msgid);
  }

  entries(): IterableIterator<[string, Owed]> {
    return this.byMsg.entries();
  }

  msgids(): string[] {
    return [...this.byMsg.keys()];
  }

  /** When the message's failures should be flushed, given how many of its recipients are in flight. */
  static dueAt(o: Owed, inflight: number, gatherMs: number): number {
    if (o.retryAt !== undefined) return o.retryAt;
    if (o.reported.length > 0 || inflight === 0) return 0;
    return o.since + gatherMs;
  }
}
