/*
 * test/unit/spool-buffer-pool.test.ts — the pool of commit buffers the
 * spool's I/O thread hands back (spool/fs/buffer-pool.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferPool } from '../../src/spool/fs/buffer-pool.js';

describe('spool buffer pool', () => {
  it('gives buffers of the exact length on a power-of-two ArrayBuffer of their own', () => {
    const pool = new BufferPool();
    for (const [len, cap] of [[0, 4096], [1, 4096], [4096, 4096], [4097, 8192], [100_000, 131_072]] as const) {
      const b = pool.take(len);
      assert.equal(b.length, len);
      assert.equal(b.byteOffset, 0);
      assert.equal(b.buffer.byteLength, cap);
    }
  });

  it('reuses what is given back, by size class, within its bounds', () => {
    const pool = new BufferPool(20_000, 2);
    const a = pool.take(5000).buffer as ArrayBuffer;
    pool.give(a);
    assert.equal(pool.size, 8192);
    assert.equal(pool.take(6000).buffer, a);
    assert.equal(pool.size, 0);
    pool.give(new ArrayBuffer(8192));
    pool.give(new ArrayBuffer(8192));
    assert.equal(pool.size, 16_384);
    pool.give(new ArrayBuffer(4096)); // over maxBytes
    pool.give(new ArrayBuffer(3000)); // not a size class
    assert.equal(pool.size, 16_384);
    const big = new BufferPool(1 << 20, 2);
    for (let i = 0; i < 3; i++) big.give(new ArrayBuffer(4096)); // the third is over perClass
    assert.equal(big.size, 8192);
  });
});
