/*
 * daemon/heap.ts — how the daemon's JavaScript heap grows.
 *
 * After each full collection V8 lets the old generation grow to a multiple
 * of what survived before the next one; for a small, fast heap it picks a
 * large multiple (up to 4×). A mail server's long-lived heap is mostly its
 * queue — the envelopes the scheduler holds, up to `queue active-limit` —
 * and with the default that queue costs about three times its size in
 * resident memory. Growing by half instead keeps resident memory close to
 * what is live, for full collections that stay rare: mail that lives long
 * enough to be promoted is a small part of what a session allocates.
 *
 * Measured (bench: 50 pipelining sessions, 20,000 messages held in the
 * queue): peak PSS 174–183 MB with V8's default, 142–143 MB with 50 %, for
 * throughput within the run-to-run noise (docs/architecture.md).
 *
 * An administrator's own --heap-growing-percent (in NODE_OPTIONS or on the
 * node command line) wins.
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 50;

export function tuneHeap(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): boolean {
  const flag = /--heap[-_]growing[-_]percent\b/;
  if (execArgv.some((a) => flag.test(a)) || flag.test(nodeOptions)) return false;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}
