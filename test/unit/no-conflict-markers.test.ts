/*
 * No merge conflict markers in the checkout: a merge once committed
 * `<<<<<<< HEAD` … `>>>>>>> branch` blocks into docs/, where no compiler
 * sees them. Walks every text file the project ships or tests with
 * (sources, tests, benches, docs, man pages, scripts, etc/, web/).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';

const require = createRequire(import.meta.url);
const root = dirname(require.resolve('../../../package.json'));
const FOLDERS = ['src', 'test', 'bench', 'docs', 'man', 'scripts', 'etc', 'web', 'bin', '.ci'];
const FILES = ['README.md', 'CHANGELOG.md', 'SECURITY.md', 'package.json'];
const TEXT = /\.(ts|mjs|cjs|js|md|json|sh|py|conf|cf|[1-8]|html|css|yaml|yml|txt)$|^run$/;
const MARKER = /^(<{7} |>{7} |={7}$)/m;

function* files(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'results') yield* files(p);
    } else if (e.isFile() && TEXT.test(e.name)) yield p;
  }
}

test('no merge conflict markers in the sources, tests and docs', () => {
  const found: string[] = [];
  let seen = 0;
  const paths = [...FOLDERS.flatMap((d) => (statSync(join(root, d), { throwIfNoEntry: false }) ? [...files(join(root, d))] : [])), ...FILES.map((f) => join(root, f))];
  for (const p of paths) {
    seen++;
    const m = MARKER.exec(readFileSync(p, 'utf8'));
    if (m) found.push(`${relative(root, p)}: ${JSON.stringify(m[0])}`);
  }
  assert.ok(seen > 300, `too few files were read (${seen})`);
  assert.deepEqual(found, []);
});
