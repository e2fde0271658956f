/*
 * daemon/open-spool.ts — the daemon's spool, by the configuration: the
 * file spool in `queue path` (the default), or, with `queue postgresql`,
 * the queue shared with other nodes in PostgreSQL, with leases
 * (docs/cluster.md). The database must have been migrated beforehand
 * (`postern db migrate`): the daemon never changes its schema.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/model.js';
import type { MailLog } from '../log/maillog.js';
import type { Stats } from '../stats.js';
import { FsSpool } from '../spool/fs/fs-spool.js';
import { PgSpool } from '../spool/pg/pg-spool.js';
import type { Leases } from '../spool/leases.js';
import type { Spool } from '../spool/spool.js';
import type { Pool } from 'pg';

export interface DaemonSpool {
  readonly spool: Spool;
  /** The shared spool's leases, for the scheduler. */
  readonly leases?: Leases;
  /** What the start-up log line calls it. */
  readonly where: string;
  /** The shared spool's database and this node's name (ETRN across nodes, cluster/etrn.ts). */
  readonly cluster?: { readonly pool: Pool; readonly node: string; readonly pollMs: number; readonly leaseMs: number };
}

/** This node's name: `queue node`, else the host name's first label. */
export function nodeName(config: Config): string {
  return config.queue.postgresql?.node ?? (hostname().split('.')[0] || 'postern').replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
}

export function daemonSpool(config: Config, log: MailLog, stats: Stats): DaemonSpool {
  const pgc = config.queue.postgresql;
  if (pgc === undefined) {
    const spool = new FsSpool({ root: config.queue.path, checkAtOpen: false, groupCommitMs: config.queue.groupCommitMs, log: (l) => log.info(`spool: ${l}`), onBatch: (n, s) => stats.probe.spoolBatch(n, s) });
    return { spool, where: config.queue.path };
  }
  const node = nodeName(config);
  // `queue path` still holds this node's own files: pid file, control socket, offline/ for sendmail (daemon.ts makes it, after privileges are dropped).
  const spool = new PgSpool({ url: pgc.url, node, leases: { ttlMs: pgc.leaseMs }, tmpDir: join(config.queue.path, 'pg-tmp'), log: (l) => log.info(`spool: ${l}`) });
  // The URL may hold a password: the log names the node, never the URL.
  return { spool, ...(spool.leases ? { leases: spool.leases } : {}), where: `postgresql (node ${node})`, cluster: { pool: spool.pool, node, pollMs: spool.leases?.pollMs ?? 1000, leaseMs: spool.leases?.opts.ttlMs ?? 30_000 } };
}
