/*
 * antispam/ratelimit/counters.ts — event counters per key and time window,
 * behind a small interface; cluster/rates.ts shares them between the nodes
 * of a cluster.
 *
 * The memory backend counts in fixed windows: a key's count starts again
 * when its window (started by its first event) has passed. Entries past
 * their window are swept when the map grows large.
 */

export interface RateCounters {
  /** Count one event for KEY in a window of WINDOWMS; the count so far in this window, this one included. MAX: the limit (a shared backend tells the other nodes which keys are over it). */
  hit(key: string, windowMs: number, now: number, max?: number): number;
}

const SWEEP_AT = 100_000;

export class MemoryRateCounters implements RateCounters {
  private readonly windows = new Map<string, { start: number; windowMs: number; count: number }>();

  hit(key: string, windowMs: number, now: number): number {
    let w = this.windows.get(key);
    if (w === undefined || now - w.start >= windowMs) {
      if (this.windows.size >= SWEEP_AT) this.sweep(now);
      w = { start: now, windowMs, count: 0 };
      this.windows.set(key, w);
    }
    return ++w.count;
  }

  private sweep(now: number): void {
    for (const [k, w] of this.windows) if (now - w.start >= w.windowMs) this.windows.delete(k);
  }
}
