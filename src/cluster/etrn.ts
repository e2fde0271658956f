/*
 * cluster/etrn.ts — ETRN across the nodes of a cluster that shares its
 * queue in PostgreSQL (docs/cluster.md).
 *
 * The node that hears ETRN runs its own queue for the domain (the
 * scheduler), writes one row to postern_etrn, and answers from the shared
 * queue: 250 when some queued message has a recipient in the domain
 * (RFC 1985 §5: "@domain" includes subdomains), 251 when none has. Every
 * other node reads the rows of the last minute at each poll (about once a
 * second), and runs its queue for each domain it has not seen yet; so the
 * mail is tried now wherever its lease is held. Rows are read by time, not
 * by id, so a row committed late is not skipped; an hour later it is
 * pruned. Plain SQL only (no LISTEN/NOTIFY), as for the spool.
 */
import type { Pool } from 'pg';
import { Periodic } from './periodic.js';

export interface EtrnRelayOptions {
  readonly pool: Pool;
  readonly node: string;
  readonly pollMs: number;
  /** Run this node's queue for a domain (the scheduler's etrn). */
  readonly run: (domain: string) => void;
  readonly log: (line: string) => void;
}

export class EtrnRelay extends Periodic {
  private readonly seen = new Set<string>();
  private polls = 0;

  constructor(private readonly o: EtrnRelayOptions) {
    super('ETRN', 'ETRN runs this node\'s queue only meanwhile', o.log);
  }

  override start(): void {
    super.start(this.o.pollMs);
  }

  /** Tell the other nodes; true when the shared queue holds mail for the domain. */
  async announce(domain: string): Promise<boolean> {
    const d = domain.toLowerCase();
    await this.o.pool.query('INSERT INTO postern_etrn (domain, origin) VALUES ($1, $2)', [d, this.o.node]);
    const sub = d.startsWith('@');
    const bare = sub ? d.slice(1) : d;
    const r = await this.o.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM postern_message m
        WHERE m.state = 'queued' AND EXISTS (
          SELECT 1 FROM jsonb_array_elements(m.envelope -> 'recipients') AS r(v)
           WHERE lower(split_part(r.v ->> 'address', '@', 2)) = $1
              OR ($2 AND lower(split_part(r.v ->> 'address', '@', 2)) LIKE '%.' || $1))`,
      [bare, sub],
    );
    return Number(r.rows[0]?.n ?? 0) > 0;
  }

  protected async exchange(): Promise<void> {
    const r = await this.o.pool.query<{ id: string; domain: string }>(`SELECT id, domain FROM postern_etrn WHERE origin <> $1 AND at > now() - interval '1 minute' ORDER BY id`, [this.o.node]);
    const live = new Set<string>();
    for (const row of r.rows) {
      live.add(row.id);
      if (this.seen.has(row.id)) continue;
      this.seen.add(row.id);
      this.o.log(`cluster: ETRN ${row.domain} from another node`);
      this.o.run(row.domain);
    }
    for (const id of this.seen) if (!live.has(id)) this.seen.delete(id);
    if (++this.polls % 600 === 0) await this.o.pool.query(`DELETE FROM postern_etrn WHERE at < now() - interval '1 hour'`);
  }

  protected failed(): void {
    /* the database is away: the leases say so in the log; ETRN rows are read again when it is back */
  }
}
