/*
 * test/unit/spool-iov.test.ts — the writev cursor: short writes of every
 * length, and batches capped at IOV_MAX buffers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IOV_MAX, IovCursor } from '../../src/spool/fs/iov.js';

/** Drive a cursor with writes of at most `step` bytes; return what was "written". */
function drain(bufs: Buffer[], step: number): Buffer {
  const c = new IovCursor(bufs);
  const out: Buffer[] = [];
  while (!c.done) {
    const batch = c.batch();
    assert.ok(batch.length <= IOV_MAX);
    const all = Buffer.concat(batch);
    const n = Math.min(step, all.length);
    out.push(all.subarray(0, n));
    c.advance(n);
  }
  return Buffer.concat(out);
}

test('every byte once, in order, whatever the short writes', () => {
  const bufs = [Buffer.from('abc'), Buffer.alloc(0), Buffer.from('defgh'), Buffer.from('i')];
  for (let step = 1; step <= 10; step++) assert.equal(drain(bufs, step).toString(), 'abcdefghi', `step ${step}`);
});

test('batches hold at most IOV_MAX buffers', () => {
  const bufs = Array.from({ length: IOV_MAX * 2 + 5 }, (_, i) => Buffer.from([i & 0xff]));
  assert.equal(drain(bufs, 1_000_000).length, bufs.length);
});

test('a write of nothing is an error, not a loop', () => {
  assert.throws(() => new IovCursor([Buffer.from('x')]).advance(0), /wrote nothing/);
});
