/*
 * spool/pg/schema.ts — the PostgreSQL spool's schema, as numbered
 * migrations, and the check that a database has the version this code
 * reads (docs/architecture.md, "The PostgreSQL spool").
 *
 * Migrations run only when asked (`postern db migrate`, or a test); the
 * daemon refuses to start on a database whose version differs from
 * SCHEMA_VERSION (SpoolError VERSION), so that a production database is
 * never changed as a side effect of a start. Each migration runs in one
 * transaction with its version row; several nodes running the command at
 * once are serialized by a row lock (postern_schema_lock).
 *
 * SQL kept to the list in docs/cluster.md ("What the database must
 * offer"), which CockroachDB and YugabyteDB also document: plain tables,
 * jsonb, bytea, timestamptz, ON DELETE CASCADE, INSERT … ON CONFLICT,
 * UPDATE … RETURNING, SELECT … FOR UPDATE SKIP LOCKED, row locks. No large
 * objects, no stored procedures or triggers, no advisory locks, no LOCK
 * TABLE, no LISTEN/NOTIFY.
 */
import type { Pool, PoolClient } from 'pg';
import { SpoolError } from '../errors.js';
import { checkout } from '../../cluster/pg.js';

/** The version this code reads and writes. */
export const SCHEMA_VERSION = 2;

const MIGRATIONS: readonly { readonly version: number; readonly sql: string }[] = [
  {
    version: 1,
    sql: `
CREATE TABLE postern_message (
  msgid        text PRIMARY KEY CHECK (msgid ~ '^[0-9a-f]{8}$'),
  -- 'writing': reserved by a writer (msgid taken, not committed, never delivered); 'queued': committed.
  state        text NOT NULL CHECK (state IN ('writing', 'queued')),
  envelope     jsonb,
  size         bigint,
  chunks       integer,
  created      timestamptz NOT NULL DEFAULT now(),
  -- The node that committed the message (for smtpctl and the logs).
  origin       text NOT NULL,
  -- The lease: which node may deliver it, until when (the database's clock).
  lease_holder text,
  lease_until  timestamptz
);
CREATE INDEX postern_message_lease ON postern_message (lease_until);
CREATE TABLE postern_body_chunk (
  msgid text NOT NULL REFERENCES postern_message (msgid) ON DELETE CASCADE,
  seq   integer NOT NULL,
  data  bytea NOT NULL,
  PRIMARY KEY (msgid, seq)
);
CREATE TABLE postern_outcome (
  id      bigserial PRIMARY KEY,
  msgid   text NOT NULL REFERENCES postern_message (msgid) ON DELETE CASCADE,
  evpid   text NOT NULL,
  outcome jsonb NOT NULL
);
CREATE INDEX postern_outcome_msgid ON postern_outcome (msgid, id);
-- The nodes alive (a heartbeat with every lease renewal): each takes its share of per-destination limits.
CREATE TABLE postern_node (
  name text PRIMARY KEY,
  seen timestamptz NOT NULL
);
-- Policy counters shared by the nodes (cluster/failrate.ts): events per kind, key and minute.
CREATE TABLE postern_counter (
  kind   text NOT NULL,
  key    text NOT NULL,
  minute bigint NOT NULL,
  n      integer NOT NULL,
  PRIMARY KEY (kind, key, minute)
);
-- ETRN asked on one node, for every node (cluster/etrn.ts); rows older than an hour are pruned.
CREATE TABLE postern_etrn (
  id     bigserial PRIMARY KEY,
  domain text NOT NULL,
  origin text NOT NULL,
  at     timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    // Shared policy state (docs/cluster.md, "Shared policy state") and smtpctl across nodes.
    version: 2,
    sql: `
-- Greylisting (antispam/greylist/store-pg.ts): triplets and client networks, times in ms since the epoch.
CREATE TABLE postern_greylist (
  key    text PRIMARY KEY,
  first  bigint NOT NULL,
  last   bigint NOT NULL,
  passed boolean NOT NULL
);
CREATE TABLE postern_greylist_client (
  net    text PRIMARY KEY,
  passes integer NOT NULL,
  last   bigint NOT NULL
);
-- Rate-limit counts (cluster/rates.ts): events per key in the window that ends at window_end (ms since the epoch).
CREATE TABLE postern_rate (
  key        text NOT NULL,
  window_end bigint NOT NULL,
  max        integer NOT NULL,
  n          integer NOT NULL,
  PRIMARY KEY (key, window_end)
);
-- Simultaneous connections per client address, per node (cluster/connections.ts); rows of dead nodes are ignored.
CREATE TABLE postern_connection (
  node   text NOT NULL,
  client text NOT NULL,
  n      integer NOT NULL,
  PRIMARY KEY (node, client)
);
-- MTA-STS policies (transport-security/sts-cache-pg.ts), one per policy domain.
CREATE TABLE postern_sts_policy (
  domain text PRIMARY KEY,
  entry  jsonb NOT NULL
);
-- TLS-RPT counts of finished days, per node, until one node sends the day's merged report (transport-security/tlsrpt-pg.ts).
CREATE TABLE postern_tlsrpt (
  day           text NOT NULL,
  domain        text NOT NULL,
  node          text NOT NULL,
  counts        jsonb NOT NULL,
  claimed_by    text,
  claimed_until timestamptz,
  PRIMARY KEY (day, domain, node)
);
-- smtpctl schedule/remove/hold/release asked on one node for messages another node holds (cluster/queue-control.ts).
CREATE TABLE postern_request (
  id     bigserial PRIMARY KEY,
  action text NOT NULL CHECK (action IN ('schedule', 'remove', 'hold', 'release')),
  target text NOT NULL,
  origin text NOT NULL,
  at     timestamptz NOT NULL DEFAULT now()
);
`,
  },
];

type Queryable = Pick<Pool, 'query'> | PoolClient;

/** The schema version of the database, 0 for an empty one. */
export async function schemaVersion(db: Queryable): Promise<number> {
  const t = await db.query<{ present: boolean }>(`SELECT to_regclass('postern_schema') IS NOT NULL AS present`);
  if (t.rows[0]?.present !== true) return 0;
  const r = await db.query<{ v: number | null }>('SELECT max(version) AS v FROM postern_schema');
  return r.rows[0]?.v ?? 0;
}

/** Refuse a database this code does not read (not migrated, or migrated by newer code). */
export async function checkSchema(db: Queryable): Promise<void> {
  const v = await schemaVersion(db);
  if (v === SCHEMA_VERSION) return;
  if (v < SCHEMA_VERSION) throw new SpoolError('VERSION', `the database has schema version ${v}, this Postern needs ${SCHEMA_VERSION}: run "postern db migrate" first`);
  throw new SpoolError('VERSION', `the database has schema version ${v}, newer than this Postern's ${SCHEMA_VERSION}: upgrade Postern`);
}

/** Bring the database to SCHEMA_VERSION (or `upTo`, for tests of an upgrade). Returns the versions applied (empty: it was current). */
export async function migrate(pool: Pool, log: (line: string) => void = () => undefined, upTo = SCHEMA_VERSION): Promise<number[]> {
  const client = await checkout(pool);
  const applied: number[] = [];
  try {
    await client.query('CREATE TABLE IF NOT EXISTS postern_schema (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())');
    // One row that each migration's transaction locks: a row lock, which CockroachDB and YugabyteDB have (neither has LOCK TABLE).
    await client.query('CREATE TABLE IF NOT EXISTS postern_schema_lock (id integer PRIMARY KEY)');
    await client.query('INSERT INTO postern_schema_lock (id) VALUES (1) ON CONFLICT (id) DO NOTHING');
    for (const m of MIGRATIONS.filter((x) => x.version <= upTo)) {
      await client.query('BEGIN');
      try {
        await client.query('SELECT id FROM postern_schema_lock WHERE id = 1 FOR UPDATE');
        const done = await client.query('SELECT 1 FROM postern_schema WHERE version = $1', [m.version]);
        if (done.rowCount === 0) {
          await client.query(m.sql);
          await client.query('INSERT INTO postern_schema (version) VALUES ($1)', [m.version]);
          applied.push(m.version);
          log(`db: schema version ${m.version} applied`);
        }
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
    }
    const v = await schemaVersion(client);
    if (v > SCHEMA_VERSION && upTo === SCHEMA_VERSION) throw new SpoolError('VERSION', `the database has schema version ${v}, newer than this Postern's ${SCHEMA_VERSION}`);
  } finally {
    client.release();
  }
  return applied;
}
