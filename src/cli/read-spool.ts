/*
 * cli/read-spool.ts — the queue as the commands read it with the daemon
 * stopped (smtpctl show queue/envelope/message): the filesystem spool
 * opened without recovery and without a journal, so nothing on disk
 * changes while the daemon, if it starts meanwhile, owns the spool.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/model.js';
import { OfflineError } from '../control/offline.js';
import { FsSpool } from '../spool/fs/fs-spool.js';
import { PgSpool } from '../spool/pg/pg-spool.js';
import type { Spool } from '../spool/spool.js';

/**
 * The spool as a command that only reads opens it: the file spool without
 * recovery, or the cluster's PostgreSQL queue without leases and without
 * touching reservations (docs/cluster.md).
 */
export function readerSpool(config: Config): Spool {
  const pgc = config.queue.postgresql;
  if (pgc !== undefined) return new PgSpool({ url: pgc.url, node: 'reader', leases: false, recover: false, poolSize: 2 });
  return new FsSpool({ root: config.queue.path, recover: false });
}

export async function openSpoolForReading(config: Config): Promise<Spool> {
  // Opening creates the folders: a tool that only reads must not make a spool where there is none.
  if (config.queue.postgresql === undefined && !existsSync(join(config.queue.path, 'queue'))) throw new OfflineError(`smtpd is not running and there is no queue in ${config.queue.path}`);
  const spool = readerSpool(config);
  try {
    await spool.open();
  } catch (e) {
    await spool.close().catch(() => undefined);
    throw new OfflineError(`cannot read the queue in ${config.queue.path}: ${(e as Error).message}`);
  }
  return spool;
}
