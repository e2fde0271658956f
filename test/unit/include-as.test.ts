/*
 * :include: files read safely (expand/include.ts, include-as.ts): a FIFO or
 * a device is refused without blocking, nested lists are read once each,
 * and the reader's output (printed by a process running as a user, so not
 * trusted by its root caller) is parsed by the caller and nonsense refused.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readIncludeFile } from '../../src/expand/include.js';
import { parseReaderOutput, readIncludeTree } from '../../src/expand/include-as.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-include-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

test('a FIFO or a device is not read (no blocking): a temporary failure', () => {
  const fifo = join(DIR, 'fifo');
  execFileSync('mkfifo', [fifo]);
  assert.deepEqual(readIncludeFile(fifo), { kind: 'error', reason: `${fifo}: not a regular file` });
  assert.equal(readIncludeFile('/dev/zero').kind, 'error');
});

test('the tree: nested lists once each (a loop too), unsafe marked, missing files said', () => {
  const a = join(DIR, 'a');
  const b = join(DIR, 'b');
  writeFileSync(a, `one\n:include:${b}\n:include:${join(DIR, 'none')}\n`, { mode: 0o644 });
  writeFileSync(b, `two, :include:${a}\n`);
  chmodSync(b, 0o666); // not through writeFileSync's mode: the umask would take the bits away
  const tree = readIncludeTree([a]);
  assert.deepEqual(
    tree.map((e) => [e.path, e.kind, e.kind === 'ok' ? e.unsafe : e.reason]),
    [
      [a, 'ok', false],
      [b, 'ok', true],
      [join(DIR, 'none'), 'missing', `${join(DIR, 'none')}: no such file`],
    ],
  );
  const parsed = parseReaderOutput(JSON.stringify(tree));
  assert.ok(Array.isArray(parsed));
  assert.deepEqual(parsed[0]?.read.kind === 'ok' && parsed[0].read.nodes[0], { kind: 'user', name: 'one' });
});

test('the reader output is checked: nonsense refused, destinations parsed by the caller', () => {
  for (const bad of ['', 'nope', '{}', '[{"path":"rel","kind":"ok","text":"x","unsafe":false}]', '[{"path":"/a","kind":"ok","text":1,"unsafe":false}]', '[{"path":"/a","kind":"strange"}]']) {
    assert.equal(typeof parseReaderOutput(bad), 'string', bad);
  }
  const r = parseReaderOutput('[{"path":"/a","kind":"ok","text":"x\\nbad<<address\\n","unsafe":false}]');
  assert.ok(Array.isArray(r));
  assert.equal(r[0]?.read.kind, 'error');
});
