/*
 * daemon/privsep/coalesce.ts — the messages one side of the privsep
 * channel (protocol.ts) sends in one turn of the event loop leave as one
 * channel message, { t: 'batch', ms: [...] }: one serialization, one
 * write(2) and one wake-up of the other side instead of one per message —
 * the outcomes of a worker's batch answered together, the deliveries of
 * several queued messages asked together. Order is kept: a message that
 * carries a handle (a bound socket) first sends what is waiting.
 */

/** A batch of messages in one channel message; never nested. */
export interface Batch<M> {
  readonly t: 'batch';
  readonly ms: readonly M[];
}

/** The most messages in one batch (protocol.ts checks it too). */
export const MAX_BATCH = 1000;

export class Coalescer<M> {
  private queue: M[] = [];
  private sent: (() => void)[] = [];
  private scheduled = false;

  /** `write`: hand one channel message over (process.send or child.send), `done` once it is written. */
  constructor(private readonly write: (m: M | Batch<M>, done: () => void) => void) {}

  /** Send `m` at the end of this turn, with whatever else is sent in it; resolves once it is written. */
  send(m: M): Promise<void> {
    this.queue.push(m);
    if (this.queue.length >= MAX_BATCH) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return new Promise((resolve) => this.sent.push(resolve));
  }

  /** Send what is waiting now (before a message with a handle; before an exit). */
  flush(): void {
    this.scheduled = false;
    const ms = this.queue;
    const sent = this.sent;
    if (ms.length === 0) return;
    this.queue = [];
    this.sent = [];
    this.write(ms.length === 1 ? (ms[0] as M) : { t: 'batch', ms }, () => {
      for (const s of sent) s();
    });
  }
}

/** The messages of what was received: a batch's, or the message itself (a malformed batch or one inside a batch too, for the caller's check to refuse). */
export function unbatch(x: unknown): readonly unknown[] {
  if (typeof x !== 'object' || x === null || (x as { t?: unknown }).t !== 'batch') return [x];
  const ms = (x as { ms?: unknown }).ms;
  return Array.isArray(ms) && ms.length <= MAX_BATCH ? ms : [x];
}
