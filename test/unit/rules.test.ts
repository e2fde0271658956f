/*
 * The relay decision: smtpd.conf rules evaluated for a client address, a
 * sender and a recipient — first match wins, tri-state lookups, and the
 * default configuration is not an open relay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText, formatDiagnostic } from '../../src/config/load.js';
import { DEFAULT_CONFIG_TEXT } from '../../src/config/defaults.js';
import { RuleEngine, type RuleContext } from '../../src/rules/rules.js';
import { LocalNames } from '../../src/rules/localnames.js';
import { TableRegistry } from '../../src/table/table.js';
import { tableFromDecl } from '../../src/table/table-static.js';

function engine(text: string): RuleEngine {
  const r = loadConfigText(text, 't.conf', { hostname: 'mx.example.org' });
  if (!r.config) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  const tables = new TableRegistry();
  for (const d of r.config.tables.values()) tables.add(tableFromDecl(d));
  return new RuleEngine(r.config, tables, new LocalNames(r.config.hostname));
}

function ctx(client: string, rcpt: string, extra: Partial<RuleContext> = {}): RuleContext {
  const at = rcpt.lastIndexOf('@');
  return { clientAddress: client, fromSocket: false, tls: false, sender: 'someone@sender.example', rcpt, rcptDomain: at < 0 ? '' : rcpt.slice(at + 1).toLowerCase(), ...extra };
}

function outcome(e: RuleEngine, c: RuleContext): string {
  const d = e.decide(c);
  return d.kind === 'accept' ? `accept ${d.action.name}` : `${d.reply.code} ${d.reply.enhanced}`;
}

test('the built-in default configuration is not an open relay', () => {
  const e = engine(DEFAULT_CONFIG_TEXT);
  assert.equal(outcome(e, ctx('192.0.2.9', 'victim@elsewhere.example')), '550 5.7.1');
  assert.equal(outcome(e, ctx('127.0.0.2', 'victim@elsewhere.example')), '550 5.7.1');
  assert.equal(outcome(e, ctx('127.0.0.1', 'victim@elsewhere.example')), 'accept relay');
  assert.equal(outcome(e, ctx('::1', 'user@localhost')), 'accept local');
  assert.equal(outcome(e, ctx('192.0.2.9', 'user@mx.example.org')), '550 5.1.1');
  assert.equal(outcome(e, ctx('127.0.0.1', 'user@[127.0.0.1]')), 'accept local');
  assert.equal(outcome(e, ctx('127.0.0.1', 'postmaster')), 'accept local');
});

test('seed 002 example #4: remote mail for example.org only; relaying from local only', () => {
  const e = engine(`listen on 127.0.0.1 port 25
hostname "machine.domain.lan"
accept for local deliver to mda "procmail -f -"
accept from all for domain "example.org" deliver to mda "procmail -f -"
accept for all relay via "mailrelay.domain.lan"
`);
  const remote = e.decide(ctx('192.0.2.9', 'bob@example.org'));
  assert.equal(remote.kind === 'accept' && remote.action.kind, 'mda');
  assert.equal(e.decide(ctx('192.0.2.9', 'bob@EXAMPLE.ORG')).kind, 'accept');
  assert.equal(outcome(e, ctx('192.0.2.9', 'bob@sub.example.org')), '550 5.7.1');
  assert.equal(outcome(e, ctx('192.0.2.9', 'x@gmail.example')), '550 5.7.1');
  const local = e.decide(ctx('127.0.0.1', 'x@gmail.example'));
  assert.equal(local.kind === 'accept' && local.action.relay?.host?.host, 'mailrelay.domain.lan');
});

test('first match wins, reject rules, negation, CIDR sources, tags', () => {
  const e = engine(`listen on 127.0.0.1 port 25 tag MSA
table trusted { 10.0.0.0/8, 192.0.2.0/24 }
table blocked { 192.0.2.66 }
action "relay" relay
action "local" mbox
match from src <blocked> for any reject
match from src <trusted> for any action "relay"
match !from src <trusted> tag MSA for any action "relay"
match from any for domain "example.org" action "local"
`);
  assert.equal(outcome(e, ctx('192.0.2.66', 'a@example.org')), '550 5.7.1');
  assert.equal(outcome(e, ctx('10.1.2.3', 'a@far.example')), 'accept relay');
  assert.equal(outcome(e, ctx('::ffff:10.1.2.3', 'a@far.example')), 'accept relay');
  assert.equal(outcome(e, ctx('198.51.100.1', 'a@far.example')), '550 5.7.1');
  assert.equal(outcome(e, ctx('198.51.100.1', 'a@far.example', { tag: 'MSA' })), 'accept relay');
  assert.equal(outcome(e, ctx('198.51.100.1', 'a@example.org')), 'accept local');
});

test('a table that cannot be read is a temporary failure, never "no match"', () => {
  const e = engine(`listen on 127.0.0.1
table clients file:/nonexistent/postern-clients
action "relay" relay
match from src <clients> for any action "relay"
`);
  const d = e.decide(ctx('192.0.2.1', 'a@far.example'));
  assert.equal(d.kind, 'reject');
  assert.equal(d.kind === 'reject' && `${d.reply.code} ${d.reply.enhanced}`, '451 4.3.0');
});

test('authenticated sessions and rdns conditions', () => {
  const e = engine(`listen on 127.0.0.1
action "relay" relay
match from any auth for any action "relay"
match from rdns for domain "example.org" action "relay"
`);
  assert.equal(outcome(e, ctx('192.0.2.1', 'a@far.example')), '550 5.7.1');
  assert.equal(outcome(e, ctx('192.0.2.1', 'a@far.example', { authUser: 'joe' })), 'accept relay');
  assert.equal(outcome(e, ctx('192.0.2.1', 'a@example.org')), '550 5.7.1');
  assert.equal(outcome(e, ctx('192.0.2.1', 'a@example.org', { rdns: 'mail.example.net' })), 'accept relay');
});
