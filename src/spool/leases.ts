/*
 * spool/leases.ts — the seam between a shared spool's leases and the
 * scheduler (docs/cluster.md).
 *
 * A spool shared by several nodes (spool/pg/) hands each node only the
 * messages it holds a lease on: list() claims a bounded batch of unleased
 * or expired messages and returns those this node holds. The scheduler keeps
 * its one timing logic and asks three things more:
 *  - pollMs: how often to call list() again, to take over work (another
 *    node's, after its leases expired, or new work nobody holds);
 *  - fresh(): may this node start deliveries now? false once its leases
 *    could not be renewed in time (the database is unreachable): another
 *    node may hold them soon, so this one starts nothing;
 *  - onLost: messages whose leases went to another node (or which another
 *    node removed): the scheduler forgets them, without records;
 *  - nodes(): how many nodes are alive, so that each node takes its share
 *    of every per-destination concurrency limit (the limit then holds for
 *    the cluster as a whole).
 * A spool without leases (the file spool) has none of this: the runner
 * gets no Leases and behaves as it always did.
 */

export interface Leases {
  /** How often the scheduler calls list() again to claim more work, ms. */
  readonly pollMs: number;
  /** This node's leases are current: it may start deliveries. */
  fresh(): boolean;
  /** Register the handler for leases lost to another node. */
  onLost(fn: (msgids: readonly string[]) => void): void;
  /** Nodes alive in the cluster (at least 1): each node takes 1/nodes of every per-destination limit. */
  nodes(): number;
}
