/*
 * Slowloris protection with a fake clock: a deadline per command, and a
 * minimum data rate for DATA/BDAT content.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COMMAND_DEADLINE, DATA_DEADLINE, RequestDeadline } from '../../src/smtp/limits/deadline.js';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('defaults: 300 s per request, 500 bytes/s for content (Postfix smtpd_timeout, smtpd_min_data_rate)', () => {
  assert.deepEqual(COMMAND_DEADLINE, { timeoutMs: 300_000, minDataRate: 0 });
  assert.deepEqual(DATA_DEADLINE, { timeoutMs: 300_000, minDataRate: 500 });
});

test('a command line must be complete within the deadline, however the bytes trickle in', () => {
  const c = clock();
  const d = new RequestDeadline({ timeoutMs: 10_000, minDataRate: 0 }, c.now);
  for (let i = 0; i < 9; i++) {
    c.advance(1000);
    d.onBytes(1);
  }
  assert.equal(d.remainingMs(), 1000);
  c.advance(1000);
  assert.ok(d.expired());
  assert.equal(d.remainingMs(), 0);
  d.start();
  assert.equal(d.remainingMs(), 10_000, 'the next command has the full time again');
});

test('content at or above the minimum rate never runs out', () => {
  const c = clock();
  const d = new RequestDeadline({ timeoutMs: 10_000, minDataRate: 500 }, c.now);
  for (let i = 0; i < 1000; i++) {
    c.advance(1000);
    d.onBytes(500);
    assert.ok(!d.expired(), `second ${i}`);
  }
  assert.equal(d.remainingMs(), 10_000, 'credit never exceeds the full timeout');
});

test('a slowloris client below the rate is cut off, even with steady small writes', () => {
  const c = clock();
  const d = new RequestDeadline({ timeoutMs: 10_000, minDataRate: 500 }, c.now);
  let seconds = 0;
  while (!d.expired() && seconds < 1000) {
    c.advance(1000);
    d.onBytes(100); // 100 bytes/s earns 0.2 s for every second spent
    seconds++;
  }
  assert.equal(seconds, 13, '10 s of credit lost at 0.8 s a second');
});

test('bursts are fine: a pause is paid for by the data before it', () => {
  const c = clock();
  const d = new RequestDeadline({ timeoutMs: 10_000, minDataRate: 500 }, c.now);
  c.advance(9000);
  d.onBytes(2500); // 5 s earned, capped at 10 s from now
  assert.equal(d.remainingMs(), 6000);
  c.advance(5999);
  assert.ok(!d.expired());
  c.advance(1);
  assert.ok(d.expired());
});

test('bad settings are refused', () => {
  assert.throws(() => new RequestDeadline({ timeoutMs: 0, minDataRate: 0 }), RangeError);
  assert.throws(() => new RequestDeadline({ timeoutMs: 1000, minDataRate: -1 }), RangeError);
});
