/*
 * test/e2e/cluster-helpers.ts — what the cluster tests (cluster-pg,
 * cluster-policy-pg) share: a node (its name, loopback address and folder,
 * and its daemon once started), the postern command, and the schema made
 * as an administrator makes it (`postern db migrate`, with a db.conf in
 * the test's folder that later commands may use too).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, type DaemonHandle } from '../helpers/daemon.js';
import { run } from '../helpers/tools.js';

export const POSTERN = join(REPO, 'bin', 'postern.js');

export interface ClusterNode {
  readonly name: string;
  readonly address: string;
  readonly dir: string;
  d?: DaemonHandle;
}

/** `postern db migrate` on the database at `url` (through `root`/db.conf); what it printed. */
export async function migrate(root: string, url: string): Promise<string> {
  writeFileSync(join(root, 'db.conf'), `queue postgresql "${url}"\n`);
  const m = await run(process.execPath, [POSTERN, 'db', '-f', join(root, 'db.conf'), 'migrate'], { timeoutMs: 30_000 });
  assert.equal(m.status, 0, m.stderr);
  return m.stdout;
}
