/*
 * The `filter` statements of smtpd.conf (config/parse-filter.ts) and
 * `listen … filter NAME`: what they build, and FILE:LINE:COL errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errors, ok } from './config-helpers.js';

test('a milter with Postfix-like defaults, and its options', () => {
  const c = ok('filter rspamd milter "inet:127.0.0.1:11332"\nfilter dkim milter "unix:/run/opendkim.sock" default-action accept connect-timeout 5s command-timeout 10s content-timeout 2m\nlisten on 127.0.0.1 filter rspamd\n');
  const r = c.filters?.get('rspamd');
  assert.deepEqual(r && { ...r, pos: undefined }, { kind: 'milter', name: 'rspamd', pos: undefined, socket: 'inet:127.0.0.1:11332', defaultAction: 'tempfail', connectTimeoutMs: 30_000, commandTimeoutMs: 30_000, contentTimeoutMs: 300_000 });
  const d = c.filters?.get('dkim');
  assert.equal(d?.kind === 'milter' && d.defaultAction, 'accept');
  assert.equal(d?.kind === 'milter' && d.contentTimeoutMs, 120_000);
  assert.equal(c.listeners[0]?.filter, 'rspamd');
});

test('proc-exec, chains and built-in filters', () => {
  const c = ok(
    'table bad { 192.0.2.0/24 }\n' +
      'filter "rspamd" proc-exec "filter-rspamd" user _rspamd timeout 30s\n' +
      'filter nordns phase connect match !rdns disconnect "550 no rDNS"\n' +
      'filter badsrc phase connect match src <bad> reject "554 go away"\n' +
      'filter spamhelo phase helo match helo regex <bad> junk\n' +
      'filter rw phase mail-from match auth rewrite "user@example.org"\n' +
      'filter all chain { nordns, badsrc, rspamd }\n' +
      'listen on 127.0.0.1 filter all\n',
  );
  const p = c.filters?.get('rspamd');
  assert.equal(p?.kind === 'proc' && p.command, 'filter-rspamd');
  assert.equal(p?.kind === 'proc' && p.user, '_rspamd');
  const n = c.filters?.get('nordns');
  assert.deepEqual(n?.kind === 'builtin' && [n.phase, n.conditions, n.decision], ['connect', [{ negate: true, what: 'rdns', regex: false }], { kind: 'disconnect', text: '550 no rDNS' }]);
  const h = c.filters?.get('spamhelo');
  assert.deepEqual(h?.kind === 'builtin' && h.conditions, [{ negate: false, what: 'helo', regex: true, table: 'bad' }]);
  assert.deepEqual(c.filters?.get('all')?.kind === 'chain' && (c.filters.get("all") as unknown as { members: string[] }).members, ['nordns', 'badsrc', 'rspamd']);
});

test('errors have positions', () => {
  assert.deepEqual(errors('listen on 127.0.0.1 filter nope\n'), ['smtpd.conf:1:1: listen … filter: no filter named "nope"']);
  assert.deepEqual(errors('filter c chain { a, c }\nfilter a phase connect match rdns bypass\n'), ['smtpd.conf:1:8: filter chain "c" contains itself']);
  assert.deepEqual(errors('filter c chain { a, b }\nfilter a phase connect match rdns bypass\n'), ['smtpd.conf:1:8: filter chain "c": no filter named "b"']);
  assert.match(errors('filter m milter "tcp:1.2.3.4"\n')[0] ?? '', /^smtpd\.conf:1:17: invalid milter address "tcp:1\.2\.3\.4"/);
  assert.match(errors('filter m milter "inet:127.0.0.1:1" default-action maybe\n')[0] ?? '', /^smtpd\.conf:1:51: unknown default action "maybe"/);
  assert.match(errors('filter m phase conect match rdns junk\n')[0] ?? '', /^smtpd\.conf:1:16: unknown filter phase "conect"; did you mean "connect"\?/);
  assert.match(errors('filter m phase connect match mail-from <t> junk\ntable t { a@b }\n')[0] ?? '', /^smtpd\.conf:1:30: "mail-from" is not known yet at phase connect/);
  assert.match(errors('filter m phase helo match helo { x } reject "hello"\n')[0] ?? '', /^smtpd\.conf:1:45: "reject" needs a 4xx or 5xx reply/);
  assert.match(errors('filter m phase rcpt-to match rcpt-to { x@y } rewrite "z@y"\n')[0] ?? '', /"rewrite" works at phases helo, ehlo and mail-from/);
  assert.match(errors('filter a phase connect match rdns junk\nfilter a phase connect match rdns junk\n')[0] ?? '', /^smtpd\.conf:2:8: filter "a" is already defined at line 1/);
});

test('mail-authentication results at phase commit: conditions, quarantine and tag', () => {
  const c = ok(
    'filter a phase commit match dmarc fail !dkim { pass, neutral } quarantine\n' +
      'filter b phase commit match arc fail tag "X-Auth-Warning: ARC chain broken"\n' +
      'filter c phase commit match spf softfail junk\n',
  );
  const a = c.filters?.get('a');
  assert.deepEqual(a?.kind === 'builtin' && [a.conditions, a.decision], [
    [
      { negate: false, what: 'dmarc', regex: false, results: ['fail'] },
      { negate: true, what: 'dkim', regex: false, results: ['pass', 'neutral'] },
    ],
    { kind: 'quarantine' },
  ]);
  const b = c.filters?.get('b');
  assert.deepEqual(b?.kind === 'builtin' && b.decision, { kind: 'tag', name: 'X-Auth-Warning', value: 'ARC chain broken' });
  assert.match(errors('filter m phase rcpt-to match dkim pass junk\n')[0] ?? '', /^smtpd\.conf:1:30: "dkim" is not known yet at phase rcpt-to \(mail authentication results exist at phase commit\)/);
  assert.match(errors('filter m phase commit match dmarc failed junk\n')[0] ?? '', /^smtpd\.conf:1:35: unknown dmarc result "failed"; did you mean "fail"\?/);
  assert.match(errors('filter m phase mail-from match auth quarantine\n')[0] ?? '', /"quarantine" works at phase commit only/);
  assert.match(errors('filter m phase commit match spf fail tag "no colon"\n')[0] ?? '', /"tag" needs one header field "Name: value" on one line/);
});
