/*
 * test/unit/scheduler-ready.test.ts — the ready queues (scheduler/ready.ts):
 * a message's ready recipients under one key, held as a small array or,
 * past a few, a Set, hand out in arrival order either way.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveLimits } from '../../src/scheduler/policy.js';
import { ReadyQueues } from '../../src/scheduler/ready.js';

const ids = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `e${String(i + from).padStart(3, '0')}`);

describe('scheduler ready queues', () => {
  for (const n of [3, 16, 17, 40]) {
    it(`${n} recipients of one message: deletions honoured, batches in arrival order`, () => {
      const q = new ReadyQueues(resolveLimits({ maxRcptPerTask: { mta: 10 }, maxTasksPerKey: { mta: 100 } }));
      for (const e of ids(n)) q.add('mta', 'mx:example.org', 'm1', e);
      q.delete('mta', 'mx:example.org', 'm1', 'e001');
      q.delete('mta', 'mx:example.org', 'm1', 'nonexistent');
      const batches = q.take(new Set());
      assert.deepEqual(batches.flatMap((b) => b.evpids), ids(n).filter((e) => e !== 'e001'));
      assert.ok(batches.every((b) => b.msgid === 'm1' && b.evpids.length <= 10));
      for (const b of batches) q.release(b.kind, b.key);
      assert.deepEqual(q.take(new Set()), []);
      assert.equal(q.tasks(), 0);
    });
  }

  it('a group emptied by deletions leaves no trace, and the key can fill again', () => {
    const q = new ReadyQueues(resolveLimits());
    for (const e of ids(20)) q.add('mda', 'user:alice', 'm2', e);
    for (const e of ids(20)) q.delete('mda', 'user:alice', 'm2', e);
    assert.deepEqual(q.take(new Set()), []);
    q.add('mda', 'user:alice', 'm3', 'x');
    assert.deepEqual(q.take(new Set()).map((b) => [b.msgid, b.evpids]), [['m3', ['x']]]);
  });
});
