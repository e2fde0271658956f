/*
 * config/diagnostics.ts — collecting errors and warnings in file order.
 *
 * Every finding carries the FILE:LINE:COL it is about. "File order" is the
 * order a reader meets the text in, with each included file read at the
 * place of its `include` statement: a diagnostic inside an included file
 * sorts right after the include line and before the statement that follows
 * it. Findings at the same place keep the order they were reported in.
 *
 * A ParseError is thrown to abandon the current statement; the parser
 * records it and resumes at the next line (see config/parser.ts).
 */
import type { Diagnostic, Position } from './model.js';

export class ParseError extends Error {
  constructor(
    readonly pos: Position,
    message: string,
  ) {
    super(message);
  }
}

export class Diagnostics {
  private readonly list: Diagnostic[] = [];
  /** Included file → position of the include statement that first pulled it in. */
  private readonly includeSites = new Map<string, Position>();

  error(pos: Position, message: string): void {
    this.list.push({ pos, message, severity: 'error' });
  }

  warning(pos: Position, message: string): void {
    this.list.push({ pos, message, severity: 'warning' });
  }

  add(d: Diagnostic): void {
    this.list.push(d);
  }

  get errorCount(): number {
    return this.list.filter((d) => d.severity === 'error').length;
  }

  /** Remember where `file` was included from (the first time only). */
  includedAt(file: string, site: Position): void {
    if (!this.includeSites.has(file)) this.includeSites.set(file, site);
  }

  /** All findings, sorted into file order. */
  sorted(): Diagnostic[] {
    const keyed = this.list.map((d, n) => ({ d, n, key: this.key(d.pos, 0) }));
    keyed.sort((a, b) => compareKeys(a.key, b.key) || a.n - b.n);
    return keyed.map((k) => k.d);
  }

  private key(pos: Position, depth: number): number[] {
    const site = this.includeSites.get(pos.file);
    const prefix = site !== undefined && depth < 64 ? this.key(site, depth + 1) : [];
    return [...prefix, pos.line, pos.col];
  }
}

function compareKeys(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** "FILE:LINE:COL: message", or "FILE:LINE:COL: warning: message". */
export function formatDiagnostic(d: Diagnostic): string {
  const where = `${d.pos.file}:${d.pos.line}:${d.pos.col}`;
  return d.severity === 'warning' ? `${where}: warning: ${d.message}` : `${where}: ${d.message}`;
}
