/*
 * scheduler/chains.ts — the durable steps of one message run one after the
 * other, never interleaved (one promise chain per message), and every
 * piece of the runner's work is tracked, so that idle() can wait for all
 * of it (tests, shutdown); waitUntil() bounds such a wait (stop()).
 */
import type { MailLog } from '../log/maillog.js';

export class Chains {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly work = new Set<Promise<unknown>>();

  constructor(private readonly log: MailLog) {}

  /** Run `fn` after every earlier durable step of the same message. */
  serial(msgid: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.chains.get(msgid) ?? Promise.resolve();
    const next = prev.then(fn).catch((e: unknown) => this.log.error(`scheduler: ${msgid}: ${(e as Error).message}`));
    this.chains.set(msgid, next);
    void next.finally(() => {
      if (this.chains.get(msgid) === next) this.chains.delete(msgid);
    });
    this.track(next);
    return next;
  }

  track(p: Promise<unknown>): void {
    this.work.add(p);
    void p.finally(() => this.work.delete(p));
  }

  /** Resolves when no tracked work is left. */
  async idle(): Promise<void> {
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
  }
}

/** Wait for `p`, but not past `deadline` (Date.now() ms). */
export async function waitUntil(p: Promise<unknown>, deadline: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (t = setTimeout(resolve, Math.max(0, deadline - Date.now()))))]);
  if (t) clearTimeout(t);
}
