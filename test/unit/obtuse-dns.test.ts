/*
 * The rules file against a real DNS server on loopback: KNOWN/UNKNOWN from
 * Postern's forward-confirmed reverse lookup, and NS=/RBL. through the
 * node:dns adapter (NXDOMAIN and NODATA are answers, SERVFAIL is a 451).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver as DnsResolver } from 'node:dns/promises';
import { Resolver } from '../../src/dns/resolver.js';
import { obtuseDns } from '../../src/policy/obtuse/dns.js';
import { obtuseRulesPhase } from '../../src/policy/obtuse/phase.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { facts, mbox, rules, tx } from './obtuse-helpers.js';

test('KNOWN / UNKNOWN with rDNS from a real DNS server', async () => {
  const dns = await startDnsServer({
    '2.0.0.127.in-addr.arpa': [{ type: 'PTR', domain: 'mx.friend.test' }],
    'mx.friend.test': [{ type: 'A', address: '127.0.0.2' }],
    // A PTR whose name does not resolve back: not forward-confirmed, so UNKNOWN.
    '3.0.0.127.in-addr.arpa': [{ type: 'PTR', domain: 'liar.test' }],
    'liar.test': [{ type: 'A', address: '192.0.2.99' }],
  });
  try {
    const resolver = new Resolver({ servers: [dns.server], timeoutMs: 1000 });
    const phase = obtuseRulesPhase({ rules: rules('allow:KNOWN:ALL:ALL\nnoto:UNKNOWN:ALL:ALL:550 who are you, %I?') });
    const verdict = async (ip: string) => {
      const rdns = await resolver.reverseConfirmed(ip);
      const v = await phase.rcpt(facts(ip, rdns), tx('a@b.test'), mbox('c@d.test'));
      return v.kind === 'pass' ? `allow (${rdns})` : `${v.reply.code} ${v.reply.lines.join(' ')}`;
    };
    assert.equal(await verdict('127.0.0.2'), 'allow (mx.friend.test)');
    assert.equal(await verdict('127.0.0.3'), '550 who are you, 127.0.0.3?');
    assert.equal(await verdict('127.0.0.4'), '550 who are you, 127.0.0.4?');
  } finally {
    await dns.close();
  }
});

test('obtuseDns: MX hosts count as servers; NXDOMAIN is null, NODATA is []; failures throw', async () => {
  const dns = await startDnsServer({
    'bulk.test': [{ type: 'MX', priority: 10, exchange: 'mx.bulk-host.test' }],
    'mx.bulk-host.test': [{ type: 'A', address: '127.0.5.5' }],
    'hostonly.test': [{ type: 'A', address: '127.0.6.6' }],
    'broken.test': 'SERVFAIL',
  });
  try {
    const r = new DnsResolver({ timeout: 1000, tries: 1 });
    r.setServers([dns.server]);
    const d = obtuseDns(r);
    assert.deepEqual(await d.servers('bulk.test'), ['mx.bulk-host.test']);
    assert.deepEqual(await d.servers('hostonly.test'), []);
    assert.equal(await d.servers('nowhere.test'), null);
    assert.deepEqual(await d.addresses('mx.bulk-host.test'), ['127.0.5.5']);
    assert.deepEqual(await d.addresses('nowhere.test'), []);
    await assert.rejects(d.servers('broken.test'));

    const phase = obtuseRulesPhase({ rules: rules('noto:ALL:*@NS=127.0.5.0/24:ALL:550 bulk mailer\nallow:ALL:ALL:ALL'), dns: d });
    const decide = async (from: string) => {
      const v = await phase.rcpt(facts('192.0.2.1'), tx(from), mbox('c@d.test'));
      return v.kind === 'pass' ? 'allow' : `${v.reply.code} ${v.reply.lines.join(' ')}`;
    };
    assert.equal(await decide('x@bulk.test'), '550 bulk mailer');
    assert.equal(await decide('x@sub.bulk.test'), '550 bulk mailer', 'a missing name falls back to its parent domain');
    assert.equal(await decide('x@hostonly.test'), 'allow');
    assert.equal(await decide('x@broken.test'), '451 Temporary failure, please try again later');
  } finally {
    await dns.close();
  }
});
