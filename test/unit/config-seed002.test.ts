/*
 * The four smtpd.conf examples of seed 002 (Calomel's OpenSMTPD 4.6 how-to),
 * verbatim in test/fixtures/seed002/, must load with no error and mean what
 * the how-to says they mean.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatDiagnostic, loadConfigFile } from '../../src/config/load.js';
import type { Config } from '../../src/config/model.js';
import { ROOT, TEST_OPTS, action, conds, ok } from './config-helpers.js';

function example(n: number): { config: Config; warnings: string[] } {
  const file = join(ROOT, 'test/fixtures/seed002', `example${n}.conf`);
  const r = loadConfigFile(file, TEST_OPTS);
  const errs = r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
  assert.deepEqual(errs, [], `example ${n} has errors`);
  assert.ok(r.config);
  return { config: r.config, warnings: r.diagnostics.map((d) => d.message) };
}

test('example 1: local delivery to mbox, relay for local senders', () => {
  const { config: c, warnings } = example(1);
  assert.deepEqual(warnings, []);
  assert.equal(c.dialect, 'legacy');
  assert.equal(c.hostname, 'mx.example.org');
  assert.equal(c.listeners.length, 1);
  assert.equal(c.listeners[0]?.on, 'lo0');
  assert.equal(c.listeners[0]?.port, 25);
  assert.equal(c.listeners[0]?.tls, 'none');
  assert.deepEqual(c.tables.get('aliases'), { name: 'aliases', pos: c.tables.get('aliases')?.pos, kind: 'db', path: '/etc/mail/aliases.db' });
  assert.equal(c.rules.length, 2);
  assert.deepEqual(conds(c, 0), ['from-local', 'for-local']);
  const local = action(c, c.rules[0]?.action);
  assert.equal(local.kind, 'mbox');
  assert.equal(local.alias, 'aliases', '"for local" uses the map named "aliases"');
  assert.deepEqual(conds(c, 1), ['from-local', 'for-any']);
  const relay = action(c, c.rules[1]?.action);
  assert.equal(relay.kind, 'relay');
  assert.equal(relay.relay?.host, undefined, 'plain "relay" routes by MX');
  assert.equal(relay.relay?.tls, 'opportunistic');
  assert.equal(relay.alias, undefined);
  assert.match(c.rules[0]?.action ?? '', /^<rule:.*example1\.conf:8>$/);
});

test('example 2: procmail for local and somehost.com, relay via mailrelay.domain.lan', () => {
  const { config: c, warnings } = example(2);
  assert.deepEqual(warnings, []);
  assert.equal(c.hostname, 'machine.domain.lan');
  assert.deepEqual(
    c.listeners.map((l) => [l.on, l.port]),
    [['127.0.0.1', 25]],
  );
  assert.equal(c.rules.length, 3);
  assert.deepEqual(conds(c, 0), ['from-local', 'for-local']);
  const mda = action(c, c.rules[0]?.action);
  assert.equal(mda.kind, 'mda');
  assert.equal(mda.command, 'procmail -f -');
  assert.equal(mda.alias, 'aliases');

  assert.deepEqual(conds(c, 1), ['from-local', 'for-domain <somehost.com>']);
  const dom = c.tables.get('<somehost.com>');
  assert.equal(dom?.kind, 'list');
  assert.deepEqual(dom?.kind === 'list' ? dom.values : [], ['somehost.com']);
  assert.equal(action(c, c.rules[1]?.action).command, 'procmail -f -');
  assert.equal(action(c, c.rules[1]?.action).alias, undefined, 'only "for local" gets the aliases map');

  assert.deepEqual(conds(c, 2), ['from-local', 'for-any']);
  const relay = action(c, c.rules[2]?.action).relay;
  assert.deepEqual(relay?.host, { scheme: 'smtp', host: 'mailrelay.domain.lan' });
  assert.equal(relay?.tls, 'opportunistic');
  assert.equal(relay?.authTable, undefined);
});

test('example 3: relay to smtp.gmail.com port 587 with STARTTLS and the "secrets" map', () => {
  const { config: c, warnings } = example(3);
  assert.deepEqual(warnings, []);
  assert.deepEqual([...c.tables.keys()], ['aliases', 'secrets']);
  assert.equal(c.tables.get('secrets')?.kind, 'db');
  assert.equal(c.rules.length, 2);
  assert.deepEqual(conds(c, 1), ['from-local', 'for-any']);
  const relay = action(c, c.rules[1]?.action).relay;
  assert.deepEqual(relay?.host, { scheme: 'smtp+tls', host: 'smtp.gmail.com', port: 587 });
  assert.equal(relay?.tls, 'required');
  assert.equal(relay?.tlsNoVerify, false);
  assert.equal(relay?.authTable, 'secrets');
});

test('example 4: two listeners, example.org from anywhere, relay for local senders', () => {
  const { config: c, warnings } = example(4);
  assert.deepEqual(
    c.listeners.map((l) => [l.on, l.port]),
    [
      ['127.0.0.1', 25],
      ['192.168.5.55', 25],
    ],
  );
  assert.equal(c.hostname, 'machine.domain.lan');
  assert.equal(c.rules.length, 3);
  assert.deepEqual(conds(c, 1), ['from-any', 'for-domain <example.org>']);
  assert.equal(action(c, c.rules[1]?.action).command, 'procmail -f -');
  assert.deepEqual(action(c, c.rules[2]?.action).relay?.host, { scheme: 'smtp', host: 'mailrelay.domain.lan' });
  // The how-to declares a "virtual" map but no rule uses it: worth a warning, not an error.
  assert.deepEqual(warnings, ['map "virtual" is declared but never used']);
  assert.ok(!warnings.some((w) => w.includes('open relay')));
});

test('the seed examples are frozen all the way down', () => {
  const { config: c } = example(3);
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.rules[0]?.conditions[0]));
  assert.ok(Object.isFrozen(c.listeners[0]));
  const relay = action(c, c.rules[1]?.action).relay;
  assert.ok(Object.isFrozen(relay?.host));
  assert.throws(() => (c.tables as Map<string, unknown>).set('x', {}), TypeError);
  assert.throws(() => (c.actions as Map<string, unknown>).delete('x'), TypeError);
  assert.throws(() => (c.smtp.disabledExtensions as Set<string>).add('DSN'), TypeError);
  const inline = ok('table t { a = b }\nmatch for domain <t> reject\n').tables.get('t');
  assert.ok(inline?.kind === 'map');
  assert.throws(() => (inline.entries as Map<string, string>).set('x', 'y'), TypeError);
  assert.throws(() => {
    (c as { hostname: string }).hostname = 'x';
  }, TypeError);
});
