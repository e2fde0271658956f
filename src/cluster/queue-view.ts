/*
 * cluster/queue-view.ts — `smtpctl show cluster`: the whole shared queue
 * as any node sees it in PostgreSQL (docs/cluster.md): every message, the
 * node that accepted it, the node that holds its lease and for how long
 * yet. At most LIMIT messages, oldest first.
 */
import type { Pool } from 'pg';

export interface ClusterEntry {
  readonly msgid: string;
  readonly state: 'writing' | 'queued';
  /** The node that accepted it. */
  readonly origin: string;
  /** The node that holds its lease, or "-". */
  readonly holder: string;
  /** Seconds left on the lease; negative: expired; null: no lease. */
  readonly lease: number | null;
  readonly sender: string;
  readonly rcpts: number;
  readonly size: number;
  /** When it was accepted, ms since the epoch. */
  readonly created: number;
}

const LIMIT = 10_000;

export async function clusterQueue(pool: Pool): Promise<ClusterEntry[]> {
  const r = await pool.query<{ msgid: string; state: 'writing' | 'queued'; origin: string; holder: string | null; lease: string | null; sender: string | null; rcpts: number | null; size: string | null; created: Date }>(
    `SELECT msgid, state, origin, lease_holder AS holder,
            floor(extract(epoch FROM lease_until - now())) AS lease,
            envelope ->> 'sender' AS sender, jsonb_array_length(envelope -> 'recipients') AS rcpts, size, created
       FROM postern_message ORDER BY created LIMIT ${LIMIT}`,
  );
  return r.rows.map((x) => ({
    msgid: x.msgid,
    state: x.state,
    origin: x.origin,
    holder: x.holder ?? '-',
    lease: x.lease === null ? null : Number(x.lease),
    sender: x.sender ?? '',
    rcpts: x.rcpts ?? 0,
    size: Number(x.size ?? 0),
    created: x.created.getTime(),
  }));
}
