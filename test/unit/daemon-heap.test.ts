/*
 * test/unit/daemon-heap.test.ts — the daemon's heap growth setting
 * (daemon/heap.ts): applied unless the administrator gave one to node.
 * Its effect on memory is measured by `npm run bench` (1k-50), not here:
 * V8's heap sizing is a heuristic, not something a test can pin.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { tuneHeap } from '../../src/daemon/heap.js';

describe('daemon heap growth', () => {
  it('leaves an administrator\'s own --heap-growing-percent alone, on the command line or in NODE_OPTIONS', () => {
    assert.equal(tuneHeap(['--heap-growing-percent=80'], ''), false);
    assert.equal(tuneHeap(['--inspect', '--heap_growing_percent=10'], ''), false);
    assert.equal(tuneHeap([], '--max-old-space-size=512 --heap-growing-percent=25'), false);
  });

  it('sets it otherwise, in a process of its own', () => {
    const url = new URL('../../src/daemon/heap.js', import.meta.url).href;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(url)}); console.log(m.tuneHeap([], '') ? 'set' : 'left')`], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'set');
  });
});
