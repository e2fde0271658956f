/*
 * Password checks run off the event loop (auth/hash-pool.ts): while one
 * bcrypt check is pending, the event loop keeps turning. Counted in turns
 * of the loop, not in milliseconds, so a busy machine cannot make it pass
 * or fail: hashing on the loop would let no turn through during a
 * synchronous compare (and only a handful with bcryptjs's sliced "async"
 * one), a worker thread lets the loop turn all the while.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import bcrypt from 'bcryptjs';
import { HashPool } from '../../src/auth/hash-pool.js';

test('the event loop turns freely while a bcrypt check runs in the pool', async () => {
  const stored = bcrypt.hashSync('secret', 10);
  const pool = new HashPool();
  try {
    let turns = 0;
    let done = false;
    const spin = (): void => {
      if (done) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const ok = await pool.verify('bcrypt', 'secret', stored);
    done = true;
    assert.equal(ok, true);
    assert.ok(turns >= 200, `the loop turned only ${turns} times during the check`);
    assert.equal(await pool.verify('bcrypt', 'wrong', stored), false);
  } finally {
    await pool.close();
  }
});
