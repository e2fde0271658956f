/*
 * cli/db.ts — `postern db`: the shared PostgreSQL queue of a cluster
 * (docs/cluster.md). Reads `queue postgresql` from smtpd.conf (-f FILE,
 * else as the other commands find it: cli/config-for-tools.ts).
 *
 *   postern db [-f file] migrate              apply the schema migrations (the daemon never does)
 *   postern db [-f file] status               schema version; messages and leases per node
 *   postern db [-f file] import-spool [DIR]   move a stopped node's file spool (DIR, default
 *                                             `queue path`) into the shared queue, without loss
 */
import pg from 'pg';
import type { Config } from '../config/model.js';
import { FsSpool } from '../spool/fs/fs-spool.js';
import { moveSpool } from '../spool/move.js';
import { PgSpool } from '../spool/pg/pg-spool.js';
import { SCHEMA_VERSION, migrate, schemaVersion } from '../spool/pg/schema.js';
import { toolConfig } from './config-for-tools.js';

const USAGE = 'usage: postern db [-f file] migrate | status | import-spool [DIR]';

function fail(msg: string, code = 1): never {
  process.stderr.write(`postern db: ${msg}\n`);
  process.exit(code);
}

function url(config: Config): string {
  const u = config.queue.postgresql?.url;
  if (u === undefined) fail('the configuration has no "queue postgresql" (docs/cluster.md)');
  return u;
}

export async function dbMain(argv: string[]): Promise<void> {
  let file: string | undefined;
  const args = [...argv];
  if (args[0] === '-f') {
    file = args[1];
    args.splice(0, 2);
    if (file === undefined) fail(USAGE, 64);
  }
  const [cmd, ...rest] = args;
  const config = toolConfig(file, 'postern db');
  switch (cmd) {
    case 'migrate': {
      const pool = new pg.Pool({ connectionString: url(config), max: 1 });
      try {
        const applied = await migrate(pool, (l) => process.stdout.write(`${l}\n`));
        process.stdout.write(applied.length === 0 ? `schema version ${SCHEMA_VERSION}: nothing to do\n` : `schema version ${SCHEMA_VERSION}\n`);
      } finally {
        await pool.end();
      }
      return;
    }
    case 'status':
      return status(config);
    case 'import-spool':
      return importSpool(config, rest[0] ?? config.queue.path);
    default:
      fail(USAGE, 64);
  }
}

async function status(config: Config): Promise<void> {
  const pool = new pg.Pool({ connectionString: url(config), max: 1 });
  try {
    const v = await schemaVersion(pool);
    process.stdout.write(`schema version ${v} (this Postern: ${SCHEMA_VERSION})\n`);
    if (v === 0) return;
    const r = await pool.query<{ holder: string | null; state: string; live: boolean; n: string }>(
      `SELECT lease_holder AS holder, state, coalesce(lease_until > now(), false) AS live, count(*) AS n
         FROM postern_message GROUP BY 1, 2, 3 ORDER BY 1 NULLS FIRST, 2, 3`,
    );
    for (const row of r.rows) {
      const who = row.state === 'writing' ? 'being received' : row.holder === null ? 'not leased' : `${row.holder}${row.live ? '' : ' (lease expired)'}`;
      process.stdout.write(`${row.n.padStart(8)}  ${row.state.padEnd(8)}  ${who}\n`);
    }
  } finally {
    await pool.end();
  }
}

async function importSpool(config: Config, dir: string): Promise<void> {
  const from = new FsSpool({ root: dir, journal: false });
  const to = new PgSpool({ url: url(config), node: 'import', leases: false, recover: false });
  await from.open();
  try {
    await to.open();
    const r = await moveSpool(from, to, (l) => process.stdout.write(`${l}\n`));
    process.stdout.write(`${r.moved} message(s) moved, ${r.failed} left in ${dir}\n`);
    if (r.failed > 0) process.exitCode = 1;
  } finally {
    await to.close();
    await from.close();
  }
}
