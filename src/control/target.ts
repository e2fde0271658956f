/*
 * control/target.ts — what the control socket (server.ts) acts on: the
 * running daemon, as a small interface. The daemon implements it; the tests
 * implement it with a real QueueRunner on a temporary spool.
 *
 * Members marked optional are views that only some builds provide; the
 * server answers an empty list when they are absent.
 */
import type { ClusterActResult, QueueAction } from '../cluster/queue-control.js';
import type { Config } from '../config/model.js';
import type { MailLog } from '../log/maillog.js';
import type { QueueRunner } from '../scheduler/runner.js';
import type { Spool } from '../spool/spool.js';
import type { Stats } from '../stats.js';

export type Service = 'smtp' | 'mta' | 'mda';

export interface ControlTarget {
  readonly config: Config; // the configuration in force
  readonly stats: Stats;
  readonly runner: QueueRunner; // queue operations and views
  readonly spool: Spool; // show message / show envelope details
  readonly log: MailLog; // setVerbose for `log brief|verbose`
  pause(what: Service): void;
  resume(what: Service): void;
  paused(): { smtp: boolean; mta: boolean; mda: boolean };
  reload(): Promise<{ ok: true } | { ok: false; error: string }>; // re-read config + tables; keep the old ones if invalid
  updateTable(name: string): { ok: true } | { ok: false; error: string };
  stop(): void; // graceful stop (as SIGTERM)
  sessions(): number; // SMTP sessions now
  hosts?(): unknown[]; // relay agent's view (show hosts) when available
  /** Relay routes (show routes) when available. */
  routes?(): unknown[];
  /** The shared queue of a cluster (show cluster) when the spool is PostgreSQL. */
  cluster?(): Promise<unknown[]>;
  /** A cluster: the rest of schedule/remove/hold/release, for what other nodes or none hold (cluster/queue-control.ts). */
  readonly clusterAct?: (action: QueueAction, target: string) => Promise<ClusterActResult>;
}
