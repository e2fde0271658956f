/*
 * bench/torture/report.ts — one row per check (check, result, figures) and
 * the table the torture run prints.
 */

export type Result = 'pass' | 'FAIL' | 'skipped';

export interface Row {
  readonly check: string;
  readonly result: Result;
  readonly figures: string;
}

export const row = (check: string, ok: boolean, figures: string): Row => ({ check, result: ok ? 'pass' : 'FAIL', figures });

export function formatTable(rows: readonly Row[]): string {
  const w1 = Math.max(5, ...rows.map((r) => r.check.length));
  const w2 = 7;
  const line = (a: string, b: string, c: string): string => `| ${a.padEnd(w1)} | ${b.padEnd(w2)} | ${c} |`;
  return [line('check', 'result', 'figures'), `|${'-'.repeat(w1 + 2)}|${'-'.repeat(w2 + 2)}|---------|`, ...rows.map((r) => line(r.check, r.result, r.figures))].join('\n');
}
