/*
 * The shape of the source (docs/architecture.md, "Layers"): dependency-cruiser
 * with .dependency-cruiser.cjs finds no import cycle between files and no
 * folder importing a higher layer. Runs on the TypeScript sources, so
 * type-only imports count too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const root = join(dirname(require.resolve('../../../package.json')));

test('no import cycle and no layer violation in src/', () => {
  const bin = join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
  const r = spawnSync(process.execPath, [bin, 'src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  // A cruise that found no modules would pass vacuously (for example without a TypeScript parser).
  const m = /(\d+) modules, (\d+) dependencies cruised/.exec(r.stdout);
  assert.ok(m && Number(m[1]) > 150 && Number(m[2]) > 500, `too little was cruised: ${r.stdout}`);
});
