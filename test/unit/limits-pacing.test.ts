/*
 * Slowing abusive clients down: ZMailer's tarpit (growth sequence and
 * cap), Postfix's soft/hard error limits, their combination, and the
 * load-average refusal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tarpit } from '../../src/smtp/limits/tarpit.js';
import { ErrorCounter, ReplyPacer } from '../../src/smtp/limits/errors.js';
import { loadAverageRefusal } from '../../src/policy/load-average.js';
import { DEFAULT_ERROR_LIMITS, NO_TARPIT } from '../../src/config/limits.js';

test('tarpit 20 2: 20, 60, 180, then capped at 250 s', () => {
  const t = new Tarpit({ initialSec: 20, multiplier: 2, capSec: 250 });
  assert.deepEqual([550, 550, 451, 550, 550, 550].map((c) => t.delayFor(c) / 1000), [20, 60, 180, 250, 250, 250]);
});

test('tarpit: positive replies wait nothing and do not grow it', () => {
  const t = new Tarpit({ initialSec: 5, multiplier: 1, capSec: 250 });
  assert.deepEqual([250, 354, 221, 550, 250, 550, 550].map((c) => t.delayFor(c) / 1000), [0, 0, 0, 5, 0, 10, 20]);
  assert.equal(t.peekMs(), 40_000);
});

test('tarpit: multiplier 0 is a constant delay, fractions grow gently, a third argument sets the cap', () => {
  const flat = new Tarpit({ initialSec: 3, multiplier: 0, capSec: 250 });
  assert.deepEqual([1, 2, 3].map(() => flat.delayFor(550)), [3000, 3000, 3000]);
  const gentle = new Tarpit({ initialSec: 20, multiplier: 0.1, capSec: 25 });
  assert.deepEqual([1, 2, 3, 4].map(() => gentle.delayFor(550)), [20_000, 22_000, 24_200, 25_000]);
  const big = new Tarpit({ initialSec: 400, multiplier: 0, capSec: 250 });
  assert.equal(big.delayFor(550), 250_000, 'even the first delay is capped');
});

test('tarpit off (0 0, the default) never waits', () => {
  const t = new Tarpit(NO_TARPIT);
  assert.deepEqual([550, 550, 421].map((c) => t.delayFor(c)), [0, 0, 0]);
  assert.throws(() => new Tarpit({ initialSec: -1, multiplier: 0, capSec: 250 }), RangeError);
});

test('errors: from the 10th error every reply waits 1 s; at 20 the next command gets 421 and close', () => {
  assert.deepEqual(DEFAULT_ERROR_LIMITS, { softLimit: 10, hardLimit: 20, sleepMs: 1000 });
  const e = new ErrorCounter();
  const delays: number[] = [];
  for (let i = 1; i <= 9; i++) delays.push(e.onReply(550));
  assert.ok(delays.every((d) => d === 0));
  assert.equal(e.onReply(500), 1000, '10th error');
  assert.equal(e.onReply(250), 1000, 'once over the soft limit, every reply is slowed');
  for (let i = 11; i < 20; i++) {
    assert.equal(e.beforeCommand('mx.example'), undefined);
    e.onReply(550);
  }
  assert.equal(e.errors, 19);
  assert.equal(e.beforeCommand('mx.example'), undefined);
  e.onReply(550);
  const r = e.beforeCommand('mx.example');
  assert.deepEqual(r && [r.code, r.enhanced, r.lines, r.close], [421, '4.7.0', ['mx.example Error: too many errors'], true]);
});

test('errors: an accepted message starts the count again; 0 disables a limit', () => {
  const e = new ErrorCounter({ softLimit: 2, hardLimit: 3, sleepMs: 500 });
  e.onReply(550);
  e.onReply(550);
  e.messageAccepted();
  assert.equal(e.errors, 0);
  assert.equal(e.onReply(550), 0);
  const off = new ErrorCounter({ softLimit: 0, hardLimit: 0, sleepMs: 500 });
  for (let i = 0; i < 100; i++) assert.equal(off.onReply(550), 0);
  assert.equal(off.beforeCommand('h'), undefined);
});

test('ReplyPacer: the longer of tarpit and error slow-down, not their sum', () => {
  const p = new ReplyPacer({ errors: { softLimit: 2, hardLimit: 50, sleepMs: 1000 }, tarpit: { initialSec: 0.5, multiplier: 1, capSec: 250 } });
  assert.deepEqual([550, 550, 550, 250].map((c) => p.delayFor(c)), [500, 1000, 2000, 1000]);
  p.messageAccepted();
  assert.equal(p.errors.errors, 0);
  assert.equal(p.beforeCommand('h'), undefined);
});

test('load average: above the limit new sessions get 421 4.3.2 and are closed', () => {
  assert.equal(loadAverageRefusal(undefined, 99), undefined);
  assert.equal(loadAverageRefusal(10, 9.99), undefined);
  assert.equal(loadAverageRefusal(10, 10), undefined);
  const r = loadAverageRefusal(10, 10.5, 'mx.example');
  assert.deepEqual(r && [r.code, r.enhanced, r.lines, r.close], [421, '4.3.2', ['mx.example System too busy, try again later'], true]);
});
