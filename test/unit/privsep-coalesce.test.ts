/*
 * test/unit/privsep-coalesce.test.ts — the privsep channel's batches
 * (daemon/privsep/coalesce.ts): what is sent in one turn leaves as one
 * message, in order; a flush sends at once; a batch is taken apart on
 * receipt, and a malformed one is handed on whole for the check to refuse.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Coalescer, MAX_BATCH, unbatch, type Batch } from '../../src/daemon/privsep/coalesce.js';

type M = { t: string; id: number };

describe('privsep: batches on the channel', () => {
  it('one turn, one channel message, in order; each send resolves once written', async () => {
    const written: (M | Batch<M>)[] = [];
    const c = new Coalescer<M>((m, done) => {
      written.push(m);
      done();
    });
    const sent = [c.send({ t: 'outcome', id: 1 }), c.send({ t: 'outcome', id: 2 }), c.send({ t: 'forward-read', id: 3 })];
    assert.equal(written.length, 0);
    await Promise.all(sent);
    assert.deepEqual(written, [{ t: 'batch', ms: [{ t: 'outcome', id: 1 }, { t: 'outcome', id: 2 }, { t: 'forward-read', id: 3 }] }]);
    await c.send({ t: 'outcome', id: 4 });
    assert.deepEqual(written[1], { t: 'outcome', id: 4 }, 'alone: the message itself');
  });

  it('flush sends what waits at once (before a message with a handle)', () => {
    const written: (M | Batch<M>)[] = [];
    const c = new Coalescer<M>((m, done) => {
      written.push(m);
      done();
    });
    void c.send({ t: 'outcome', id: 1 });
    c.flush();
    assert.deepEqual(written, [{ t: 'outcome', id: 1 }]);
    c.flush();
    assert.equal(written.length, 1);
  });

  it('unbatch: a batch gives its messages; anything else, itself', () => {
    assert.deepEqual(unbatch({ t: 'batch', ms: [{ t: 'a' }, { t: 'b' }] }), [{ t: 'a' }, { t: 'b' }]);
    assert.deepEqual(unbatch({ t: 'a' }), [{ t: 'a' }]);
    const bad = { t: 'batch', ms: 'x' };
    assert.deepEqual(unbatch(bad), [bad]);
    const huge = { t: 'batch', ms: Array.from({ length: MAX_BATCH + 1 }, () => ({ t: 'a' })) };
    assert.deepEqual(unbatch(huge), [huge]);
  });
});
