/*
 * scheduler/loader.ts — which messages of the spool the schedule holds.
 * The schedule holds at most maxActive messages, and as many recipients
 * (Postfix's qmgr_message_active_limit and qmgr_message_recipient_limit,
 * one number for both here); one message always fits in an empty one.
 *
 * At start the spool is listed once. Messages are loaded (envelope and
 * outcome records, each file read once) until the schedule is full; every
 * msgid beyond that goes to the waiting list, in the order listed: the
 * scheduler knows every message of the queue, but keeps only its id (one
 * short string) until there is room for it. A message accepted while the
 * schedule is full joins the end of that list. When room frees up, the
 * next ones are loaded after REFILL_DELAY_MS (many at once) — from the
 * list, without listing the spool again. The load at start runs while the
 * daemon already serves (`loading` says so), and hands what it loaded to
 * the runner now and then (`progress`) so deliveries start before it ends.
 */
import type { MailLog } from '../log/maillog.js';
import type { EnvelopeRecipient } from '../mail/envelope.js';
import type { Spool } from '../spool/spool.js';
import type { Schedule } from './schedule.js';
import type { Classified } from './types.js';
import { isSpoolError } from '../spool/errors.js';

/** A refill waits this long after room frees up, so one pass loads many messages. */
const REFILL_DELAY_MS = 200;
/** The load at start hands over what it has every this many messages. */
const PROGRESS_EVERY = 256;
/** Messages read at once by the load at start. */
const LOAD_PARALLEL = 16;

export interface LoaderDeps {
  readonly spool: Pick<Spool, 'list' | 'load'>;
  readonly schedule: Schedule;
  readonly log: MailLog;
  classify(r: EnvelopeRecipient): Classified;
  /** The runner is delivering (not stopping or stopped). */
  running(): boolean;
  /** A message was loaded whose recipients are all final (a crash before its removal). */
  finished(msgid: string): void;
  /** A refill loaded what fitted, or the load at start loaded another batch. */
  refilled(): void;
}

export class Loader {
  /** Msgids of the spool the schedule does not hold (yet): waiting[next…]. */
  private waiting: string[] = [];
  private next = 0;
  /** The load at start has not finished. */
  loading = false;
  /** Messages loaded so far by the load at start. */
  loadedAtStart = 0;
  private refillTimer: NodeJS.Timeout | undefined;
  private refilling: Promise<void> | undefined;

  constructor(
    private readonly d: LoaderDeps,
    public maxActive: number,
  ) {
    if (!Number.isSafeInteger(maxActive) || maxActive < 1) throw new RangeError('maxActiveMessages must be an integer >= 1');
  }

  /** Messages in the spool that the schedule does not hold (over maxActive). */
  get backlog(): boolean {
    return this.next < this.waiting.length;
  }

  /** How many messages wait in the spool for room in the schedule. */
  get waitingCount(): number {
    return this.waiting.length - this.next;
  }

  /** At start: list the spool once, load what fits, keep the ids of the rest. Returns the messages loaded. */
  async load(): Promise<number> {
    this.loading = true;
    try {
      const ids = await this.d.spool.list();
      let i = 0;
      let handed = 0;
      while (i < ids.length && this.d.running() && !this.isFull()) {
        // A few reads in flight at once (each is several system calls), never more than the room left.
        const batch = ids.slice(i, i + this.room());
        i += batch.length;
        const ok = await Promise.all(batch.map((id) => this.loadOne(id)));
        this.loadedAtStart += ok.filter(Boolean).length;
        if (this.loadedAtStart - handed >= PROGRESS_EVERY) {
          handed = this.loadedAtStart;
          this.d.refilled();
        }
      }
      // The rest wait, in the list's order (the array is kept, not copied); accepted meanwhile: after them.
      const overflowed = this.waiting.slice(this.next);
      this.waiting = ids;
      this.next = i;
      for (const id of overflowed) this.waiting.push(id);
      return this.loadedAtStart;
    } finally {
      this.loading = false;
      // Room freed up during the load (deliveries) waited for it.
      this.refillSoon();
    }
  }

  /** Load one message into the schedule; false if it was not (gone, unreadable, held already, stopping). */
  private async loadOne(msgid: string): Promise<boolean> {
    const { spool, schedule, log } = this.d;
    if (schedule.has(msgid)) return false;
    let stored;
    try {
      stored = await spool.load(msgid);
    } catch (e) {
      // Removed meanwhile (delivered by us, or smtpctl remove): nothing to say.
      if (!isSpoolError(e, 'NOT_FOUND')) log.warn(`scheduler: cannot load message ${msgid}: ${(e as Error).message}`);
      return false;
    }
    if (!this.d.running() || schedule.has(msgid)) return false;
    if (!schedule.add(stored.envelope, stored.outcomes, (r) => this.d.classify(r))) return false;
    if (schedule.isFinal(msgid)) this.d.finished(msgid);
    return true;
  }

  /** The next waiting messages, as many as fit. */
  private async refill(): Promise<number> {
    let messages = 0;
    while (this.next < this.waiting.length && this.d.running() && !this.isFull()) {
      if (await this.loadOne(this.waiting[this.next++] as string)) messages++;
    }
    if (this.next > 4096 && this.next * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.next);
      this.next = 0;
    }
    return messages;
  }

  /** How many messages to read at once: up to LOAD_PARALLEL, within the room left (at least one). */
  private room(): number {
    const s = this.d.schedule;
    return Math.max(1, Math.min(LOAD_PARALLEL, this.maxActive - s.messages, this.maxActive - s.size));
  }

  /** The schedule holds as many messages, or as many recipients, as it may. */
  isFull(): boolean {
    const s = this.d.schedule;
    return s.messages > 0 && (s.messages >= this.maxActive || s.size >= this.maxActive);
  }

  /** A new message did not fit: it waits in the spool until room frees up. */
  overflow(msgid: string): void {
    this.waiting.push(msgid);
  }

  /** Room freed up while messages wait in the spool: load more, soon, in one pass. */
  refillSoon(): void {
    if (!this.backlog || this.loading || this.refillTimer !== undefined || this.refilling !== undefined || !this.d.running()) return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      if (!this.d.running()) return;
      this.refilling = this.refill()
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
