/*
 * The torture run's short mode (bench/torture/run.ts --short, about a
 * minute): abandoned STARTTLS/smtps floods, slow clients, an idle crowd,
 * the dialogue fuzzer, renegotiation, kill -9 under load and a full disk,
 * against the built daemon. Its table is printed; any failed check fails
 * this test (docs/hostile.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { REPO } from '../helpers/daemon.js';
import { run } from '../helpers/tools.js';

test('npm run torture -- --short: every check passes', { timeout: 240_000 }, async () => {
  const r = await run(process.execPath, [join(REPO, 'dist/bench/torture/run.js'), '--short'], { timeoutMs: 230_000 });
  console.log(r.stdout);
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /\| abandoned STARTTLS flood +\| pass/);
});
