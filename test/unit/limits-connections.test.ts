/*
 * Simultaneous connections per client address and in total, at and beyond
 * each threshold, with several client addresses (127.0.0.2, 127.0.0.3 …).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionLimiter, type ConnectionLease } from '../../src/smtp/limits/connections.js';
import { LIMIT_DEFAULTS, DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '../../src/config/limits.js';

const ZMAILER: ConnectionLimits = { maxPerClient: 3, maxTotal: 8, silentDropFactor: 4, silentDropExtra: 100, refusalCode: 450 };

function show(l: ConnectionLease): string {
  const d = l.decision;
  if (d.kind === 'accept') return 'accept';
  if (d.kind === 'drop') return 'drop';
  return `${d.reply.code} ${d.reply.lines.join(' / ')}${d.reply.close ? ' (close)' : ''}`;
}

test('per client (ZMailer): the limit is accepted, one more is refused with 450, beyond 4× dropped silently', () => {
  const c = new ConnectionLimiter({ ...ZMAILER, maxTotal: 100 });
  const got = Array.from({ length: 14 }, () => show(c.open('127.0.0.2')));
  assert.deepEqual(got.slice(0, 3), ['accept', 'accept', 'accept']);
  assert.equal(got[3], '450 Too many simultaneous connections from same IP address (4 max 3) / Come again later (close)');
  assert.ok(got.slice(3, 12).every((x) => x.startsWith('450 ')), 'refused up to 4 × 3 = 12');
  assert.deepEqual(got.slice(12), ['drop', 'drop']);
  assert.equal(c.count('127.0.0.2'), 12, 'refused connections are counted until released, dropped ones never');
  assert.equal(show(c.open('127.0.0.3')), 'accept', 'another address has its own count');
});

test('in total (ZMailer): up to the maximum accepted, then 450 up to 100 beyond, then silent drops', () => {
  const c = new ConnectionLimiter({ ...ZMAILER, maxPerClient: 0, maxTotal: 4, silentDropExtra: 2 });
  const got = [2, 3, 4, 5, 6, 7, 8, 9].map((n) => show(c.open(`127.0.0.${n}`)));
  assert.deepEqual(got, [
    'accept',
    'accept',
    'accept',
    'accept',
    '450 Too many simultaneous connections to this server (5 max 4) / Come again later (close)',
    '450 Too many simultaneous connections to this server (6 max 4) / Come again later (close)',
    'drop',
    'drop',
  ]);
  assert.equal(c.count(), 6);
  const z = new ConnectionLimiter({ ...ZMAILER, maxPerClient: 0, maxTotal: 1 });
  const seq = Array.from({ length: 103 }, (_, i) => show(z.open(`10.0.${i >> 8}.${i & 255}`)));
  assert.equal(seq.filter((x) => x.startsWith('450')).length, 100, 'ZMailer: 100 beyond the limit are told, the rest dropped');
  assert.deepEqual(seq.slice(101), ['drop', 'drop']);
});

test('several addresses share the total; releasing frees both counts', () => {
  const c = new ConnectionLimiter({ ...ZMAILER, maxPerClient: 2, maxTotal: 5 });
  const leases = ['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3', '127.0.0.4'].map((ip) => c.open(ip));
  assert.ok(leases.every((l) => l.decision.kind === 'accept'));
  assert.equal(show(c.open('127.0.0.5')), '450 Too many simultaneous connections to this server (6 max 5) / Come again later (close)');
  assert.equal(c.count(), 6);
  leases[0]?.release();
  leases[0]?.release(); // a second release changes nothing
  assert.equal(c.count('127.0.0.2'), 1);
  assert.equal(c.count(), 5);
  const again = c.open('127.0.0.2');
  assert.equal(again.decision.kind, 'reply', 'still 6 in total: the refused one is counted until it is released');
  for (const l of leases) l.release();
  again.release();
  assert.equal(c.count(), 1);
  assert.equal(show(c.open('127.0.0.2')), 'accept');
});

test('the total limit is checked before the per-client limit (ZMailer’s order)', () => {
  const c = new ConnectionLimiter({ ...ZMAILER, maxPerClient: 1, maxTotal: 1 });
  c.open('127.0.0.2');
  assert.match(show(c.open('127.0.0.2')), /to this server \(2 max 1\)/);
});

test('Postfix-style defaults: 50 per client, 421 4.7.0 "too many connections"', () => {
  assert.equal(DEFAULT_CONNECTION_LIMITS.maxPerClient, LIMIT_DEFAULTS.maxConnectionsPerClient);
  assert.equal(DEFAULT_CONNECTION_LIMITS.maxPerClient, 50);
  assert.equal(DEFAULT_CONNECTION_LIMITS.maxTotal, 800);
  const c = new ConnectionLimiter();
  for (let i = 0; i < 50; i++) assert.equal(c.open('192.0.2.7').decision.kind, 'accept');
  const r = c.open('192.0.2.7').decision;
  assert.ok(r.kind === 'reply');
  if (r.kind === 'reply') {
    assert.deepEqual([r.reply.code, r.reply.enhanced, r.reply.lines, r.reply.close, r.close], [421, '4.7.0', ['Error: too many connections from 192.0.2.7'], true, true]);
    assert.equal(r.reason, '51 connections from 192.0.2.7, limit 50');
  }
});

test('IPv4-mapped IPv6 counts as the IPv4 address; exempt clients skip the per-client limit', () => {
  const c = new ConnectionLimiter({ ...ZMAILER, maxPerClient: 1, exempt: (ip) => ip.startsWith('10.') });
  c.open('192.0.2.1');
  assert.equal(c.open('::ffff:192.0.2.1').decision.kind, 'reply');
  assert.equal(c.count('192.0.2.1'), 2);
  assert.ok([1, 2, 3].every(() => c.open('10.0.0.1').decision.kind === 'accept'));
});

test('zero disables a limit; bad limits are refused', () => {
  const c = new ConnectionLimiter({ ...ZMAILER, maxPerClient: 0, maxTotal: 0 });
  assert.ok(Array.from({ length: 1000 }, () => c.open('192.0.2.1')).every((l) => l.decision.kind === 'accept'));
  assert.throws(() => new ConnectionLimiter({ ...ZMAILER, maxPerClient: -1 }), RangeError);
  assert.throws(() => new ConnectionLimiter({ ...ZMAILER, maxTotal: 1.5 }), RangeError);
});
