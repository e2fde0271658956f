/*
 * test/unit/mta-route.test.ts — routing against a real DNS server on
 * loopback (test/helpers/dns-server.ts): MX order and shuffling, implicit
 * MX, null MX, NXDOMAIN, SERVFAIL, address literals, smarthosts, loops
 * back to ourselves and backup MX.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from '../../src/dns/resolver.js';
import { resolveRoute, literalAddress, type Route, type SelfNames } from '../../src/mta/route.js';
import { lookupMx, orderMx, senderDomainHasNullMx } from '../../src/dns/mx.js';
import type { RelayOptions } from '../../src/config/model.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';

let dns: DnsServerHandle;
let resolver: Resolver;

before(async () => {
  dns = await startDnsServer({
    'multi.test': [
      { type: 'MX', priority: 20, exchange: 'mx3.multi.test' },
      { type: 'MX', priority: 10, exchange: 'mx1.multi.test' },
      { type: 'MX', priority: 10, exchange: 'mx2.multi.test' },
    ],
    'mx1.multi.test': [{ type: 'A', address: '127.0.0.11' }],
    'mx2.multi.test': [{ type: 'A', address: '127.0.0.12' }, { type: 'AAAA', address: '2001:db8::12' }],
    'mx3.multi.test': [{ type: 'A', address: '127.0.0.13' }],
    'implicit.test': [{ type: 'A', address: '127.0.0.20' }],
    'nothing.test': [{ type: 'TXT', data: 'v=spf1 -all' }],
    'nullmx.test': [{ type: 'MX', priority: 0, exchange: '.' }],
    'servfail.test': 'SERVFAIL',
    'badmx.test': [{ type: 'MX', priority: 10, exchange: 'missing.badmx.test' }],
    'self.test': [{ type: 'MX', priority: 10, exchange: 'mail.postern.test' }, { type: 'MX', priority: 20, exchange: 'mx3.multi.test' }],
    'backup.test': [
      { type: 'MX', priority: 10, exchange: 'mx1.multi.test' },
      { type: 'MX', priority: 20, exchange: 'mail.postern.test' },
      { type: 'MX', priority: 30, exchange: 'mx3.multi.test' },
    ],
    'ourip.test': [{ type: 'MX', priority: 5, exchange: 'alias.ourip.test' }, { type: 'MX', priority: 50, exchange: 'mx3.multi.test' }],
    'alias.ourip.test': [{ type: 'A', address: '127.0.0.1' }],
    'selfonly.test': [{ type: 'MX', priority: 10, exchange: 'mail.postern.test' }],
    'smart.test': [{ type: 'A', address: '127.0.0.30' }, { type: 'AAAA', address: '::1' }],
  });
  resolver = new Resolver({ servers: [dns.server], timeoutMs: 1000 });
});
after(async () => {
  await dns.close();
});

const self: SelfNames = {
  isLocalDomain: (d) => ['mail.postern.test', 'localhost'].includes(d.toLowerCase()),
  isOwnAddress: (ip) => ip === '127.0.0.1' || ip === '::1',
};
const MX: RelayOptions = { backup: false, tls: 'opportunistic', tlsNoVerify: false, srs: false };
const OPTS = { port: 2525, maxHosts: 5, maxAddresses: 10, family: 'any' as const };

function route(domain: string, relay: RelayOptions = MX, opts = {}): Promise<Route> {
  return resolveRoute(relay, domain, resolver.raw, self, 'mail.postern.test', { ...OPTS, ...opts });
}

function targets(r: Route): string[] {
  assert.equal(r.kind, 'targets', JSON.stringify(r));
  return r.kind === 'targets' ? r.targets.map((t) => `${t.host} ${t.address}:${t.port}`) : [];
}

test('MX hosts by preference, random within equal preference, IPv4 then IPv6', async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 30; i++) {
    const t = targets(await route('multi.test'));
    assert.equal(t.length, 4);
    assert.equal(t[3], 'mx3.multi.test 127.0.0.13:2525');
    assert.ok(t.indexOf('mx2.multi.test 127.0.0.12:2525') + 1 === t.indexOf('mx2.multi.test 2001:db8::12:2525'));
    seen.add(t[0] ?? '');
  }
  assert.equal(seen.size, 2, 'both preference-10 hosts come first sometimes');
  assert.deepEqual(targets(await route('multi.test', MX, { family: 'inet4', maxAddresses: 2, rnd: () => 0.99 })).length, 2);
  assert.deepEqual(
    orderMx([{ name: 'b', preference: 10 }, { name: 'a', preference: 5 }], () => 0).map((h) => h.name),
    ['a', 'b'],
  );
});

test('at most maxHosts MX hosts are looked up', async () => {
  assert.equal(targets(await route('multi.test', MX, { maxHosts: 1, family: 'inet4' })).length, 1);
  assert.equal(targets(await route('multi.test', MX, { maxHosts: 2, family: 'inet4' })).length, 2);
});

test('implicit MX, no MX and no address, NXDOMAIN, null MX, SERVFAIL, MX without address', async () => {
  assert.deepEqual(targets(await route('implicit.test')), ['implicit.test 127.0.0.20:2525']);
  assert.deepEqual(await route('nothing.test'), { kind: 'fail', status: 'permfail', enhanced: '5.1.2', detail: 'Domain nothing.test has no MX and no address record' });
  const nx = await route('nowhere.test');
  assert.equal(nx.kind === 'fail' && `${nx.status} ${nx.enhanced}`, 'permfail 5.1.2');
  const nul = await route('nullmx.test');
  assert.equal(nul.kind === 'fail' && `${nul.status} ${nul.enhanced}`, 'permfail 5.1.10');
  assert.match(nul.kind === 'fail' ? nul.detail : '', /null MX/);
  const sf = await route('servfail.test');
  assert.equal(sf.kind === 'fail' && `${sf.status} ${sf.enhanced}`, 'tempfail 4.4.3');
  const bad = await route('badmx.test');
  assert.equal(bad.kind === 'fail' && `${bad.status} ${bad.enhanced}`, 'permfail 5.4.4');
  assert.deepEqual(await lookupMx(resolver.raw, 'nullmx.test'), { kind: 'null-mx' });
});

test('senderDomainHasNullMx for the server at MAIL, through Node\'s resolver and through the TTL cache (dns/ttl-cache.ts) the daemon gives it', async () => {
  for (const dnsFor of [resolver.raw, resolver.lookups]) {
    for (let i = 0; i < 2; i++) {
      assert.equal(await senderDomainHasNullMx(dnsFor, 'nullmx.test'), 'null-mx');
      assert.equal(await senderDomainHasNullMx(dnsFor, 'multi.test'), 'not-null');
      assert.equal(await senderDomainHasNullMx(dnsFor, 'implicit.test'), 'not-null');
      assert.equal(await senderDomainHasNullMx(dnsFor, 'nowhere.test'), 'not-null');
      assert.equal(await senderDomainHasNullMx(dnsFor, 'servfail.test'), 'error', 'a SERVFAIL is an error, cached or not');
    }
  }
});

test('address literals go to that address; our own address is a loop', async () => {
  assert.equal(literalAddress('[IPv6:2001:DB8::1]'), '2001:db8::1');
  assert.deepEqual(targets(await route('[192.0.2.7]')), ['192.0.2.7 192.0.2.7:2525']);
  assert.deepEqual(targets(await route('[ipv6:2001:db8::7]')), ['2001:db8::7 2001:db8::7:2525']);
  const l = await route('[127.0.0.1]');
  assert.equal(l.kind === 'fail' && `${l.status} ${l.enhanced}`, 'permfail 5.4.6');
  assert.equal((await route('[300.1.1.1]')).kind, 'fail');
});

test('mail that would loop back to ourselves fails with 5.4.6', async () => {
  for (const d of ['mail.postern.test', 'selfonly.test']) {
    const r = await route(d);
    assert.equal(r.kind === 'fail' && `${r.status} ${r.enhanced}`, 'permfail 5.4.6', d);
    assert.match(r.kind === 'fail' ? r.detail : '', /loops back to myself/);
  }
  // We are the best MX (by name, or by address): the worse hosts are discarded too.
  const s = await route('self.test');
  assert.equal(s.kind === 'fail' && s.enhanced, '5.4.6');
  const ip = await route('ourip.test');
  assert.equal(ip.kind === 'fail' && ip.enhanced, '5.4.6');
});

test('backup MX: only the hosts preferred over us', async () => {
  assert.deepEqual(targets(await route('backup.test', { ...MX, backup: true })), ['mx1.multi.test 127.0.0.11:2525']);
  const none = await route('backup.test', { ...MX, backup: true, backupMx: 'mx1.multi.test' });
  assert.equal(none.kind === 'fail' && none.enhanced, '5.4.6');
  assert.match(none.kind === 'fail' ? none.detail : '', /no MX host is preferred over this backup MX/);
});

test('smarthost: by its addresses, never by MX; our own address is allowed (content filters)', async () => {
  const r = await route('anything.test', { ...MX, host: { scheme: 'smtp+tls', host: 'smart.test', port: 587 } });
  assert.deepEqual(targets(r), ['smart.test 127.0.0.30:587', 'smart.test ::1:587']);
  assert.equal(r.kind === 'targets' && r.smarthost, true);
  assert.deepEqual(targets(await route('x.test', { ...MX, host: { scheme: 'smtps', host: '127.0.0.1' } })), ['127.0.0.1 127.0.0.1:465']);
  const nx = await route('x.test', { ...MX, host: { scheme: 'smtp', host: 'nowhere.test' } });
  assert.equal(nx.kind === 'fail' && nx.status, 'tempfail');
});
