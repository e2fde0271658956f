/*
 * metrics/top-n.ts — bounded label values for destination domains and
 * other open-ended names, so that a spammer's list of ten thousand domains
 * cannot make ten thousand time series.
 *
 * The first `n` distinct values seen get a label of their own; every later
 * one is counted as "other". A counter's labels cannot move once scraped
 * (Prometheus would see a series vanish and reappear), so this is "the
 * first N" rather than a sliding "top N": on a server whose traffic goes
 * to a stable set of big destinations they are the same, and a restart
 * re-learns them. Cost: one Map lookup per call.
 */
export const OTHER = 'other';

export class BoundedLabels {
  private readonly seen = new Set<string>();

  constructor(private readonly n: number) {}

  /** The label for `value`: itself while there is room, else "other". */
  label(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.n) return OTHER;
    this.seen.add(value);
    return value;
  }

  get size(): number {
    return this.seen.size;
  }
}

/** Keep `s` a short, printable label value: lower case, at most 253 characters, no control characters. */
export function cleanLabel(s: string, fallback = 'unknown'): string {
  // eslint-disable-next-line no-control-regex
  const t = s.toLowerCase().replace(/[\x00-\x1f\x7f"\\]/g, '').slice(0, 253);
  return t === '' ? fallback : t;
}
