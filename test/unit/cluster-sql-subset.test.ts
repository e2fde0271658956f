/*
 * The SQL of the PostgreSQL spool and the cluster's shared state keeps to
 * the subset docs/cluster.md ("What the database must offer") lists, the
 * one CockroachDB and YugabyteDB also document: every source file that
 * talks to the database (imports pg or cluster/pg.ts) is read, comments
 * left out, and none of the features outside that subset may appear.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';

const require = createRequire(import.meta.url);
const root = dirname(require.resolve('../../../package.json'));

/** Outside the subset, with why. */
const FORBIDDEN: readonly [RegExp, string][] = [
  [/\bLOCK\s+TABLE\b/i, 'LOCK TABLE (CockroachDB never had it; YugabyteDB only behind a flag)'],
  [/\bpg_advisory\w*/i, 'advisory locks (stubs on CockroachDB)'],
  [/\b(LISTEN|NOTIFY|pg_notify)\b/, 'LISTEN/NOTIFY'],
  [/\blo_(create|import|export|unlink|open|get|put)\b|\boid\b/i, 'large objects'],
  [/\bCREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|TRIGGER|RULE|SEQUENCE)\b/i, 'functions, procedures, triggers, rules, sequences'],
  [/\bpg_stat_\w+|\bpg_current_wal_lsn\b/i, 'PostgreSQL statistics views (the bench only)'],
  [/\bTRUNCATE\b/i, 'TRUNCATE'],
  [/\bON\s+COMMIT\b|\bTEMP(ORARY)?\s+TABLE\b/i, 'temporary tables'],
  [/\bpg_try_advisory|\bxmin\b|\bctid\b/i, 'system columns'],
];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

test('the SQL sent to the database keeps to the subset the distributed engines share', () => {
  const talking = sources(join(root, 'src')).filter((f) => /from '(pg|[./]*cluster\/pg\.js|\.\/pg\.js)'/.test(readFileSync(f, 'utf8')));
  assert.ok(talking.length >= 10, `too few files found: ${talking.join(', ')}`);
  const found: string[] = [];
  for (const f of talking) {
    const code = readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '').replace(/--[^\n`]*/g, '');
    for (const [re, what] of FORBIDDEN) if (re.test(code)) found.push(`${f.slice(root.length + 1)}: ${what}`);
  }
  assert.deepEqual(found, []);
});
