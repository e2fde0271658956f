/*
 * test/unit/mta-hosts.test.ts — the relay agent's table of remote hosts
 * (mta/hosts.ts), behind `smtpctl show hosts`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HostTable, MAX_HOSTS } from '../../src/mta/hosts.js';

describe('remote host table', () => {
  it('counts sessions, messages and failures in a row; a host that only fails is down', () => {
    let now = Date.UTC(2026, 10, 22, 12, 0, 0);
    const t = new HostTable(() => now);
    t.failed('192.0.2.1:25', 'mx1.example.org', 'connection refused');
    t.failed('192.0.2.1:25', 'mx1.example.org', 'connection timed out');
    t.connected('192.0.2.2:25', 'mx2.example.org');
    t.sent('192.0.2.2:25', 'mx2.example.org');
    t.sent('192.0.2.2:25', 'mx2.example.org');
    now += 1000;
    t.disconnected('192.0.2.2:25', 'mx2.example.org');
    assert.deepEqual(t.list(), [
      { host: 'mx1.example.org', address: '192.0.2.1:25', state: 'down', active: 0, sessions: 0, messages: 0, errors: 2, lastError: 'connection timed out', last: '2026-11-22T12:00:00.000Z' },
      { host: 'mx2.example.org', address: '192.0.2.2:25', state: 'up', active: 0, sessions: 1, messages: 2, errors: 0, last: '2026-11-22T12:00:01.000Z' },
    ]);
    // A connection that works clears the run of failures.
    t.connected('192.0.2.1:25', 'mx1.example.org');
    const mx1 = t.list()[0];
    assert.deepEqual([mx1?.state, mx1?.errors, mx1?.lastError, mx1?.active], ['up', 0, undefined, 1]);
  });

  it(`keeps at most ${MAX_HOSTS} hosts, dropping the least recently used without an open session`, () => {
    const t = new HostTable();
    t.connected('198.51.100.1:25', 'busy.example.org'); // open all along: never dropped
    for (let i = 0; i < MAX_HOSTS + 10; i++) t.failed(`10.0.${i >> 8}.${i & 255}:25`, `h${i}.example.org`, 'refused');
    const list = t.list();
    assert.equal(list.length, MAX_HOSTS);
    assert.ok(list.some((h) => h.host === 'busy.example.org'));
    assert.ok(!list.some((h) => h.host === 'h0.example.org'));
    assert.ok(list.some((h) => h.host === `h${MAX_HOSTS + 9}.example.org`));
  });
});
