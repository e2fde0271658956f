/*
 * daemon/cluster-state.ts — what a node of a cluster shares with the others
 * through the PostgreSQL of its queue (docs/cluster.md), made once per
 * process and kept across reloads:
 *
 *   failrate     AUTH failures per client (cluster/failrate.ts)
 *   rates        the antispam rate limits (cluster/rates.ts)
 *   greylist     greylisting triplets (antispam/greylist/store-pg.ts)
 *   connections  simultaneous connections per client (cluster/connections.ts)
 *   sts          the MTA-STS policy cache (transport-security/sts-cache-pg.ts)
 *   (TLS-RPT     one report per day for the cluster: transport-security/tlsrpt-pg.ts,
 *                wired by daemon/transport-security.ts with this pool)
 *   etrn         ETRN across nodes (cluster/etrn.ts)
 *   queue        smtpctl on the whole queue (cluster/queue-control.ts)
 *
 * Each says in its own header what holds while the database is away; none
 * refuses mail for it. A node on the file spool has none of this.
 */
import type { Pool } from 'pg';
import { PgGreylistStore } from '../antispam/greylist/store-pg.js';
import { ClusterConnections } from '../cluster/connections.js';
import { EtrnRelay } from '../cluster/etrn.js';
import { ClusterFailRate } from '../cluster/failrate.js';
import { ClusterQueueControl, type QueueAction } from '../cluster/queue-control.js';
import { ClusterRateCounters } from '../cluster/rates.js';
import { holds } from '../control/handlers.js';
import type { MailLog } from '../log/maillog.js';
import type { QueueRunner } from '../scheduler/runner.js';
import { PgStsCache } from '../transport-security/sts-cache-pg.js';

export interface ClusterState {
  readonly failrate: ClusterFailRate;
  readonly rates: ClusterRateCounters;
  readonly greylist: PgGreylistStore;
  readonly connections: ClusterConnections;
  readonly sts: PgStsCache;
  etrn?: EtrnRelay;
  queue?: ClusterQueueControl;
  stop(): Promise<void>;
}

export interface ClusterWiring {
  readonly pool: Pool;
  readonly node: string;
  readonly pollMs: number;
  readonly leaseMs: number;
}

export function clusterState(c: ClusterWiring, authFailRate: number, log: MailLog, connections: () => ReadonlyMap<string, number>): ClusterState {
  const info = (l: string): void => log.info(l);
  const state: ClusterState = {
    failrate: new ClusterFailRate({ pool: c.pool, limit: authFailRate, log: info }),
    rates: new ClusterRateCounters(c.pool, info),
    greylist: new PgGreylistStore(c.pool),
    connections: new ClusterConnections({ pool: c.pool, node: c.node, counts: connections, aliveMs: c.leaseMs, log: info }),
    sts: new PgStsCache(c.pool, (l) => log.warn(l)),
    async stop() {
      state.failrate.stop();
      state.rates.stop();
      state.etrn?.stop();
      state.queue?.stop();
      await state.connections.close();
    },
  };
  state.failrate.start();
  state.rates.start(1000);
  state.connections.start(1000);
  return state;
}

/** ETRN and smtpctl across nodes, once the scheduler exists. */
export function clusterQueueWiring(
  state: ClusterState,
  c: ClusterWiring,
  log: MailLog,
  run: { etrn: (domain: string) => void; apply: (action: QueueAction, target: string) => Promise<number> },
): void {
  const info = (l: string): void => log.info(l);
  state.etrn = new EtrnRelay({ ...c, run: run.etrn, log: info });
  state.etrn.start();
  state.queue = new ClusterQueueControl({ ...c, apply: run.apply, log: info });
  state.queue.start();
}

/** A request from another node, applied to what this node holds (0 when it holds nothing the target names). */
export async function applyQueueAction(runner: QueueRunner, action: QueueAction, target: string): Promise<number> {
  if (!holds(runner, target)) return 0;
  switch (action) {
    case 'schedule':
      return runner.scheduleNow(target);
    case 'remove':
      return runner.remove(target);
    case 'hold':
      return runner.hold(target);
    case 'release':
      return runner.release(target);
  }
}
