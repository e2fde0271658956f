/*
 * dns/ttl-cache.ts: answers kept by their TTLs within the floor and the
 * ceiling, negative answers by the SOA (RFC 2308), failures never kept,
 * the size bound, and Node's record shapes. The clock is injected and the
 * servers are a stand-in returning decoded answers (the UDP/TCP client
 * and the whole path are tested against nsd in e2e/mailauth-dns-ttl).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as packet from 'dns-packet';
import { TtlCache, type Ask } from '../../src/dns/ttl-cache.js';
import type { PacketAnswer } from '../../src/dns/packet-client.js';

type Reply = PacketAnswer | ((name: string, type: string) => PacketAnswer);

/** A stand-in for the servers: the reply `zone` holds for "TYPE name", counting questions. */
function servers(zone: Map<string, Reply>): { ask: Ask; asked: string[] } {
  const asked: string[] = [];
  const ask: Ask = async (name, type) => {
    asked.push(`${type} ${name}`);
    const r = zone.get(`${type} ${name}`) ?? { kind: 'error', reason: 'no answer within 100 ms' };
    return typeof r === 'function' ? r(name, type) : r;
  };
  return { ask, asked };
}

const answer = (answers: packet.Answer[], authorities: packet.Answer[] = [], rcode = 'NOERROR'): PacketAnswer => ({ kind: 'answer', rcode, ad: false, answers, authorities });
const txt = (name: string, ttl: number, text: string): packet.Answer => ({ type: 'TXT', name, ttl, class: 'IN', data: [Buffer.from(text)] }) as packet.Answer;
const soa = (ttl: number, minimum: number): packet.Answer =>
  ({ type: 'SOA', name: 'test', ttl, class: 'IN', data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum } }) as packet.Answer;

function clock(): { now: () => number; advance: (s: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (s) => (t += s * 1000) };
}

test('a positive answer is kept for its TTL, then asked again and the new value seen', async () => {
  const zone = new Map<string, Reply>([['TXT a.test', answer([txt('a.test', 30, 'v=spf1 -all')])]]);
  const { ask, asked } = servers(zone);
  const c = clock();
  const cache = new TtlCache(ask, {}, c.now);
  assert.deepEqual(await cache.resolveTxt('a.test'), [['v=spf1 -all']]);
  c.advance(29);
  zone.set('TXT a.test', answer([txt('a.test', 30, 'v=spf1 +all')]));
  assert.deepEqual(await cache.resolve('A.TEST', 'TXT'), [['v=spf1 -all']], 'still the cached answer (names are case-insensitive)');
  assert.equal(asked.length, 1);
  c.advance(1);
  assert.deepEqual(await cache.resolveTxt('a.test'), [['v=spf1 +all']], 'the TTL ran out: the new record');
  assert.equal(asked.length, 2);
});

test('TTLs are bounded: 0 is kept the floor, a day the ceiling; the smallest TTL of the answer counts', async () => {
  const zone = new Map<string, Reply>([
    ['TXT zero.test', answer([txt('zero.test', 0, 'x')])],
    ['TXT day.test', answer([txt('day.test', 86400, 'y')])],
    ['TXT two.test', answer([txt('two.test', 300, 'a'), txt('two.test', 20, 'b')])],
  ]);
  const { ask, asked } = servers(zone);
  const c = clock();
  const cache = new TtlCache(ask, { floorS: 5, ceilingS: 3600 }, c.now);
  for (const n of ['zero.test', 'day.test', 'two.test']) await cache.resolveTxt(n);
  c.advance(4);
  for (const n of ['zero.test', 'day.test', 'two.test']) await cache.resolveTxt(n);
  assert.equal(asked.length, 3);
  c.advance(1);
  await cache.resolveTxt('zero.test');
  assert.equal(asked.length, 4, 'TTL 0: kept the 5 s floor');
  c.advance(15);
  await cache.resolveTxt('two.test');
  assert.equal(asked.length, 5, 'two records, TTLs 300 and 20: kept 20 s');
  c.advance(3600 - 20);
  await cache.resolveTxt('day.test');
  assert.equal(asked.length, 6, 'TTL of a day: kept the one-hour ceiling');
});

test('negative answers are kept by the SOA (min of its TTL and MINIMUM, RFC 2308), else a fixed time', async () => {
  const zone = new Map<string, Reply>([
    ['TXT nx.test', answer([], [soa(600, 120)], 'NXDOMAIN')],
    ['MX nodata.test', answer([], [soa(40, 3000)])],
    ['TXT nosoa.test', answer([])],
    ['TXT big.test', answer([], [soa(86400, 86400)], 'NXDOMAIN')],
  ]);
  const { ask, asked } = servers(zone);
  const c = clock();
  const cache = new TtlCache(ask, { negativeS: 60, negativeCeilingS: 900 }, c.now);
  const code = async (p: Promise<unknown>): Promise<string> => p.then(() => 'resolved', (e: NodeJS.ErrnoException) => e.code ?? '?');
  assert.equal(await code(cache.resolveTxt('nx.test')), 'ENOTFOUND');
  assert.equal(await code(cache.resolveMx('nodata.test')), 'ENODATA');
  assert.equal(await code(cache.resolveTxt('nosoa.test')), 'ENODATA');
  assert.equal(await code(cache.resolveTxt('big.test')), 'ENOTFOUND');
  c.advance(39);
  for (const n of ['nx.test', 'nosoa.test', 'big.test']) await code(cache.resolveTxt(n));
  assert.equal(await code(cache.resolveMx('nodata.test')), 'ENODATA');
  assert.equal(asked.length, 4, 'all four kept');
  c.advance(1);
  await code(cache.resolveMx('nodata.test'));
  assert.equal(asked.length, 5, 'SOA TTL 40 < MINIMUM 3000: kept 40 s');
  c.advance(20);
  await code(cache.resolveTxt('nosoa.test'));
  assert.equal(asked.length, 6, 'no SOA: kept the fixed 60 s');
  c.advance(60);
  await code(cache.resolveTxt('nx.test'));
  assert.equal(asked.length, 7, 'MINIMUM 120 < SOA TTL 600: kept 120 s');
  c.advance(900 - 120);
  await code(cache.resolveTxt('big.test'));
  assert.equal(asked.length, 8, 'a day of negative TTL: kept the 15-minute ceiling');
});

test('a failure is a temporary error with Node\'s code and is never kept', async () => {
  const zone = new Map<string, Reply>([
    ['TXT sf.test', answer([], [], 'SERVFAIL')],
    ['TXT ref.test', answer([], [], 'REFUSED')],
    ['TXT down.test', { kind: 'error', reason: 'connect ECONNREFUSED 127.0.23.53:53' }],
  ]);
  const { ask, asked } = servers(zone);
  const cache = new TtlCache(ask, {}, clock().now);
  for (let i = 0; i < 2; i++) {
    await assert.rejects(cache.resolveTxt('sf.test'), { code: 'ESERVFAIL' });
    await assert.rejects(cache.resolveTxt('ref.test'), { code: 'EREFUSED' });
    await assert.rejects(cache.resolveTxt('slow.test'), { code: 'ETIMEOUT' });
    await assert.rejects(cache.resolveTxt('down.test'), { code: 'ECONNREFUSED' });
  }
  assert.equal(asked.length, 8, 'every failure asked again');
  assert.equal(cache.size, 0);
});

test('through the real client, a name no DNS message can carry is EBADNAME, without a packet sent', async () => {
  const { askServers } = await import('../../src/dns/ttl-cache.js');
  // 192.0.2.1 (TEST-NET-1) is never reached: the question cannot be written.
  const cache = new TtlCache(askServers({ servers: ['192.0.2.1'], timeoutMs: 200 }));
  await assert.rejects(cache.resolveTxt(`${'a'.repeat(64)}._domainkey.test`), { code: 'EBADNAME' });
});

test('through the real client, a server that is down is ECONNREFUSED at once, not after the timeout, and is not kept', async () => {
  const { askServers } = await import('../../src/dns/ttl-cache.js');
  const cache = new TtlCache(askServers({ servers: ['127.0.23.1:9'], timeoutMs: 3000 }));
  const t0 = Date.now();
  await assert.rejects(cache.resolveMx('down.test'), { code: 'ECONNREFUSED' });
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  assert.equal(cache.size, 0);
});

test('the size bound drops the oldest answer; identical questions at once share one query; Node\'s record shapes', async () => {
  const mx = (exchange: string, preference: number): packet.Answer => ({ type: 'MX', name: 'm.test', ttl: 60, class: 'IN', data: { exchange, preference } }) as packet.Answer;
  const zone = new Map<string, Reply>([
    ['MX m.test', answer([mx('mx1.m.test', 10), mx('.', 0)])],
    ['A a.test', answer([{ type: 'A', name: 'a.test', ttl: 60, class: 'IN', data: '192.0.2.1' }])],
    ['TXT t.test', answer([{ type: 'TXT', name: 't.test', ttl: 60, class: 'IN', data: [Buffer.from('v=DKIM1; k=rsa; '), Buffer.from('p=AB\xe9', 'latin1')] } as packet.Answer])],
  ]);
  const { ask, asked } = servers(zone);
  const cache = new TtlCache(ask, { maxEntries: 2 }, clock().now);
  const [x, y] = await Promise.all([cache.resolveMx('m.test'), cache.resolveMx('m.test')]);
  assert.deepEqual(x, [{ exchange: 'mx1.m.test', priority: 10 }, { exchange: '', priority: 0 }]);
  assert.equal(x, y);
  assert.equal(asked.length, 1, 'one query for both');
  assert.deepEqual(await cache.resolve4('a.test'), ['192.0.2.1']);
  assert.deepEqual(await cache.resolveTxt('t.test'), [['v=DKIM1; k=rsa; ', 'p=AB\xe9']]);
  assert.equal(cache.size, 2);
  await cache.resolve4('a.test');
  await cache.resolveMx('m.test');
  assert.equal(asked.length, 4, 'm.test, the oldest, was dropped for t.test; a.test was kept');
});

test('answer() gives records or a code, never a rejection; a cached answer is one shared frozen value', async () => {
  const mx = (exchange: string, preference: number): packet.Answer => ({ type: 'MX', name: 'm.test', ttl: 60, class: 'IN', data: { exchange, preference } }) as packet.Answer;
  const zone = new Map<string, Reply>([
    ['MX m.test', answer([mx('.', 0)])],
    ['MX nodata.test', answer([], [soa(300, 300)])],
    ['MX nx.test', answer([], [soa(300, 300)], 'NXDOMAIN')],
    ['MX sf.test', answer([], [], 'SERVFAIL')],
  ]);
  const { ask, asked } = servers(zone);
  const cache = new TtlCache(ask, {}, clock().now);
  assert.deepEqual(await cache.answer('m.test', 'MX'), { records: [{ exchange: '', priority: 0 }] });
  assert.deepEqual(await cache.answer('nodata.test', 'MX'), { code: 'ENODATA' });
  assert.deepEqual(await cache.answer('nx.test', 'MX'), { code: 'ENOTFOUND' });
  assert.deepEqual(await cache.answer('sf.test', 'MX'), { code: 'ESERVFAIL' });
  const [a, b] = [await cache.answer('nodata.test', 'MX'), await cache.answer('nodata.test', 'MX')];
  assert.equal(a, b, 'the same object on every hit');
  assert.ok(Object.isFrozen(a) && 'code' in a && a.code === 'ENODATA');
  assert.ok('records' in (await cache.answer('m.test', 'MX')));
  await assert.rejects(cache.resolveMx('nx.test'), { code: 'ENOTFOUND' }, 'resolve() still rejects as node:dns does');
  assert.deepEqual(await cache.answer('sf.test', 'MX'), { code: 'ESERVFAIL' });
  assert.equal(asked.length, 5, 'hits asked nothing; the failure was asked again');
});
