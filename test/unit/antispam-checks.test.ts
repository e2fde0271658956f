/*
 * The checks at the door as pure parts: bounded regular expressions
 * (config/bounded-regex.ts), header checks on a header section
 * (antispam/header-checks/), greylisting with a clock passed in
 * (antispam/greylist/), fixed-window rate counters, HELO syntax and mail
 * variables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileBounded, foldCase } from '../../src/config/bounded-regex.js';
import { parseHeaderChecks } from '../../src/config/header-checks-file.js';
import { Diagnostics } from '../../src/config/diagnostics.js';
import { applyHeaderChecks } from '../../src/antispam/header-checks/apply.js';
import { HeaderCheckStream } from '../../src/antispam/header-checks/stream.js';
import { Greylist, clientNetwork } from '../../src/antispam/greylist/greylist.js';
import { FileGreylistStore } from '../../src/antispam/greylist/store-file.js';
import { MemoryRateCounters } from '../../src/antispam/ratelimit/counters.js';
import { heloSyntaxOk } from '../../src/antispam/verify/helo.js';
import { expandVariables } from '../../src/antispam/variables.js';
import { reversedIp } from '../../src/dns/dnsl.js';

function table(text: string) {
  const diags = new Diagnostics();
  const t = parseHeaderChecks(text, 'hc', diags);
  assert.deepEqual(diags.sorted(), []);
  return t.rules;
}

test('case-insensitive patterns are rewritten for the linear engine; others are guarded', () => {
  assert.equal(foldCase('^Rec[a-c]\\.x'), '^[rR][eE][cC][a-cA-C]\\.[xX]');
  assert.equal(foldCase('\\p{L}'), undefined);
  assert.equal(compileBounded('^Received:.*\\.domain\\.lan', 'i').linear, true);
  assert.equal(compileBounded('^(a+)+$', '').linear, true);
  assert.equal(compileBounded('^(a+)\\1$', 'i').linear, false);
});

test('a pathological pattern ends: linear ones fall back to the linear engine, guarded ones run out of budget', () => {
  const evil = `Subject: ${'a'.repeat(5000)}!`;
  const linear = table('/^Subject: (a+)+$/ REJECT\n');
  assert.deepEqual(applyHeaderChecks(linear, [evil]).verdict, { kind: 'none' });
  const guarded = table('/^Subject: (a|a)+(x)\\2$/ REJECT\n');
  const r = applyHeaderChecks(guarded, [`Subject: ${'a'.repeat(40)}!`]);
  assert.equal(r.verdict.kind, 'error');
});

test('header check actions: IGNORE, REPLACE, PREPEND, WARN, negation, and the first rule wins', () => {
  const rules = table(
    ['/^Received:.*\\.domain\\.lan/ IGNORE', '/^X-Old:/ REPLACE X-New: yes', '/^Subject:/ PREPEND X-Seen: subject', '/^X-Mailer: bulk/ WARN bulk mailer', '!/^(Subject|Received|X-|From|To):/ WARN odd header', '/^X-/ DUNNO'].join('\n'),
  );
  const r = applyHeaderChecks(rules, ['Received: from a.domain.lan\r\n\tby b', 'Received: from mx.example', 'X-Old: 1', 'Subject: hi', 'X-Mailer: BULK', 'Date: today']);
  assert.deepEqual(r.headers, ['Received: from mx.example', 'X-New: yes', 'X-Seen: subject', 'Subject: hi', 'X-Mailer: BULK', 'Date: today']);
  assert.deepEqual(r.warnings, ['hc:4: X-Mailer: BULK: bulk mailer', 'hc:5: Date: today: odd header']);
  assert.equal(r.changed, true);
});

test('REJECT, HOLD and DISCARD decide for the message', () => {
  for (const [action, kind] of [['REJECT', 'reject'], ['HOLD', 'hold'], ['DISCARD', 'discard']] as const) {
    const r = applyHeaderChecks(table(`/^Subject:.*casino/ ${action} no casino\n`), ['From: a', 'Subject: Best CASINO']);
    assert.deepEqual(r.verdict, { kind, text: 'no casino', header: 'Subject: Best CASINO', rule: 'hc:1' });
  }
});

test('REDIRECT keeps the header, does not end the checks, and the last one that matches wins', () => {
  const rules = table('/^X-Spam-Level: \\*{5}/ REDIRECT spamtrap@test.example\n/^Subject:.*casino/ REDIRECT casino@test.example\n/^X-Drop:/ IGNORE\n');
  const r = applyHeaderChecks(rules, ['X-Spam-Level: *****', 'Subject: casino', 'X-Drop: 1', 'To: a']);
  assert.deepEqual(r.redirect, { address: 'casino@test.example', rule: 'hc:2', header: 'Subject: casino' });
  assert.deepEqual(r.headers, ['X-Spam-Level: *****', 'Subject: casino', 'To: a']);
  assert.equal(r.verdict.kind, 'none');
  assert.equal(applyHeaderChecks(rules, ['Subject: hello']).redirect, undefined);
});

test('the header stream gives the same result whatever the chunks', () => {
  const rules = table('/^Received:.*\\.domain\\.lan/ IGNORE\n');
  const msg = Buffer.from('Received: from x.domain.lan\r\n by gw\r\nSubject: s\r\n\r\nbody line\r\nReceived: from y.domain.lan\r\n');
  const want = 'Subject: s\r\n\r\nbody line\r\nReceived: from y.domain.lan\r\n';
  for (let cut = 0; cut <= msg.length; cut++) {
    const s = new HeaderCheckStream(rules);
    const out = [...s.push(msg.subarray(0, cut)), ...s.push(msg.subarray(cut)), ...s.end()];
    assert.equal(Buffer.concat(out).toString(), want, `cut at ${cut}`);
  }
  const s = new HeaderCheckStream(rules);
  assert.equal(Buffer.concat([...s.push(Buffer.from('Received: from z.domain.lan\r\nX: 1\r\n')), ...s.end()]).toString(), 'X: 1\r\n');
});

test('greylisting: defer, too early, pass after the delay, known triplet, allowlisted network, forgotten after the retry window', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-grey-'));
  const g = new Greylist({ delayMs: 300_000, retryWindowMs: 4 * 3_600_000, lifetimeMs: 86_400_000, allowlistAfter: 2 }, new FileGreylistStore(join(dir, 'g.json')));
  const t0 = 1_000_000_000_000;
  assert.deepEqual(await g.check('192.0.2.7', 'a@x.example', 'r@y.example', t0), { kind: 'defer', waitMs: 300_000 });
  assert.deepEqual(await g.check('192.0.2.8', 'a@x.example', 'r@y.example', t0 + 60_000), { kind: 'defer', waitMs: 240_000 });
  assert.deepEqual(await g.check('192.0.2.9', 'A@X.example', 'r@y.example', t0 + 301_000), { kind: 'pass', why: 'retried' });
  assert.deepEqual(await g.check('192.0.2.7', 'a@x.example', 'r@y.example', t0 + 400_000), { kind: 'pass', why: 'known' });
  // A second triplet of the network passes: the network is allowlisted.
  await g.check('192.0.2.7', 'b@x.example', 'r@y.example', t0);
  assert.deepEqual(await g.check('192.0.2.7', 'b@x.example', 'r@y.example', t0 + 500_000), { kind: 'pass', why: 'retried' });
  assert.deepEqual(await g.check('192.0.2.200', 'new@z.example', 'r@y.example', t0 + 600_000), { kind: 'pass', why: 'allowlisted' });
  // Another network: a triplet not retried within the window starts again.
  await g.check('198.51.100.1', 'c@x.example', 'r@y.example', t0);
  assert.deepEqual(await g.check('198.51.100.1', 'c@x.example', 'r@y.example', t0 + 5 * 3_600_000), { kind: 'defer', waitMs: 300_000 });
  await g.store.close();
  // The state is on disk.
  const again = new Greylist({ delayMs: 300_000, retryWindowMs: 4 * 3_600_000, lifetimeMs: 86_400_000, allowlistAfter: 2 }, new FileGreylistStore(join(dir, 'g.json')));
  assert.deepEqual(await again.check('192.0.2.1', 'x@x.example', 'r@y.example', t0 + 700_000), { kind: 'pass', why: 'allowlisted' });
  assert.equal(clientNetwork('2001:db8:1:2:3::4'), '2001:db8:1:2::/64');
  assert.equal(clientNetwork('::ffff:192.0.2.9'), '192.0.2.0/24');
});

test('greylisting: a client that passes again is written back at most once an hour, not per message', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-grey-'));
  const store = new FileGreylistStore(join(dir, 'g.json'));
  const t0 = 1_000_000_000_000;
  await store.putClient('192.0.2.0/24', { passes: 5, last: t0 });
  const writes: string[] = [];
  const counted = Object.assign(Object.create(store) as FileGreylistStore, {
    putClient: (net: string, r: { passes: number; last: number }) => (writes.push(`client ${r.last - t0}`), store.putClient(net, r)),
    putTriplet: (key: string, r: { first: number; last: number; passed: boolean }) => (writes.push(`triplet ${r.last - t0}`), store.putTriplet(key, r)),
  });
  const g = new Greylist({ delayMs: 300_000, retryWindowMs: 4 * 3_600_000, lifetimeMs: 35 * 86_400_000, allowlistAfter: 5 }, counted);
  for (const dt of [1000, 2000, 60_000]) assert.deepEqual(await g.check('192.0.2.7', 'a@x.example', 'r@y.example', t0 + dt), { kind: 'pass', why: 'allowlisted' });
  assert.deepEqual(writes, []);
  assert.deepEqual(await g.check('192.0.2.7', 'a@x.example', 'r@y.example', t0 + 3_600_000), { kind: 'pass', why: 'allowlisted' });
  assert.deepEqual(writes, ['client 3600000']);
  await store.close();
});

test('a read-only greylist store (the dry run) reads the file and writes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-grey-'));
  const file = join(dir, 'g.json');
  const settings = { delayMs: 1000, retryWindowMs: 10_000, lifetimeMs: 100_000, allowlistAfter: 0 };
  const live = new Greylist(settings, new FileGreylistStore(file));
  await live.check('192.0.2.1', 'a@x.example', 'r@y.example', 0);
  await live.store.close();
  const before = readFileSync(file, 'utf8');
  const dry = new Greylist(settings, new FileGreylistStore(file, undefined, true));
  assert.deepEqual(await dry.check('192.0.2.1', 'a@x.example', 'r@y.example', 2000), { kind: 'pass', why: 'retried' });
  assert.equal((await dry.check('198.51.100.1', 'b@x.example', 'r@y.example', 2000)).kind, 'defer');
  await dry.store.close();
  assert.equal(readFileSync(file, 'utf8'), before);
});

test('rate counters count per key in fixed windows', () => {
  const c = new MemoryRateCounters();
  assert.equal(c.hit('k', 1000, 0), 1);
  assert.equal(c.hit('k', 1000, 500), 2);
  assert.equal(c.hit('other', 1000, 500), 1);
  assert.equal(c.hit('k', 1000, 1000), 1);
});

test('HELO syntax, DNS list keys and mail variables', () => {
  for (const ok of ['mail.example.org', 'MAIL.example.org.', '[192.0.2.1]', '[IPv6:2001:db8::1]']) assert.equal(heloSyntaxOk(ok), true, ok);
  for (const bad of ['localhost', 'bad_name.example', '192.0.2.1', '[999.1.1.1]', '-x.example', 'a..b', 'host.123']) assert.equal(heloSyntaxOk(bad), false, bad);
  assert.equal(reversedIp('192.0.2.5'), '5.2.0.192');
  assert.equal(reversedIp('::ffff:192.0.2.5'), '5.2.0.192');
  assert.equal(reversedIp('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2');
  assert.equal(expandVariables('client $CLIENT_ADDR (${CLIENT_HELO}) $UNKNOWN', { CLIENT_ADDR: '192.0.2.1', CLIENT_HELO: 'x\r\ny' }), 'client 192.0.2.1 (x??y) $UNKNOWN');
});
