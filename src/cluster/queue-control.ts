/*
 * cluster/queue-control.ts — `smtpctl schedule | remove | pause envelope |
 * resume envelope` on any node of a cluster acts on the whole shared
 * queue (docs/cluster.md, "smtpctl in a cluster").
 *
 * The node that hears the command acts on what it holds itself (the
 * scheduler, as on one node), then act() takes care of the rest:
 *  - messages whose lease another node holds: one row in postern_request
 *    (action, target, origin). Every node reads the rows of the last
 *    minute at each poll and applies each one to what it holds; a row that
 *    found nothing on a node is tried again at its next polls (the node may
 *    claim the message meanwhile) until it applied or is a minute old. So
 *    the lease holder acts within a poll (about a second); act() answers
 *    which nodes hold what.
 *  - messages nobody holds (no lease, or an expired one): remove, hold and
 *    release are done in the database at once, in one transaction that
 *    locks their rows (FOR UPDATE SKIP LOCKED: a row a node is claiming
 *    at that moment is left to the request row): remove of a message
 *    deletes it (smtpctl remove sends no report), remove of one envelope
 *    and hold/release append the same outcome records the scheduler would
 *    (spool/pg: postern_outcome), which the node that claims it next reads.
 *    schedule needs no change there: the next node to claim it runs it
 *    (the request row asks it to try now).
 * A target ("all", a msgid or an evpid) that names nothing anywhere is an
 * error for the caller to report (found: false).
 */
import type { Pool } from 'pg';
import type { RecipientOutcome } from '../mail/envelope.js';
import { transaction } from './pg.js';
import { Periodic } from './periodic.js';

/** An evpid (spool ids: 16 hex digits, the first 8 its msgid's). */
const isEvpid = (s: string): boolean => /^[0-9a-f]{16}$/.test(s);

export type QueueAction = 'schedule' | 'remove' | 'hold' | 'release';

export interface ClusterActResult {
  /** Something in the shared queue matched the target. */
  readonly found: boolean;
  /** Envelopes acted on in the database (messages no node holds). */
  readonly direct: number;
  /** Messages another node holds, per node: asked to act at its next poll. */
  readonly asked: readonly { readonly node: string; readonly messages: number }[];
}

export interface QueueControlOptions {
  readonly pool: Pool;
  readonly node: string;
  readonly pollMs: number;
  /** Apply an action to what this node holds (the scheduler); envelopes acted on. */
  readonly apply: (action: QueueAction, target: string) => Promise<number>;
  readonly log: (line: string) => void;
}

interface Row {
  readonly msgid: string;
  readonly holder: string | null;
  readonly live: boolean;
}

export class ClusterQueueControl extends Periodic {
  /** Request ids applied (or for good not applicable) on this node. */
  private readonly done = new Set<string>();
  private polls = 0;

  constructor(private readonly o: QueueControlOptions) {
    super('smtpctl requests', 'they wait for it', o.log);
  }

  override start(): void {
    super.start(this.o.pollMs);
  }

  /** The rest of the cluster's part of a command this node already applied to what it holds. */
  async act(action: QueueAction, target: string): Promise<ClusterActResult> {
    const msgid = target === 'all' ? null : isEvpid(target) ? target.slice(0, 8) : target;
    const r = await this.o.pool.query<Row>(
      `SELECT msgid, lease_holder AS holder, coalesce(lease_until > now(), false) AS live FROM postern_message
        WHERE state = 'queued' AND ($1::text IS NULL OR msgid = $1)`,
      [msgid],
    );
    if (r.rows.length === 0) return { found: false, direct: 0, asked: [] };
    const others = r.rows.filter((x) => x.live && x.holder !== this.o.node);
    const free = r.rows.filter((x) => !x.live && x.holder !== this.o.node);
    const asked = new Map<string, number>();
    for (const x of others) asked.set(x.holder ?? '-', (asked.get(x.holder ?? '-') ?? 0) + 1);
    if (others.length > 0 || (action === 'schedule' && free.length > 0)) {
      await this.o.pool.query('INSERT INTO postern_request (action, target, origin) VALUES ($1, $2, $3)', [action, target, this.o.node]);
    }
    const direct = action === 'schedule' || free.length === 0 ? 0 : await this.direct(action, target, free.map((x) => x.msgid));
    return { found: true, direct, asked: [...asked].map(([node, messages]) => ({ node, messages })) };
  }

  /** remove / hold / release on messages nobody holds, under their row locks. */
  private async direct(action: Exclude<QueueAction, 'schedule'>, target: string, msgids: readonly string[]): Promise<number> {
    const n = await transaction(this.o.pool, async (c) => {
      const rows = (
        await c.query<{ msgid: string; evpids: string[] }>(
          `SELECT msgid, ARRAY(SELECT r ->> 'evpid' FROM jsonb_array_elements(envelope -> 'recipients') AS e(r)) AS evpids
             FROM postern_message WHERE msgid = ANY($1) AND state = 'queued' AND (lease_until IS NULL OR lease_until < now())
              FOR UPDATE SKIP LOCKED`,
          [msgids],
        )
      ).rows;
      const evpids = rows.flatMap((x) => x.evpids).filter((e) => !isEvpid(target) || e === target);
      const at = Date.now();
      if (action === 'remove' && !isEvpid(target)) {
        await c.query('DELETE FROM postern_message WHERE msgid = ANY($1)', [rows.map((x) => x.msgid)]);
      } else {
        const outcome: RecipientOutcome = action === 'remove' ? { kind: 'failed', at, detail: 'removed by the administrator' } : action === 'hold' ? { kind: 'held', at } : { kind: 'released', at };
        await c.query('INSERT INTO postern_outcome (msgid, evpid, outcome) SELECT substr(e, 1, 8), e, $2::jsonb FROM unnest($1::text[]) AS u(e)', [evpids, JSON.stringify(outcome)]);
      }
      return evpids.length;
    });
    if (n > 0) this.o.log(`cluster: ${action} ${target}: ${n} envelope(s) no node holds, done in the database`);
    return n;
  }

  /** Apply the other nodes' requests of the last minute to what this node holds. */
  protected async exchange(): Promise<void> {
    const r = await this.o.pool.query<{ id: string; action: QueueAction; target: string; origin: string }>(
      `SELECT id, action, target, origin FROM postern_request WHERE origin <> $1 AND at > now() - interval '1 minute' ORDER BY id`,
      [this.o.node],
    );
    const live = new Set<string>();
    for (const row of r.rows) {
      live.add(row.id);
      if (this.done.has(row.id)) continue;
      const n = await this.o.apply(row.action, row.target);
      if (n > 0) this.o.log(`cluster: ${row.action} ${row.target} asked on ${row.origin}: ${n} envelope(s) here`);
      // "all" applies once to what this node holds; a msgid or evpid waits until this node holds it.
      if (n > 0 || row.target === 'all') this.done.add(row.id);
    }
    for (const id of this.done) if (!live.has(id)) this.done.delete(id);
    if (++this.polls % 600 === 0) await this.o.pool.query(`DELETE FROM postern_request WHERE at < now() - interval '1 hour'`);
  }

  protected failed(): void {
    /* the rows stay: read again at the next poll */
  }
}
