/*
 * transport-security/tlsrpt-pg.ts — one TLS-RPT report per day and policy
 * domain for a whole cluster (docs/cluster.md, "Shared policy state"),
 * through the PostgreSQL of its shared queue.
 *
 * Each node counts its own sessions (tlsrpt-store.ts, as on one node). At
 * each hourly report run it:
 *  1. pushes the counts of its finished days into postern_tlsrpt (one row
 *     per day, domain and node) and forgets them locally once written;
 *  2. claims the rows of days that ended more than GRACE_MS ago (every
 *     node has pushed by then: each runs hourly) and nobody has claimed,
 *     or whose claim expired: one UPDATE … RETURNING, so two nodes never
 *     claim the same row;
 *  3. merges them (successes and failures summed per policy) and sends
 *     the reports as a single node does (tlsrpt-send.ts); a (day, domain)
 *     the sender is done with (sent, no record, too old) has its rows
 *     deleted; the others stay claimed for CLAIM, then any node retries.
 * When the database is away at step 1, the node sends its own counts as a
 * single node would (one report per node for that day: RFC 8460 allows a
 * domain several); counts are never lost for it.
 */
import type { Pool } from 'pg';
import type { PolicyCounts } from './tlsrpt-store.js';
import { TlsRptStore, dayOf } from './tlsrpt-store.js';

/** Days are reported this long after they end. */
export const GRACE_MS = 2 * 3_600_000;
const CLAIM = '10 minutes';

type ReportStore = Pick<TlsRptStore, 'finishedDays' | 'day' | 'forget'>;

export interface ClusterReportsOptions {
  readonly pool: Pick<Pool, 'query'>;
  readonly node: string;
  /** This node's counts. */
  readonly local: TlsRptStore;
  readonly log: (line: string) => void;
  readonly now?: () => number;
}

/** One report run for the cluster: `send` gets the counts to report (the cluster's merged, or this node's alone). */
export async function clusterReports(o: ClusterReportsOptions, send: (store: ReportStore) => Promise<void>): Promise<void> {
  const now = o.now ?? Date.now;
  try {
    for (const day of o.local.finishedDays()) {
      for (const [domain, counts] of o.local.day(day)) {
        await o.pool.query(
          `INSERT INTO postern_tlsrpt (day, domain, node, counts) VALUES ($1, $2, $3, $4::jsonb)
           ON CONFLICT (day, domain, node) DO UPDATE SET counts = excluded.counts`,
          [day, domain, o.node, JSON.stringify(counts)],
        );
        o.local.forget(day, domain);
      }
    }
  } catch (e) {
    o.log(`tls-report: the shared counts are unavailable (${(e as Error).message}); this node reports its own`);
    return send(o.local);
  }
  const r = await o.pool.query<{ day: string; domain: string; counts: PolicyCounts[] }>(
    `UPDATE postern_tlsrpt SET claimed_by = $1, claimed_until = now() + interval '${CLAIM}'
      WHERE day < $2 AND (claimed_until IS NULL OR claimed_until < now()) RETURNING day, domain, counts`,
    [o.node, dayOf(now() - GRACE_MS)],
  );
  if (r.rows.length === 0) return;
  const merged = new TlsRptStore(undefined, () => now() - GRACE_MS);
  for (const row of r.rows) merged.merge(row.day, row.domain, row.counts);
  const done: Promise<unknown>[] = [];
  await send({
    finishedDays: () => merged.finishedDays(),
    day: (day) => merged.day(day),
    forget: (day, domain) => {
      merged.forget(day, domain);
      done.push(o.pool.query('DELETE FROM postern_tlsrpt WHERE day = $1 AND domain = $2 AND claimed_by = $3', [day, domain, o.node]).catch(() => undefined));
    },
  });
  await Promise.all(done);
}
