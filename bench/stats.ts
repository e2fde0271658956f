/*
 * bench/stats.ts — the few statistics the benchmark reports: percentiles
 * of latencies (nearest rank) and median / min / max of repeated runs.
 * Pure functions.
 */

/** Nearest-rank percentile (p in 0..1) of an ascending array; NaN when empty. */
export function percentile(sortedAsc: ArrayLike<number>, p: number): number {
  const n = sortedAsc.length;
  if (n === 0) return NaN;
  const rank = Math.min(n, Math.max(1, Math.ceil(p * n)));
  return sortedAsc[rank - 1] as number;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Summarises latencies (any order; the array is sorted in place). */
export function summarizeLatencies(values: Float64Array | number[]): LatencySummary {
  const a = values instanceof Float64Array ? values.sort() : Float64Array.from(values).sort();
  return { count: a.length, p50: percentile(a, 0.5), p90: percentile(a, 0.9), p99: percentile(a, 0.99), max: a.length ? (a[a.length - 1] as number) : NaN };
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

/** Median (mean of the middle two for an even count), min and max; NaN values are left out. */
export function spread(values: readonly number[]): Spread {
  const a = values.filter((v) => Number.isFinite(v)).sort((x, y) => x - y);
  const n = a.length;
  if (n === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1 ? (a[mid] as number) : ((a[mid - 1] as number) + (a[mid] as number)) / 2;
  return { median, min: a[0] as number, max: a[n - 1] as number, n };
}

/** A growable Float64Array for latencies (no boxing of a million numbers). */
export class Samples {
  private buf = new Float64Array(1024);
  private n = 0;
  push(v: number): void {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = v;
  }
  get length(): number {
    return this.n;
  }
  values(): Float64Array {
    return this.buf.slice(0, this.n);
  }
}
