/*
 * bench/extra-scenarios.ts — scenarios that are not "the same load against
 * each server" (the disk's fsync rate, idle sessions, a large queue, …):
 * each is defined in a file of its own and registered here, in the one list
 * of them (EXTRA_SCENARIOS). `npm run bench` runs them
 * after the load scenarios (full runs; quick runs when `quick` is set),
 * `--scenario NAME` selects one, and their lines go into the report under
 * their title.
 *
 * To add one: write bench/<name>.ts exporting an ExtraScenario, import it
 * below and add it to EXTRA_SCENARIOS.
 */
import { fsyncScenario } from './fsync-rate.js';
import { idleScenario } from './idle-run.js';
import { largeQueueScenario } from './large-queue.js';
import { clusterScenario } from './cluster-pg.js';
import { clusterSmtpScenario } from './cluster-smtp.js';
import type { Params } from './scenarios.js';
import { antispam } from './antispam.js';

export interface ExtraContext {
  readonly params: Params;
  /** Keep work folders (--keep); otherwise hand them to `trash`. */
  readonly keep: boolean;
  /** "127.0.0.1:PORT" of the harness's DNS stub, for Postern's `resolver` (absent with --system-resolver). */
  readonly resolver?: string;
  /** Folders to delete once the whole run is over. */
  trash(dir: string): void;
  /** A progress line on stderr. */
  progress(line: string): void;
  /** Servers selected with --server (empty: all). */
  readonly servers: readonly string[];
  /** Register a server or sink started (stopped if the harness is interrupted), and stop one. */
  track<T extends { stop(): Promise<void> }>(p: Promise<T>): Promise<T>;
  stopTracked(x: { stop(): Promise<void> } | undefined): Promise<void>;
}

export interface ExtraResult {
  /** Markdown lines for the report (a list or a table), under the scenario's title. */
  readonly lines: readonly string[];
  /** Raw figures, written into the JSON results as they are. */
  readonly data?: unknown;
  readonly error?: string;
  /** Wall time of its parts, seconds (the report's "where the time went"). */
  readonly timings?: Readonly<Record<string, number>>;
}

export interface ExtraScenario {
  readonly name: string;
  readonly title: string;
  /** Part of --quick (else full runs and --scenario only). */
  readonly quick: boolean;
  /** The servers it runs (for the setup, and left out when --server names none of them); none: the machine alone. */
  readonly servers: readonly string[];
  run(ctx: ExtraContext): Promise<ExtraResult>;
}

export const EXTRA_SCENARIOS: readonly ExtraScenario[] = [
  fsyncScenario,
  idleScenario,
  largeQueueScenario,
  clusterScenario,
  clusterSmtpScenario,
  antispam,
];
