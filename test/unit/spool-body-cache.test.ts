/*
 * test/unit/spool-body-cache.test.ts — the cache of recent bodies
 * (spool/fs/body-cache.ts): bounded by bytes, oldest out first, and its
 * bookkeeping bounded however many messages pass through it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BodyCache } from '../../src/spool/fs/body-cache.js';

const body = (n: number, c: string): Buffer[] => [Buffer.alloc(n, c)];

describe('spool body cache', () => {
  it('keeps the newest bodies within its bytes, oldest out first', () => {
    const c = new BodyCache(800);
    for (let i = 0; i < 10; i++) c.put(`m${i}`, body(100, String(i)), 100);
    assert.equal(c.size, 800);
    assert.equal(c.get('m1'), undefined);
    assert.deepEqual(c.get('m9'), body(100, '9'));
    assert.deepEqual(c.get('m2'), body(100, '2'));
    c.put('big', body(101, 'b'), 101); // over a cache's eighth: not kept
    assert.equal(c.get('big'), undefined);
  });

  it('a body cached again after it left counts from its new place', () => {
    const c = new BodyCache(800);
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) c.put(id, body(100, id), 100);
    c.delete('a');
    c.put('a', body(100, 'A'), 100); // now the newest
    c.put('h', body(100, 'h'), 100);
    c.put('i', body(100, 'i'), 100); // over: b goes first, not the new a
    assert.equal(c.get('b'), undefined);
    assert.deepEqual(c.get('a'), body(100, 'A'));
    assert.deepEqual(c.get('c'), body(100, 'c'));
    assert.equal(c.size, 800);
  });

  it('copies a small body out of the large read it came in, and keeps a large body\'s own chunks as they are', () => {
    const c = new BodyCache(8 << 20);
    const read = Buffer.alloc(65_536, 'p'); // one read: many pipelined messages, or one small message and padding
    const small = read.subarray(1000, 1300);
    c.put('small', [small], 300);
    const kept = c.get('small') as Buffer[];
    assert.equal(kept.length, 1);
    assert.notEqual(kept[0]?.buffer, read.buffer, 'a copy, not a view of the whole read');
    assert.equal(kept[0]?.buffer.byteLength, 300);
    assert.deepEqual(kept[0], small);
    assert.equal(c.size, 300);
    const chunks = [Buffer.alloc(65_536, 'a'), Buffer.alloc(40_000, 'b')];
    c.put('large', chunks, 105_536);
    assert.equal((c.get('large') as Buffer[])[0], chunks[0], 'the chunks themselves');
    assert.equal(c.size, 300 + 105_536);
  });

  it('joins a body in many pieces, and its bookkeeping stays bounded when messages are removed as fast as they come', () => {
    const c = new BodyCache(1 << 20);
    const pieces = Array.from({ length: 40 }, (_, i) => Buffer.from(`${i},`));
    c.put('many', pieces, pieces.reduce((a, b) => a + b.length, 0));
    assert.equal(c.get('many')?.length, 1);
    assert.deepEqual(c.get('many')?.[0], Buffer.concat(pieces));
    for (let i = 0; i < 100_000; i++) {
      c.put(`m${i}`, body(10, 'x'), 10);
      if (i >= 5) c.delete(`m${i - 5}`);
    }
    assert.ok(c.tracked <= 2 * 7 + 64, `tracked ${c.tracked}`);
  });

  it('its bookkeeping stays bounded when bodies only ever leave by eviction (nothing delivered)', () => {
    const c = new BodyCache(800); // room for 8 bodies of 100 bytes
    for (let i = 0; i < 100_000; i++) c.put(`m${i}`, body(100, 'x'), 100);
    assert.equal(c.size, 800);
    assert.ok(c.tracked <= 2048, `tracked ${c.tracked}`);
    assert.deepEqual(c.get('m99999'), body(100, 'x'));
    assert.equal(c.get('m99991'), undefined);
  });
});
