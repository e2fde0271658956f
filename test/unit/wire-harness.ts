/*
 * test/unit/wire-harness.ts — helpers for the wire-layer tests: byte
 * strings, every way to cut an input into chunks, a seeded PRNG.
 *
 * Inputs are written as latin1 strings so that "\r", "\n" and "\0" read
 * naturally in tables; show() turns output back into such a string.
 */

/** A latin1 string as bytes. */
export function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** Bytes as a latin1 string (for readable assertions). */
export function show(b: Buffer | Buffer[]): string {
  return (Array.isArray(b) ? Buffer.concat(b) : b).toString('latin1');
}

export interface Cut {
  readonly name: string;
  readonly chunks: Buffer[];
}

/**
 * Every way the tests feed an input: in one chunk, in two chunks cut at
 * each position 0..n (empty chunks included), and one byte at a time.
 * Chunks are fresh copies so no test can depend on sharing memory.
 */
export function cuts(input: Buffer): Cut[] {
  const out: Cut[] = [{ name: 'whole', chunks: [Buffer.from(input)] }];
  for (let k = 0; k <= input.length; k++) {
    out.push({ name: `split@${k}`, chunks: [Buffer.from(input.subarray(0, k)), Buffer.from(input.subarray(k))] });
  }
  const single: Buffer[] = [];
  for (let k = 0; k < input.length; k++) single.push(Buffer.from(input.subarray(k, k + 1)));
  out.push({ name: 'byte-by-byte', chunks: single });
  return out;
}

/** Cut input at `n` random points (sorted, repeats allowed → empty chunks). */
export function randomCut(input: Buffer, n: number, rnd: () => number): Buffer[] {
  const points: number[] = [];
  for (let k = 0; k < n; k++) points.push(Math.floor(rnd() * (input.length + 1)));
  points.sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    chunks.push(Buffer.from(input.subarray(prev, p)));
    prev = p;
  }
  chunks.push(Buffer.from(input.subarray(prev)));
  return chunks;
}

export { prng } from '../helpers/prng.js';

/** True when every CR is followed by LF and every LF preceded by CR. */
export function strictCrlf(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\r' && s[i + 1] !== '\n') return false;
    if (c === '\n' && s[i - 1] !== '\r') return false;
  }
  return true;
}
