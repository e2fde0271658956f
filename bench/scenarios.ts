/*
 * bench/scenarios.ts — the benchmark matrix as data: the load scenarios,
 * which servers take part in each, and the parameters of the quick and
 * full runs. Every scenario makes every server do the same work: receive,
 * queue durably, deliver (bench/servers/server.ts's modes).
 *
 * Scenarios that are not "a load against each server" (a large queue, …)
 * live in files of their own and are registered in bench/extra-scenarios.ts.
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
  /** Recipients per message: the local users pbench0 … (bench/users.ts). */
  readonly rcpts: number;
  /** smtp-source only: many messages per connection (-d) rather than one. */
  readonly reuse?: boolean;
  /** Servers that take part (the sink stands for the physical limit: nothing stored). */
  readonly servers: readonly string[];
  /** Part of --quick (with QUICK_SERVERS only). */
  readonly quick: boolean;
  /** A fixed number of messages per run instead of a load of the run's duration (many deliveries per message). */
  readonly messages?: { readonly quick: number; readonly full: number };
  /**
   * Mail authentication (bench/mailauth-env.ts): `verify` — the load sends a
   * DKIM-signed message, Postern runs `mailauth verify` (SPF, DKIM, DMARC,
   * ARC), Postfix runs OpenDKIM as a verifying milter; `sign` — Postern runs
   * `mailauth sign`, Postfix OpenDKIM as a signing milter. Both on a real nsd.
   * `plain` — the load sends the very message of `verify` (same bytes, same
   * source address, same nsd) and no server checks anything: auth-plain vs
   * auth-verify in one run is what verification costs.
   */
  readonly auth?: 'verify' | 'sign' | 'plain';
}

const MAIN = ['postern', 'postfix', 'opensmtpd', 'haraka'];

const load = (name: string, title: string, mode: Mode, sessions: number, size: number, quick: boolean, more: Partial<Scenario> = {}): Scenario => ({ name, title, mode, tool: 'load', sessions, size, rcpts: 1, servers: MAIN, quick, ...more });

export const SCENARIOS: readonly Scenario[] = [
  load('maildir-1k-1', 'maildir as the user, 1 KB, 1 session', 'maildir', 1, 1024, false),
  load('maildir-1k-10', 'maildir as the user, 1 KB, 10 sessions', 'maildir', 10, 1024, true, { servers: [...MAIN, 'sink', 'floor'] }),
  load('maildir-1k-50', 'maildir as the user, 1 KB, 50 sessions', 'maildir', 50, 1024, false),
  load('maildir-100k-1', 'maildir as the user, 100 KB, 1 session', 'maildir', 1, 102_400, false),
  load('maildir-100k-10', 'maildir as the user, 100 KB, 10 sessions', 'maildir', 10, 102_400, true),
  load('maildir-100k-50', 'maildir as the user, 100 KB, 50 sessions', 'maildir', 50, 102_400, false),
  load('lmtp-1k-10', 'Dovecot over LMTP, 1 KB, 10 sessions', 'lmtp', 10, 1024, true),
  load('users100', 'one message to 100 local users (maildir, 1 KB, 100 recipients), 10 sessions; a figure is messages (100 deliveries each)', 'maildir', 10, 1024, true, { rcpts: 100, messages: { quick: 20, full: 30 } }),
  load('procmail-10', 'procmail as MDA (into ~/Maildir/), 1 KB, 10 sessions', 'mda', 10, 1024, false), // not in --quick: 36 s of it (Postern's deliveries lag its 250s by seconds)
  load('relay', 'relay to smtp-sink, 1 KB, 10 sessions', 'relay', 10, 1024, true),
  load('auth-plain', 'the auth-verify message (DKIM-signed, ~1.7 KB) relayed to smtp-sink with no checks: the like-for-like base of auth-verify; 10 sessions', 'relay', 10, 1024, true, { servers: ['postern', 'postfix'], auth: 'plain' }),
  load('auth-verify', 'receive a DKIM-signed message, verify SPF+DKIM+DMARC (Postern) / DKIM with OpenDKIM as a milter (Postfix), queue, relay to smtp-sink; 1 KB, 10 sessions', 'relay', 10, 1024, true, { servers: ['postern', 'postfix'], auth: 'verify' }),
  load('auth-sign', 'relay to smtp-sink with DKIM signing (RSA-2048): Postern `mailauth sign` / Postfix + OpenDKIM as a milter; 1 KB, 10 sessions', 'relay', 10, 1024, true, { servers: ['postern', 'postfix'], auth: 'sign' }),
  { name: 'source-10', title: 'smtp-source -d (the independent client, no pipelining): maildir, 1 KB, 10 sessions', mode: 'maildir', tool: 'smtp-source', reuse: true, sessions: 10, size: 1024, rcpts: 1, servers: MAIN, quick: false },
];

export const SERVER_NAMES = ['postern', 'postfix', 'opensmtpd', 'haraka', 'haraka2', 'sink', 'floor'] as const;

/**
 * The servers of --quick's cells (unless --server or --scenario says
 * otherwise): Postern against Postfix — the ratios the targets are set in —
 * and the floor; OpenSMTPD, Haraka and the sink are in full runs. Fewer
 * cells, so that each can run long enough for a steady ratio.
 */
export const QUICK_SERVERS: readonly string[] = ['postern', 'postfix', 'floor'];

export interface Params {
  readonly label: 'quick' | 'full' | 'partial' | 'profile';
  /** --quick's sizes (also when a partial run is quick). */
  readonly quick: boolean;
  readonly runs: number;
  /** Measured load per run. */
  readonly durationMs: number;
  /** Unmeasured load before the first run of each server and scenario (JIT, caches, process pools). */
  readonly warmupMs: number;
  /** Longest wait, after the load, for what was acknowledged to be delivered. */
  readonly drainMs: number;
  /** …or for this long without a new delivery. */
  readonly stallMs: number;
  readonly idleSessions: number;
  readonly fsyncMs: number;
}

/**
 * --quick: one run of 3 s per cell after a 2 s warm-up (until 2026-12-08,
 * 1.5 s after 0.3 s: the ratios of a Node.js server still warming up
 * swung, auth-sign 2.1× against 3.3× in the full run). Postern's JIT is
 * still warming in the first seconds: in the full run of 2026-12-07 its
 * first run after the 0.8 s warm-up relayed 1,791 msgs/s at 665 µs of CPU
 * each, the next two 2,468 and 2,574 at 460 and 442 µs.
 */
export const QUICK: Params = { label: 'quick', quick: true, runs: 1, durationMs: 3000, warmupMs: 2000, drainMs: 15_000, stallMs: 3000, idleSessions: 2000, fsyncMs: 1000 };
export const FULL: Params = { label: 'full', quick: false, runs: 3, durationMs: 4000, warmupMs: 800, drainMs: 40_000, stallMs: 4000, idleSessions: 10_000, fsyncMs: 3000 };
