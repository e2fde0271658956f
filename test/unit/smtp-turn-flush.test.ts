/*
 * test/unit/smtp-turn-flush.test.ts — replies written once per turn of the
 * event loop (smtp/turn-flush.ts): every connection due is flushed in the
 * same immediate, in the order it became due, once however often it asked.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flushThisTurn } from '../../src/smtp/turn-flush.js';

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('turn flush', () => {
  it('flushes every connection due this turn once, in order, after the current code has run', async () => {
    const seen: string[] = [];
    const a = { flush: () => seen.push('a') };
    const b = { flush: () => seen.push('b') };
    flushThisTurn(a);
    flushThisTurn(b);
    flushThisTurn(a);
    await Promise.resolve();
    assert.deepEqual(seen, [], 'nothing written before the end of the turn');
    await nextTurn();
    assert.deepEqual(seen, ['a', 'b']);
    await nextTurn();
    assert.deepEqual(seen, ['a', 'b']);
  });

  it('also flushes a connection that becomes due while others are being flushed', async () => {
    const seen: string[] = [];
    const late = { flush: () => seen.push('late') };
    const first = {
      flush: () => {
        seen.push('first');
        flushThisTurn(late);
      },
    };
    flushThisTurn(first);
    await nextTurn();
    await nextTurn();
    assert.deepEqual(seen, ['first', 'late']);
  });
});
