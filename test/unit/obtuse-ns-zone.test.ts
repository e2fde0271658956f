/*
 * NS= walks up to the client's zone, as Obtuse's findNameServers did: a
 * client host (mail.client.test) has an address but no NS records of its
 * own; its zone (client.test) has them. Served by a real DNS server on
 * loopback, through Postern's resolver and the node:dns adapter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from '../../src/dns/resolver.js';
import { obtuseDns } from '../../src/policy/obtuse/dns.js';
import { obtuseRulesPhase } from '../../src/policy/obtuse/phase.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { facts, mbox, rules, tx } from './obtuse-helpers.js';

test('NS= matches a client host whose zone\'s name servers match', async () => {
  const dns = await startDnsServer({
    '2.0.0.127.in-addr.arpa': [{ type: 'PTR', domain: 'mail.client.test' }],
    'mail.client.test': [{ type: 'A', address: '127.0.0.2' }],
    'deep.host.client.test': [{ type: 'A', address: '127.0.0.5' }],
    'client.test': [
      { type: 'NS', ns: 'ns1.bulk-host.test' },
      { type: 'NS', ns: 'ns2.bulk-host.test' },
    ],
    'ns1.bulk-host.test': [{ type: 'A', address: '198.51.100.53' }],
    'ns2.bulk-host.test': [{ type: 'A', address: '198.51.100.54' }],
    '3.0.0.127.in-addr.arpa': [{ type: 'PTR', domain: 'mx.good.test' }],
    'mx.good.test': [{ type: 'A', address: '127.0.0.3' }],
    'good.test': [{ type: 'NS', ns: 'ns.good.test' }],
    'ns.good.test': [{ type: 'A', address: '192.0.2.53' }],
  });
  try {
    const resolver = new Resolver({ servers: [dns.server], timeoutMs: 1000 });
    const phase = obtuseRulesPhase({
      rules: rules('noto:NS=*.bulk-host.test:ALL:ALL:550 5.7.1 %H is hosted by a bulk mailer\nnoto:NS=198.51.100.0/24:ALL:ALL:550 5.7.1 by address\nallow:ALL:ALL:ALL'),
      dns: obtuseDns(resolver.raw),
    });
    const verdict = async (ip: string, host: string | undefined): Promise<string> => {
      const v = await phase.rcpt(facts(ip, host), tx('a@b.test'), mbox('c@d.test'));
      return v.kind === 'pass' ? 'allow' : `${v.reply.code} ${v.reply.lines.join(' ')}`;
    };
    assert.equal(await resolver.reverseConfirmed('127.0.0.2'), 'mail.client.test');
    assert.equal(await verdict('127.0.0.2', 'mail.client.test'), '550 mail.client.test is hosted by a bulk mailer');
    assert.equal(await verdict('127.0.0.5', 'deep.host.client.test'), '550 deep.host.client.test is hosted by a bulk mailer');
    assert.equal(await verdict('127.0.0.3', 'mx.good.test'), 'allow');
    // Walking up asked mail.client.test, then client.test, and no further (never the TLD).
    const asked = dns.queries();
    assert.ok(asked.includes('NS mail.client.test') && asked.includes('NS client.test'));
    assert.ok(!asked.some((q) => / test$/.test(q)), asked.join(', '));
    const byAddress = obtuseRulesPhase({ rules: rules('noto:NS=198.51.100.0/24:ALL:ALL:550 5.7.1 by address\nallow:ALL:ALL:ALL'), dns: obtuseDns(resolver.raw) });
    const v = await byAddress.rcpt(facts('127.0.0.2', 'mail.client.test'), tx('a@b.test'), mbox('c@d.test'));
    assert.equal(v.kind, 'reject');
  } finally {
    await dns.close();
  }
});
