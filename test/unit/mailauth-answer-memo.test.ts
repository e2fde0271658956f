/*
 * mailauth/answer-memo.ts: SPF and DMARC results kept exactly as long as
 * the cached DNS answers behind them (dns/ttl-cache.ts, injected clock,
 * the servers a stand-in giving decoded answers): evaluated once while the
 * answers stand, again when one expires and the new record is seen, never
 * kept after a failed lookup, a temperror or a record with SPF macros.
 * Through InboundVerifier.spf() and the engine's DMARC step, as the daemon
 * calls them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as packet from 'dns-packet';
import { TtlCache } from '../../src/dns/ttl-cache.js';
import type { PacketAnswer } from '../../src/dns/packet-client.js';
import { cachingResolver } from '../../src/mailauth/dns.js';
import { AnswerMemo, hasMacro } from '../../src/mailauth/answer-memo.js';
import { InboundVerifier } from '../../src/mailauth/verify/verifier.js';
import { InlineEngine } from '../../src/mailauth/verify/engine.js';

const answer = (answers: packet.Answer[], authorities: packet.Answer[] = [], rcode = 'NOERROR'): PacketAnswer => ({ kind: 'answer', rcode, ad: false, answers, authorities });
const txt = (name: string, ttl: number, text: string): packet.Answer => ({ type: 'TXT', name, ttl, class: 'IN', data: [Buffer.from(text)] }) as packet.Answer;
const soa = (ttl: number): packet.Answer => ({ type: 'SOA', name: 'test', ttl, class: 'IN', data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: ttl } }) as packet.Answer;

function world(): { zone: Map<string, PacketAnswer>; asked: string[]; advance: (s: number) => void; resolver: ReturnType<typeof cachingResolver> } {
  const zone = new Map<string, PacketAnswer>();
  const asked: string[] = [];
  let t = 1_000_000;
  const cache = new TtlCache(
    async (name, type) => {
      asked.push(`${type} ${name}`);
      return zone.get(`${type} ${name.toLowerCase()}`) ?? answer([], [soa(60)], 'NXDOMAIN');
    },
    {},
    () => t,
  );
  return { zone, asked, advance: (s) => (t += s * 1000), resolver: cachingResolver(cache) };
}

const facts = { clientAddress: '192.0.2.1', fromSocket: false, helo: 'mta.example.org', sender: 'a@example.org' };
const opts = { spfReject: true, dmarcReject: true, quarantine: 'tag', minKeyBits: 1024 } as const;

test('SPF: one evaluation while the record stands, a new one when its TTL has run out and the record changed', async () => {
  const w = world();
  w.zone.set('TXT example.org', answer([txt('example.org', 30, 'v=spf1 ip4:192.0.2.0/24 -all')]));
  const v = new InboundVerifier(opts, w.resolver, 'mx.test', () => false);
  assert.equal((await v.spfAtMail(facts)).kind, 'pass');
  assert.equal((await v.spf(facts)).status.result, 'pass');
  assert.equal((await v.spf(facts)).status.result, 'pass');
  assert.equal(w.asked.length, 1);
  w.zone.set('TXT example.org', answer([txt('example.org', 30, 'v=spf1 -all')]));
  w.advance(29);
  assert.equal((await v.spf(facts)).status.result, 'pass', 'the cached record still stands');
  w.advance(1);
  assert.equal((await v.spf(facts)).status.result, 'fail', 'its TTL ran out: the new record, and a new result');
  assert.equal((await v.spfAtMail(facts)).kind, 'reject');
  assert.match((await v.spf({ ...facts, sender: 'b@example.org' })).info, /domain of b@example\.org /, 'another sender is another key');
});

test('SPF: an include answered later by another record is followed too (every answer read counts)', async () => {
  const w = world();
  w.zone.set('TXT example.org', answer([txt('example.org', 3600, 'v=spf1 include:_spf.example.net -all')]));
  w.zone.set('TXT _spf.example.net', answer([txt('_spf.example.net', 10, 'v=spf1 ip4:192.0.2.1 -all')]));
  const v = new InboundVerifier(opts, w.resolver, 'mx.test', () => false);
  assert.equal((await v.spf(facts)).status.result, 'pass');
  w.zone.set('TXT _spf.example.net', answer([txt('_spf.example.net', 10, 'v=spf1 -all')]));
  w.advance(5);
  assert.equal((await v.spf(facts)).status.result, 'pass');
  w.advance(6);
  assert.equal((await v.spf(facts)).status.result, 'fail', 'the included record expired and changed');
});

test('SPF: not kept after a failed lookup (temperror) or with macros in the record', async () => {
  const w = world();
  w.zone.set('TXT example.org', answer([], [], 'SERVFAIL'));
  const v = new InboundVerifier(opts, w.resolver, 'mx.test', () => false);
  assert.equal((await v.spf(facts)).status.result, 'temperror');
  w.zone.set('TXT example.org', answer([txt('example.org', 300, 'v=spf1 ip4:192.0.2.1 -all')]));
  assert.equal((await v.spf(facts)).status.result, 'pass', 'the temperror was not kept');
  const m = world();
  m.zone.set('TXT example.org', answer([txt('example.org', 300, 'v=spf1 exists:%{i}.ok.example.org -all')]));
  m.zone.set('A 192.0.2.1.ok.example.org', answer([{ type: 'A', name: '192.0.2.1.ok.example.org', ttl: 300, class: 'IN', data: '127.0.0.2' } as packet.Answer]));
  const vm = new InboundVerifier(opts, m.resolver, 'mx.test', () => false);
  assert.equal((await vm.spf(facts)).status.result, 'pass');
  const before = m.asked.length;
  m.advance(400);
  await vm.spf(facts);
  assert.ok(m.asked.length > before, 'evaluated again (a record with macros is never kept)');
  assert.equal(hasMacro([['v=spf1 a:%{d} -all']]), true);
  assert.equal(hasMacro([['v=spf1 ', 'a -all']]), false);
});

test('DMARC: kept while _dmarc and the tree walk answers are; a changed policy is seen after its TTL', async () => {
  const w = world();
  w.zone.set('TXT _dmarc.example.org', answer([txt('_dmarc.example.org', 20, 'v=DMARC1; p=reject')]));
  const msg = Buffer.from('From: a@example.org\r\nTo: b@example.net\r\nSubject: x\r\n\r\nbody\r\n');
  const dmarc = async (): Promise<string | undefined> => {
    const e = new InlineEngine({ resolver: w.resolver, minKeyBits: 1024, clientAddress: '192.0.2.1' });
    e.write(msg);
    const r = await e.results(Promise.resolve(undefined));
    return r.dmarc ? `${r.dmarc.status.result}:${r.dmarc.policy}` : undefined;
  };
  assert.equal(await dmarc(), 'fail:reject');
  const n = w.asked.length;
  assert.equal(await dmarc(), 'fail:reject');
  assert.equal(w.asked.length, n, 'no lookup for the second message');
  w.zone.set('TXT _dmarc.example.org', answer([txt('_dmarc.example.org', 20, 'v=DMARC1; p=none')]));
  w.advance(21);
  assert.equal(await dmarc(), 'fail:none');
});

test('the memo is bounded, and without a cache behind the resolver it keeps nothing', async () => {
  const w = world();
  w.zone.set('TXT a.test', answer([txt('a.test', 300, 'x')]));
  const memo = new AnswerMemo<number>(2);
  let runs = 0;
  const compute = async (r: typeof w.resolver): Promise<number> => {
    await r('a.test', 'TXT');
    return ++runs;
  };
  for (const k of ['1', '2', '3', '1']) await memo.get(k, w.resolver, compute, () => true);
  assert.equal(memo.size, 2);
  assert.equal(runs, 4, 'key 1 was dropped as the oldest');
  const plain = new AnswerMemo<number>();
  await plain.get('k', async () => [['x']], async () => 1, () => true);
  assert.equal(plain.size, 0);
});
