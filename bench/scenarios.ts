/*
 * bench/scenarios.ts — the benchmark matrix as data: the load scenarios,
 * which servers take part in each, and the parameters of the quick and
 * full runs.
 */
import type { Mode } from './servers/server.js';

export type Tool = 'load' | 'smtp-source';

export interface Scenario {
  readonly name: string;
  readonly title: string;
  readonly mode: Mode;
  readonly tool: Tool;
  readonly sessions: number;
  /** Message size, bytes (for smtp-source: the body length it is given). */
  readonly size: number;
  readonly rcpts: number;
  /** smtp-source only: many messages per connection (-d) rather than one. */
  readonly reuse?: boolean;
  /** Servers that take part (the sink stands for the physical limit: nothing stored). */
  readonly servers: readonly string[];
  /** Part of --quick. */
  readonly quick: boolean;
  /** Servers left out of --quick (the rest of `servers` run). */
  readonly quickSkip?: readonly string[];
}

const MAIN = ['postern', 'postfix', 'opensmtpd', 'haraka'];

export const SCENARIOS: readonly Scenario[] = [
  { name: '1k-1', title: '1 KB, 1 session', mode: 'queue', tool: 'load', sessions: 1, size: 1024, rcpts: 1, servers: MAIN, quick: true },
  { name: '1k-10', title: '1 KB, 10 sessions', mode: 'queue', tool: 'load', sessions: 10, size: 1024, rcpts: 1, servers: [...MAIN, 'haraka2', 'sink'], quick: true, quickSkip: ['haraka2', 'sink'] },
  { name: '1k-50', title: '1 KB, 50 sessions', mode: 'queue', tool: 'load', sessions: 50, size: 1024, rcpts: 1, servers: [...MAIN, 'haraka2', 'sink'], quick: true, quickSkip: ['haraka2'] },
  { name: '100k-10', title: '100 KB, 10 sessions', mode: 'queue', tool: 'load', sessions: 10, size: 102_400, rcpts: 1, servers: MAIN, quick: true },
  { name: 'rcpt10', title: '1 KB, 10 recipients, 10 sessions', mode: 'queue', tool: 'load', sessions: 10, size: 1024, rcpts: 10, servers: MAIN, quick: true },
  { name: 'relay', title: 'end to end: receive, queue, relay to smtp-sink (1 KB, 10 sessions)', mode: 'relay', tool: 'load', sessions: 10, size: 1024, rcpts: 1, servers: MAIN, quick: true },
  { name: 'source-10', title: 'smtp-source -d: 1 KB, 10 sessions, connections kept', mode: 'queue', tool: 'smtp-source', reuse: true, sessions: 10, size: 1024, rcpts: 1, servers: [...MAIN, 'haraka2', 'sink'], quick: true, quickSkip: ['haraka2'] },
  { name: 'source-50', title: 'smtp-source -d: 1 KB, 50 sessions, connections kept', mode: 'queue', tool: 'smtp-source', reuse: true, sessions: 50, size: 1024, rcpts: 1, servers: [...MAIN, 'haraka2', 'sink'], quick: false },
  { name: 'source-100k', title: 'smtp-source -d: 100 KB, 10 sessions, connections kept', mode: 'queue', tool: 'smtp-source', reuse: true, sessions: 10, size: 102_400, rcpts: 1, servers: MAIN, quick: false },
  { name: 'conn-10', title: 'smtp-source: 1 KB, 10 sessions, one message per connection', mode: 'queue', tool: 'smtp-source', sessions: 10, size: 1024, rcpts: 1, servers: [...MAIN, 'sink'], quick: false },
];

/** Runs that are not load scenarios, selectable with --scenario too. */
export const EXTRAS = ['fsync', 'idle', 'large-queue'] as const;

export const SERVER_NAMES = ['postern', 'postfix', 'opensmtpd', 'haraka', 'haraka2', 'sink'] as const;

export interface Params {
  readonly label: 'quick' | 'full' | 'partial' | 'profile';
  readonly runs: number;
  /** Measured load per run. */
  readonly durationMs: number;
  /** Unmeasured load before the first run of each server and scenario (JIT, caches, process pools). */
  readonly warmupMs: number;
  /** Longest wait for stored or relayed mail to be counted after a run. */
  readonly drainMs: { readonly queue: number; readonly relay: number };
  /** …or for this long without a new arrival. */
  readonly stallMs: { readonly queue: number; readonly relay: number };
  readonly idleSessions: number;
  readonly fsyncMs: number;
}

export const QUICK: Params = { label: 'quick', runs: 1, durationMs: 1500, warmupMs: 300, drainMs: { queue: 5000, relay: 6000 }, stallMs: { queue: 1500, relay: 2000 }, idleSessions: 2000, fsyncMs: 1000 };
export const FULL: Params = { label: 'full', runs: 3, durationMs: 4000, warmupMs: 800, drainMs: { queue: 10_000, relay: 20_000 }, stallMs: { queue: 2000, relay: 5000 }, idleSessions: 10_000, fsyncMs: 3000 };
