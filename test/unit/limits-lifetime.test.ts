/*
 * The session's and the transaction's lifetimes with a fake clock, their
 * settings in smtpd.conf, and the default TLS suites (tls/ciphers.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lifetimes } from '../../src/smtp/limits/lifetime.js';
import { DEFAULT_SERVER_CIPHERS, OUTBOUND_OPPORTUNISTIC_CIPHERS, OUTBOUND_STRICT_CIPHERS, serverCiphers } from '../../src/tls/ciphers.js';
import * as D from '../../src/config/defaults.js';
import { errors, ok } from './config-helpers.js';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 5_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('the session lifetime runs from the start and is never moved', () => {
  const c = clock();
  const l = new Lifetimes({ sessionMs: 10_000, transactionMs: 4_000 }, c.now);
  assert.equal(l.remainingMs(), 10_000);
  for (let i = 0; i < 9; i++) {
    c.advance(1000);
    l.transaction(false);
  }
  assert.equal(l.expired(), undefined);
  assert.equal(l.remainingMs(), 1000);
  c.advance(1000);
  assert.equal(l.expired(), 'session');
  assert.equal(l.remainingMs(), 0);
});

test('a transaction has its own clock, from the step that opened it to the one that ended it', () => {
  const c = clock();
  const l = new Lifetimes({ sessionMs: 60_000, transactionMs: 4_000 }, c.now);
  c.advance(1000);
  l.transaction(true);
  c.advance(3000);
  l.transaction(true); // still open: the clock does not start again
  assert.equal(l.remainingMs(), 1000);
  l.transaction(false); // RSET, end of message
  assert.equal(l.remainingMs(), 56_000);
  l.transaction(true);
  assert.equal(l.remainingMs(), 4000);
  c.advance(4000);
  assert.equal(l.expired(), 'transaction');
});

test('0 turns a lifetime off', () => {
  const c = clock();
  const l = new Lifetimes({ sessionMs: 0, transactionMs: 0 }, c.now);
  l.transaction(true);
  c.advance(1e9);
  assert.equal(l.expired(), undefined);
  assert.equal(l.remainingMs(), Infinity);
});

test('smtp timeout tls-handshake|session|transaction: defaults and settings', () => {
  const d = ok('').smtp;
  assert.deepEqual([d.tlsHandshakeTimeoutMs, d.sessionLifetimeMs, d.transactionLifetimeMs], [60_000, 3_600_000, 1_800_000]);
  assert.deepEqual([D.DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS, D.DEFAULT_SESSION_LIFETIME_MS, D.DEFAULT_TRANSACTION_LIFETIME_MS], [60_000, 3_600_000, 1_800_000]);
  const s = ok('smtp timeout tls-handshake 30s\nsmtp timeout session 2h\nsmtp timeout transaction 45m\n').smtp;
  assert.deepEqual([s.tlsHandshakeTimeoutMs, s.sessionLifetimeMs, s.transactionLifetimeMs], [30_000, 7_200_000, 2_700_000]);
  const text = [...errors('smtp timeout sesion 1h\n'), ...errors('smtp timeout session 0\n')].join('\n');
  assert.match(text, /session/);
  assert.match(text, /a timeout cannot be zero/);
});

test('default suites: Mozilla intermediate (AEAD with ECDHE/DHE) and TLS 1.3; a configured TLS 1.2 list keeps TLS 1.3', () => {
  const suites = DEFAULT_SERVER_CIPHERS.split(':');
  for (const s of suites) assert.match(s, /^(TLS_|ECDHE-|DHE-)/, s);
  for (const s of suites) assert.match(s, /GCM|CHACHA20/, s);
  assert.ok(!suites.some((s) => /CBC|SHA$|CCM|ARIA|CAMELLIA/.test(s)));
  assert.equal(OUTBOUND_STRICT_CIPHERS, DEFAULT_SERVER_CIPHERS);
  assert.ok(OUTBOUND_OPPORTUNISTIC_CIPHERS.startsWith(DEFAULT_SERVER_CIPHERS), 'strong suites first');
  assert.match(OUTBOUND_OPPORTUNISTIC_CIPHERS, /:AES128-SHA(:|$)/);
  assert.match(serverCiphers('HIGH:!aNULL'), /^TLS_AES_128_GCM_SHA256:.*:HIGH:!aNULL$/);
  assert.equal(serverCiphers('TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES256-GCM-SHA384'), 'TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES256-GCM-SHA384');
});

test('a deadline a hair away counts as passed when asked with slack (a timer may fire early)', () => {
  const c = clock();
  const l = new Lifetimes({ sessionMs: 1000, transactionMs: 0 }, c.now);
  c.advance(999);
  assert.equal(l.expired(), undefined);
  assert.equal(l.expired(2), 'session');
});
