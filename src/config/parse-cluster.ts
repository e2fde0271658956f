/*
 * config/parse-cluster.ts — the settings of a node that shares its queue
 * with others through PostgreSQL (docs/cluster.md, docs/configuration.md):
 *
 *   queue postgresql "postgres://user@host/db"   the shared spool (instead of `queue path`'s files)
 *   queue node NAME                              this node's name in leases (default: the host name)
 *   queue lease DURATION                         how long a lease lasts unrenewed (default 30s)
 *
 * Called by parse-options.ts's parseQueue for these three words.
 */
import type { Cursor } from './cursor.js';
import { parseDuration } from './values.js';

export const CLUSTER_QUEUE_OPTIONS = ['postgresql', 'node', 'lease'];

export function parseQueueCluster(c: Cursor): void {
  const kw = c.next();
  const t = c.next();
  const label = `"queue ${t.text}"`;
  const v = c.value(`a value after ${label}`);
  c.end('queue');
  switch (t.text) {
    case 'postgresql':
      if (!/^postgres(ql)?:\/\//.test(v.text)) c.error(v.pos, `${label} wants a URL: "postgres://user@host:port/database" (credentials: a password file, see docs/cluster.md)`);
      else c.set('queuePostgresql', v.text, kw.pos, label);
      break;
    case 'node':
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(v.text)) c.error(v.pos, `${label}: letters, digits, ".", "_" and "-" only (at most 64)`);
      else c.set('queueNode', v.text, kw.pos, label);
      break;
    default: {
      const r = parseDuration(v.text, true);
      if (!r.ok) c.error(v.pos, r.error);
      else if (r.value < 1000) c.error(v.pos, `${label} must be at least 1s`);
      else c.set('queueLeaseMs', r.value, kw.pos, label);
    }
  }
}
