/*
 * auth/failrate.ts — failed AUTH attempts per client address (ZMailer's
 * auth-failrate): more than `limit` failures in the last hour and further
 * attempts are refused until old failures age out. Clock injected.
 */
export class FailRate {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs = 3_600_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Is this address still allowed to try? */
  allowed(ip: string): boolean {
    return this.recent(ip).length < this.limit;
  }

  fail(ip: string): number {
    const list = this.recent(ip);
    list.push(this.now());
    this.failures.set(ip, list);
    if (this.failures.size > 100_000) this.prune();
    return list.length;
  }

  private recent(ip: string): number[] {
    const cutoff = this.now() - this.windowMs;
    const list = (this.failures.get(ip) ?? []).filter((t) => t > cutoff);
    if (list.length === 0) this.failures.delete(ip);
    return list;
  }

  private prune(): void {
    for (const ip of [...this.failures.keys()]) this.recent(ip);
  }
}
