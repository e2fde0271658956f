/*
 * bench/timings.ts — where the wall time of a benchmark run went: the
 * set-up, each cell (its server's start and stop included), each extra
 * scenario (with the parts it reports), the deletion of the work folders.
 * Written into the results JSON (`timings`) and as a short list at the end
 * of the Markdown report, so that whoever runs the bench again sees what
 * took the time. Pure: the harness measures, this shapes and words.
 */

/** One cell: from its set-up to its server's and destination's stop. */
export interface CellTime {
  readonly scenario: string;
  readonly server: string;
  readonly seconds: number;
  /** The server's start (its configuration, folders, up to its listener answering). */
  readonly startS: number;
  /** The server's and the destination's stop. */
  readonly stopS: number;
}

export interface ExtraTime {
  readonly name: string;
  readonly seconds: number;
  /** Parts the extra reports itself (e.g. the large queue's fills, measurements, drains), seconds. */
  readonly parts?: Readonly<Record<string, number>>;
}

export interface Timings {
  /** Installing or checking the peers, users, versions. */
  readonly setupS: number;
  readonly cells: readonly CellTime[];
  readonly extras: readonly ExtraTime[];
  /** Stopping the shared DNS servers and deleting the servers' folders at the end. */
  readonly cleanupS: number;
  readonly totalS: number;
}

/** A stopwatch for the harness: `lap()` is the seconds since the last lap (or the start), rounded to 0.1 s. */
export function stopwatch(): { lap(): number; elapsed(): number } {
  let last = performance.now();
  const t0 = last;
  return {
    lap: () => {
      const now = performance.now();
      const s = round1((now - last) / 1000);
      last = now;
      return s;
    },
    elapsed: () => round1((performance.now() - t0) / 1000),
  };
}

export const round1 = (s: number): number => Math.round(s * 10) / 10;

const secs = (s: number): string => `${s >= 100 ? Math.round(s).toLocaleString('en-US') : s.toFixed(1)} s`;

/** "Where the time went": one line per part, the cells grouped by scenario, then the total. */
export function timeLines(t: Timings): string[] {
  const out = [`set-up (peers, users, versions): ${secs(t.setupS)}`];
  if (t.cells.length > 0) {
    const sum = (xs: readonly CellTime[], f: (c: CellTime) => number): number => xs.reduce((a, c) => a + f(c), 0);
    out.push(`load scenarios: ${secs(sum(t.cells, (c) => c.seconds))} for ${t.cells.length} cells (servers' start ${secs(sum(t.cells, (c) => c.startS))}, stop ${secs(sum(t.cells, (c) => c.stopS))})`);
    const scenarios = [...new Set(t.cells.map((c) => c.scenario))];
    for (const s of scenarios) {
      const cells = t.cells.filter((c) => c.scenario === s);
      out.push(`  ${s}: ${secs(sum(cells, (c) => c.seconds))} (${cells.map((c) => `${c.server} ${c.seconds.toFixed(1)}`).join(', ')})`);
    }
  }
  for (const x of t.extras) {
    const parts = Object.entries(x.parts ?? {});
    out.push(`${x.name}: ${secs(x.seconds)}${parts.length > 0 ? ` (${parts.map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')})` : ''}`);
  }
  out.push(`deleting the work folders: ${secs(t.cleanupS)}`, `total: ${secs(t.totalS)} (${(t.totalS / 60).toFixed(1)} min)`);
  return out;
}
