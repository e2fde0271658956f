/*
 * scheduler/loader.ts — which messages of the spool the schedule holds.
 * The schedule holds at most maxActive messages, and as many recipients
 * (Postfix's qmgr_message_active_limit and qmgr_message_recipient_limit,
 * one number for both here); one message always fits in an empty one.
 * A message that does not fit waits in the spool (the backlog); when room
 * frees up, the spool is scanned once, after REFILL_DELAY_MS, and what
 * fits is loaded.
 */
import type { MailLog } from '../log/maillog.js';
import type { EnvelopeRecipient } from '../mail/envelope.js';
import type { Spool } from '../spool/spool.js';
import type { Schedule } from './schedule.js';
import type { Classified } from './types.js';
import { isSpoolError } from '../spool/errors.js';

/** A refill waits this long after room frees up, so one scan of the spool loads many messages. */
const REFILL_DELAY_MS = 200;

export interface LoaderDeps {
  readonly spool: Pick<Spool, 'list' | 'load'>;
  readonly schedule: Schedule;
  readonly log: MailLog;
  classify(r: EnvelopeRecipient): Classified;
  /** The runner is delivering (not stopping or stopped). */
  running(): boolean;
  /** A message was loaded whose recipients are all final (a crash before its removal). */
  finished(msgid: string): void;
  /** A refill loaded what fitted. */
  refilled(): void;
}

export class Loader {
  /** Messages in the spool that the schedule does not hold (over maxActive). */
  backlog = false;
  /** Counts enqueues refused for want of room (a scan that overlaps one must not clear backlog). */
  private overflowSeq = 0;
  private refillTimer: NodeJS.Timeout | undefined;
  private refilling: Promise<void> | undefined;

  constructor(
    private readonly d: LoaderDeps,
    public maxActive: number,
  ) {
    if (!Number.isSafeInteger(maxActive) || maxActive < 1) throw new RangeError('maxActiveMessages must be an integer >= 1');
  }

  /** Load messages of the spool the schedule does not hold, up to maxActive; sets backlog. */
  async load(): Promise<number> {
    const { spool, schedule, log } = this.d;
    let messages = 0;
    let full = false;
    const seq0 = this.overflowSeq;
    for (const msgid of await spool.list()) {
      if (schedule.has(msgid)) continue;
      if (this.isFull()) {
        full = true;
        break;
      }
      let stored;
      try {
        stored = await spool.load(msgid);
      } catch (e) {
        // Removed meanwhile (delivered by us, or smtpctl remove): nothing to say.
        if (!isSpoolError(e, 'NOT_FOUND')) log.warn(`scheduler: cannot load message ${msgid}: ${(e as Error).message}`);
        continue;
      }
      if (!this.d.running() || schedule.has(msgid)) continue;
      if (!schedule.add(stored.envelope, stored.outcomes, (r) => this.d.classify(r))) continue;
      messages++;
      if (schedule.isFinal(msgid)) this.d.finished(msgid);
    }
    this.backlog = full || this.overflowSeq !== seq0;
    return messages;
  }

  /** The schedule holds as many messages, or as many recipients, as it may. */
  isFull(): boolean {
    const s = this.d.schedule;
    return s.messages > 0 && (s.messages >= this.maxActive || s.size >= this.maxActive);
  }

  /** A new message did not fit: it waits in the spool until room frees up. */
  overflow(): void {
    this.backlog = true;
    this.overflowSeq++;
  }

  /** Room freed up while messages wait in the spool: load more, soon, in one scan. */
  refillSoon(): void {
    if (!this.backlog || this.refillTimer !== undefined || this.refilling !== undefined || !this.d.running()) return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      if (!this.d.running()) return;
      this.refilling = this.load()
        .then((n) => {
          if (n > 0) this.d.log.info(`scheduler: ${n} more message(s) loaded from the queue`);
          this.d.refilled();
        })
        .catch((e: unknown) => this.d.log.error(`scheduler: loading more of the queue: ${(e as Error).message}`))
        .finally(() => {
          this.refilling = undefined;
          if (!this.isFull()) this.refillSoon();
        });
    }, REFILL_DELAY_MS);
    this.refillTimer.unref();
  }

  /** No more refills (stop()). */
  stop(): void {
    if (this.refillTimer !== undefined) clearTimeout(this.refillTimer);
    this.refillTimer = undefined;
  }
}
