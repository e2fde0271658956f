/*
 * test/unit/auth-hash.test.ts — verifyPassword through the worker pool:
 * bcrypt and SHA-crypt (against openssl passwd -5/-6), {PLAIN}, and the
 * limits (bcrypt cost, SHA-crypt rounds, password length) refused without
 * hashing; a pool's workers do not keep the process alive.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { MAX_BCRYPT_COST, MAX_PASSWORD_BYTES, MAX_SHA_CRYPT_ROUNDS, overLimit, verifyPassword } from '../../src/auth/hash.js';
import { sharedHashPool } from '../../src/auth/hash-pool.js';
import { requireTool } from '../helpers/tools.js';

after(() => sharedHashPool().close());

test('bcrypt, SHA-256/512-crypt and {PLAIN} verify through the pool', async () => {
  const openssl = requireTool('openssl');
  const h = bcrypt.hashSync('pw-1', 4);
  assert.equal(await verifyPassword('pw-1', h), true);
  assert.equal(await verifyPassword('pw-2', h), false);
  for (const v of ['-5', '-6']) {
    const s = spawnSync(openssl, ['passwd', v, '-salt', 'abcdefgh', 'pw-1'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(await verifyPassword('pw-1', s), true, s);
    assert.equal(await verifyPassword('pw-2', s), false, s);
  }
  assert.equal(await verifyPassword('x', '{PLAIN}x'), true);
  const many = await Promise.all(Array.from({ length: 12 }, (_, i) => verifyPassword(i % 2 ? 'pw-1' : 'no', h)));
  assert.deepEqual(many, Array.from({ length: 12 }, (_, i) => i % 2 === 1));
});

test('limits: bcrypt cost, SHA-crypt rounds and long passwords are refused without hashing', async () => {
  assert.equal(MAX_BCRYPT_COST, 15);
  assert.equal(MAX_SHA_CRYPT_ROUNDS, 1_000_000);
  assert.equal(overLimit('$2b$16$abcdefghijklmnopqrstuu'), true);
  assert.equal(overLimit('$2b$15$abcdefghijklmnopqrstuu'), false);
  assert.equal(overLimit('$6$rounds=1000001$salt$x'), true);
  assert.equal(overLimit('$6$rounds=1000000$salt$x'), false);
  assert.equal(overLimit('$5$salt$x'), false);
  const t = performance.now();
  assert.equal(await verifyPassword('x', '$6$rounds=999999999$salt$abc'), false);
  assert.equal(await verifyPassword('x'.repeat(MAX_PASSWORD_BYTES + 1), bcrypt.hashSync('x', 4)), false);
  assert.ok(performance.now() - t < 500);
});
