/*
 * test/unit/scheduler-share.test.ts — a cluster's nodes share every
 * per-destination limit (ready.ts setShare, fed by the leases' count of
 * live nodes): each node takes floor(limit / nodes), at least one, so the
 * limit holds for the cluster as a whole; a node alone takes all of it.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { resolveLimits } from '../../src/scheduler/policy.js';
import { ReadyQueues } from '../../src/scheduler/ready.js';

function fill(q: ReadyQueues, n: number): void {
  for (let i = 0; i < n; i++) q.add('mta', 'mx:example.org', `m${i}`, `e${i}`);
}

it('three nodes: each takes a third of a destination\'s limit; one node takes it all', () => {
  const q = new ReadyQueues(resolveLimits({ maxTasksPerKey: { mta: 10 } }));
  q.setShare(3);
  fill(q, 30);
  const first = q.take(new Set());
  assert.equal(first.length, 3, '3 × 3 ≤ 10 across the cluster');
  q.setShare(1);
  for (const b of first) q.release(b.kind, b.key);
  assert.equal(q.take(new Set()).length, 10);
});

it('more nodes than the limit: one task each, never none', () => {
  const q = new ReadyQueues(resolveLimits({ maxTasksPerKey: { mta: 2 } }));
  q.setShare(5);
  fill(q, 10);
  assert.equal(q.take(new Set()).length, 1);
});

it('a share that shrinks while a key waits in the rotation is respected', () => {
  const q = new ReadyQueues(resolveLimits({ maxTasksPerKey: { mta: 10 } }));
  fill(q, 30);
  const running = q.take(new Set());
  assert.equal(running.length, 10);
  q.release('mta', 'mx:example.org'); // back in the rotation with 9 running
  q.setShare(2);
  assert.deepEqual(q.take(new Set()), [], '9 running, the share is 5');
});
