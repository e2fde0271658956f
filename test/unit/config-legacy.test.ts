/*
 * The legacy (OpenSMTPD 4.6–5.2) dialect beyond the seed examples.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { action, conds, lines, ok } from './config-helpers.js';

test('legacy listen: port, tls/smtps, certificate, enable auth, tag', () => {
  const c = ok(`listen on lo0 port 587 tls certificate mail.example.org enable auth tag SUBMIT
listen on em0 smtps
listen on em1 port smtp
accept for local deliver to mbox
`);
  const [a, b, d] = c.listeners;
  assert.deepEqual([a?.port, a?.tls, a?.pki, a?.auth, a?.tag], [587, 'starttls', 'mail.example.org', 'required', 'SUBMIT']);
  assert.deepEqual([b?.port, b?.tls], [465, 'smtps']);
  assert.equal(d?.port, 25);
  assert.equal(c.dialect, 'legacy');
});

test('map forms: braces over several lines, no braces, plain and file sources, type', () => {
  const c = ok(`map "aliases" {
  source db "/etc/mail/aliases.db"
}
map secrets source db "/etc/mail/secrets.db"
map "virt" { source plain "/etc/mail/virtual" }
map "net" { type list
  source file "nets.txt" }
accept from map net for virtual virt deliver to maildir "/var/vmail/%u"
accept for local relay via smtp.example.org port 587 tls enable auth
`);
  assert.deepEqual(
    [...c.tables.values()].filter((t) => !t.name.startsWith('<')).map((t) => [t.name, t.kind, 'path' in t ? t.path : '']),
    [
      ['aliases', 'db', '/etc/mail/aliases.db'],
      ['secrets', 'db', '/etc/mail/secrets.db'],
      ['virt', 'file', '/etc/mail/virtual'],
      ['net', 'file', '/srv/postern/nets.txt'],
    ],
  );
  assert.deepEqual(conds(c, 0), ['from-src net', 'for-virtual virt']);
  const vd = action(c, c.rules[0]?.action);
  assert.deepEqual([vd.kind, vd.maildirPath, vd.virtual, vd.alias], ['maildir', '/var/vmail/%u', 'virt', undefined]);
  assert.equal(action(c, c.rules[1]?.action).alias, undefined, 'aliases apply to local delivery, not relay');
});

test('legacy sources and destinations', () => {
  const c = ok(`map "aliases" { source db "/etc/mail/aliases.db" }
map "doms" { source file "/etc/mail/domains" }
map "other" { source file "/etc/mail/other" }
accept from all for domain map doms deliver to mbox
accept from any for any deliver to mbox
accept from local for local alias other deliver to mbox
accept from 192.168.0.0/16 for domain "a.example" alias aliases deliver to mbox
accept from ::1 for local deliver to mbox
accept on SUBMIT for local deliver to mbox
reject from all for domain "spam.example"
`);
  assert.deepEqual(conds(c, 0), ['from-any', 'for-domain doms']);
  assert.deepEqual(conds(c, 1), ['from-any', 'for-any']);
  assert.deepEqual(conds(c, 2), ['from-local', 'for-local']);
  assert.equal(action(c, c.rules[2]?.action).alias, 'other', 'an explicit alias map wins over "aliases"');
  assert.deepEqual(conds(c, 3), ['from-src <192.168.0.0/16>', 'for-domain <a.example>']);
  assert.equal(action(c, c.rules[3]?.action).alias, 'aliases');
  assert.deepEqual(conds(c, 4), ['from-src <::1>', 'for-local']);
  assert.deepEqual(conds(c, 5), ['from-local', 'tag SUBMIT', 'for-local']);
  assert.equal(c.rules[6]?.decision, 'reject');
  assert.equal(c.rules[6]?.action, undefined);
});

test('a list of destinations makes one rule per destination, sharing one action', () => {
  const c = ok('accept for { local, domain "b.example" } deliver to mda "procmail"\n');
  assert.equal(c.rules.length, 2);
  assert.deepEqual(conds(c, 0), ['from-local', 'for-local']);
  assert.deepEqual(conds(c, 1), ['from-local', 'for-domain <b.example>']);
  assert.equal(c.rules[0]?.action, c.rules[1]?.action);
  assert.equal(c.actions.size, 1);
});

test('"for local" without an "aliases" map has no alias table', () => {
  const c = ok('accept for local deliver to mbox\n');
  assert.equal(action(c, c.rules[0]?.action).alias, undefined);
});

test('"aliases" may be declared after the rule that uses it implicitly', () => {
  const c = ok('accept for local deliver to mbox\nmap "aliases" { source db "/etc/mail/aliases.db" }\n');
  assert.equal(action(c, c.rules[0]?.action).alias, 'aliases');
});

test('relay via: schemes, port, auth map, as, URL form, backup', () => {
  const c = ok(`map "secrets" { source db "/etc/mail/secrets.db" }
map "creds" { source db "/etc/mail/creds.db" }
accept for domain a relay via mx.example.org
accept for domain b relay via mx.example.org port 465 smtps
accept for domain c relay via mx.example.org ssl auth "creds"
accept for domain d relay via mx.example.org tls enable auth as "@example.org"
accept for domain e relay via "smtps://mx.example.org:4650" auth creds
accept for domain f relay backup "mx2.example.org"
accept for domain g relay as bounce@example.org
`);
  const r = (i: number) => action(c, c.rules[i]?.action).relay;
  assert.deepEqual([r(0)?.host, r(0)?.tls], [{ scheme: 'smtp', host: 'mx.example.org' }, 'opportunistic']);
  assert.deepEqual([r(1)?.host, r(1)?.tls], [{ scheme: 'smtps', host: 'mx.example.org', port: 465 }, 'smtps']);
  assert.deepEqual([r(2)?.host?.scheme, r(2)?.authTable], ['smtps', 'creds']);
  assert.deepEqual([r(3)?.host?.scheme, r(3)?.authTable, r(3)?.mailFrom], ['smtp+tls', 'secrets', '@example.org']);
  assert.deepEqual([r(4)?.host, r(4)?.authTable], [{ scheme: 'smtps', host: 'mx.example.org', port: 4650 }, 'creds']);
  assert.deepEqual([r(5)?.backup, r(5)?.backupMx, r(5)?.host], [true, 'mx2.example.org', undefined]);
  assert.deepEqual([r(6)?.mailFrom, r(6)?.host], ['bounce@example.org', undefined]);
});

test('size, expire and queue interval', () => {
  const c = ok('size 10M\nexpire 2d\nqueue interval 1m\n');
  assert.equal(c.smtp.maxMessageSize, 10 * 1024 * 1024);
  assert.equal(c.queue.ttl, 2 * 86400);
  assert.equal(c.queue.interval, 60);
});

test('legacy rules and modern statements can be mixed, with one warning', () => {
  const r = lines(`accept for local deliver to mbox
action "out" relay
match from local for any action "out"
table t { a }
match for domain <t> action "out"
`);
  assert.deepEqual(r, [
    'smtpd.conf:2:1: warning: this configuration mixes the legacy (OpenSMTPD 4.6–5.2) and modern (OpenSMTPD 6.4+) dialects (first legacy statement at line 1); rules of both are applied in file order',
  ]);
  const c = ok('accept for local deliver to mbox\naction "out" relay\nmatch from local for any action "out"\n');
  assert.equal(c.dialect, 'mixed');
  assert.deepEqual(
    c.rules.map((x) => x.dialect),
    ['legacy', 'modern'],
  );
});
