/*
 * scheduler/lease-watch.ts — what the runner does with a shared spool's
 * leases (spool/leases.ts); nothing with a spool that has none.
 *
 *  - every pollMs, while this node's leases are fresh and the schedule has
 *    room, it loads the spool again: list() claims a bounded batch of work
 *    nobody holds (another node's, after its leases expired);
 *  - while the leases are not fresh (renewals failing) it tells the runner
 *    to start nothing, and claims nothing;
 *  - messages whose leases went to another node are dropped from the
 *    schedule, without records, once their tasks (if any) have ended;
 *  - each node takes 1/N of every per-destination limit, N the nodes alive
 *    (ready.ts), so a limit holds for the cluster as a whole.
 * The timing of deliveries stays the schedule's alone.
 */
import type { Leases } from '../spool/leases.js';

export interface LeaseWatchDeps {
  readonly leases: Leases;
  /** The runner is delivering. */
  running(): boolean;
  /** The schedule has room for more messages. */
  hasRoom(): boolean;
  /** Load more of the spool (claims), then pump. */
  load(): Promise<void>;
  /** Drop a message whose lease is gone, once nothing of it is in flight; false: retry later. */
  drop(msgid: string): boolean;
  /** The leases are fresh again: run what is due. */
  pump(): void;
  /** This many nodes share the per-destination limits. */
  share(nodes: number): void;
  warn(line: string): void;
}

export class LeaseWatch {
  private timer: NodeJS.Timeout | undefined;
  private loading = false;
  private wasFresh = true;
  /** Lost messages not dropped yet (a task of theirs was running). */
  private readonly lost = new Set<string>();

  constructor(private readonly d: LeaseWatchDeps) {
    d.leases.onLost((msgids) => {
      for (const m of msgids) this.lost.add(m);
      this.dropLost();
    });
  }

  /** May deliveries start now? */
  mayStart(): boolean {
    return this.d.leases.fresh();
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.d.leases.pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A task ended: a lost message it held can go now. */
  taskEnded(): void {
    if (this.lost.size > 0) this.dropLost();
  }

  private dropLost(): void {
    for (const m of this.lost) if (this.d.drop(m)) this.lost.delete(m);
  }

  private tick(): void {
    if (!this.d.running()) return;
    const fresh = this.d.leases.fresh();
    if (fresh && !this.wasFresh) this.d.warn('scheduler: leases renewed again; deliveries resume');
    if (!fresh && this.wasFresh) this.d.warn('scheduler: leases could not be renewed; no delivery starts and no work is claimed until they are');
    this.wasFresh = fresh;
    if (!fresh) return;
    this.d.share(this.d.leases.nodes());
    this.dropLost();
    if (this.loading || !this.d.hasRoom()) return this.d.pump();
    this.loading = true;
    this.d
      .load()
      .catch((e: unknown) => this.d.warn(`scheduler: claiming work: ${(e as Error).message}`))
      .finally(() => (this.loading = false));
  }
}
