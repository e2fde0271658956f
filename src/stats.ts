/*
 * stats.ts — counters for `smtpctl show stats` (OpenSMTPD's names where
 * they exist: smtp.session, smtp.session.inet4, scheduler.envelope …),
 * and `probe`, the labelled hooks Prometheus counts (metrics/probe.ts).
 */
import { NOOP_PROBE, type Probe } from './metrics/probe.js';

export class Stats {
  /** Labelled counters for /metrics; a no-op unless the daemon sets one. */
  probe: Probe = NOOP_PROBE;

  private readonly counters = new Map<string, number>();
  readonly startedAt = Date.now();

  inc(name: string, n = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + n);
  }

  dec(name: string, n = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) - n);
  }

  set(name: string, v: number): void {
    this.counters.set(name, v);
  }

  get(name: string): number {
    return this.counters.get(name) ?? 0;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counters.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}
