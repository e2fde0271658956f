/*
 * policy/null-mx.ts: refusal of null-MX senders, and the answer cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nullMxSenderPhase } from '../../src/policy/null-mx.js';
import { LocalNames } from '../../src/rules/localnames.js';
import type { MxDns } from '../../src/dns/mx.js';
import { TtlCache, type Ask } from '../../src/dns/ttl-cache.js';

test('a null-MX sender is refused with 550 5.7.27; answers are cached, failures are not', async () => {
  let queries = 0;
  let fail = false;
  // A stand-in for the resolver, counting queries (the real lookup is tested against a DNS server in relay-mx).
  const dns = {
    resolveMx: async (name: string) => {
      queries++;
      if (fail) throw Object.assign(new Error('timeout'), { code: 'ETIMEOUT' });
      return name.startsWith('nullmx.') ? [{ exchange: '', priority: 0 }] : [{ exchange: 'mx.example.org', priority: 10 }];
    },
  } as unknown as MxDns;
  let t = 0;
  const phase = nullMxSenderPhase(dns, new LocalNames('mx.test.example'), 1000, () => t);
  const mail = (domain: string) => phase.mail!({} as never, { sender: { local: 'a', domain, utf8: false }, params: { smtputf8: false }, rcptCount: 0 });
  const v = await mail('nullmx.example');
  assert.equal(v.kind === 'reject' && `${v.reply.code} ${v.reply.enhanced}`, '550 5.7.27');
  assert.equal((await mail('ok.example')).kind, 'pass');
  await mail('ok.example');
  await mail('nullmx.example');
  assert.equal(queries, 2, 'cached');
  assert.equal((await mail('mx.test.example')).kind, 'pass');
  assert.equal(queries, 2, 'our own domain is not looked up');
  fail = true;
  t += 11 * 60_000;
  assert.equal((await mail('nullmx.example')).kind, 'pass', 'a failed lookup lets the mail through');
  assert.equal((await mail('nullmx.example')).kind, 'pass');
  assert.equal(queries, 4, 'failures are not cached');
});

test('through the TTL cache (no Error per cached negative answer): null MX refused, no MX or NXDOMAIN passes, a failure passes', async () => {
  const soa = { type: 'SOA', name: 'example', ttl: 300, class: 'IN', data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 300 } };
  let asked = 0;
  // The servers as decoded answers (the wire client is tested in dns-ttl-cache and relay-mx).
  const ask: Ask = async (name) => {
    asked++;
    if (name.startsWith('nullmx.')) return { kind: 'answer', rcode: 'NOERROR', ad: false, answers: [{ type: 'MX', name, ttl: 300, class: 'IN', data: { exchange: '.', preference: 0 } }], authorities: [] } as never;
    if (name.startsWith('sf.')) return { kind: 'answer', rcode: 'SERVFAIL', ad: false, answers: [], authorities: [] };
    return { kind: 'answer', rcode: name.startsWith('nx.') ? 'NXDOMAIN' : 'NOERROR', ad: false, answers: [], authorities: [soa] } as never;
  };
  const phase = nullMxSenderPhase(new TtlCache(ask), new LocalNames('mx.test.example'), 1000, Date.now, 0);
  const mail = (domain: string) => phase.mail!({} as never, { sender: { local: 'a', domain, utf8: false }, params: { smtputf8: false }, rcptCount: 0 });
  const v = await mail('nullmx.example');
  assert.equal(v.kind === 'reject' && `${v.reply.code} ${v.reply.enhanced}`, '550 5.7.27');
  for (const d of ['nodata.example', 'nx.example', 'sf.example', 'nodata.example', 'nx.example']) assert.equal((await mail(d)).kind, 'pass', d);
  assert.equal((await mail('nullmx.example')).kind, 'reject');
  assert.equal(asked, 4, 'negative answers kept by the cache, the failure not');
});
