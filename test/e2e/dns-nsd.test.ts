/*
 * The nsd test helper (test/helpers/nsd.ts) serves what a test gives it,
 * and Postern's own resolver reads it: MX, TXT, A, a reverse zone for FCrDNS,
 * and a zone replaced while the test runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNsd } from '../helpers/nsd.js';
import { Resolver } from '../../src/dns/resolver.js';

test('nsd serves the zones a test gives, and Postern\'s resolver reads them', async () => {
  const dns = await startNsd({
    address: '127.0.0.1',
    zones: {
      'example.test': ['@ MX 10 mx1', 'mx1 A 127.0.0.2', '@ TXT "v=spf1 -all"'],
      '0.0.127.in-addr.arpa': ['2 PTR mx1.example.test.'],
    },
  });
  try {
    const r = new Resolver({ servers: [dns.server], timeoutMs: 1000 });
    // (Node 24 adds `type: 'MX'` to each answer; the fields that matter are compared.)
    assert.deepEqual((await r.raw.resolveMx('example.test')).map((m) => ({ priority: m.priority, exchange: m.exchange })), [{ priority: 10, exchange: 'mx1.example.test' }]);
    assert.deepEqual(await r.raw.resolveTxt('example.test'), [['v=spf1 -all']]);
    assert.equal(await r.reverseConfirmed('127.0.0.2'), 'mx1.example.test');
    await assert.rejects(r.raw.resolve4('nothing.example.test'), { code: 'ENOTFOUND' });

    await dns.setZones({ 'example.test': ['@ A 127.0.0.9'] });
    assert.deepEqual(await r.raw.resolve4('example.test'), ['127.0.0.9']);
  } finally {
    await dns.close();
  }
});

test('a zone with a typo fails with nsd-checkzone\'s message', async () => {
  await assert.rejects(startNsd({ zones: { 'bad.test': ['@ MX notanumber'] } }), /nsd helper: zone bad\.test/);
});
