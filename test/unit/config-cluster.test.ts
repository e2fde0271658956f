/*
 * The cluster settings (config/parse-cluster.ts): `queue postgresql`,
 * `queue node`, `queue lease`, and their errors with positions.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errors, ok } from './config-helpers.js';

test('queue postgresql, node and lease', () => {
  const c = ok('queue postgresql "postgres://postern@db.example/mail"\nqueue node mx-1\nqueue lease 45s\n');
  assert.deepEqual(c.queue.postgresql, { url: 'postgres://postern@db.example/mail', node: 'mx-1', leaseMs: 45_000 });
});

test('without queue postgresql the queue is the file spool; the lease defaults to 30 s', () => {
  assert.equal(ok('').queue.postgresql, undefined);
  assert.deepEqual(ok('queue postgresql "postgresql:///mail"\n').queue.postgresql, { url: 'postgresql:///mail', leaseMs: 30_000 });
});

test('bad cluster settings are errors at their value', () => {
  assert.match(errors('queue postgresql "mysql://x"\n')[0] ?? '', /1:18: "queue postgresql" wants a URL/);
  assert.match(errors('queue node "a b"\n')[0] ?? '', /1:12: "queue node": letters, digits/);
  assert.match(errors('queue lease 500ms\n')[0] ?? '', /1:13: "queue lease" must be at least 1s/);
  assert.match(errors('queue leese 5s\n')[0] ?? '', /lease/);
});
