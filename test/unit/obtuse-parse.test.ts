/*
 * The Obtuse smtpd rules file: every rule form parses to what it means,
 * and every bad line is reported as FILE:LINE with the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MESSAGE, formatObtuseDiagnostic, parseObtuseRules } from '../../src/config/obtuse/parse.js';
import { ROOT, rules } from './obtuse-helpers.js';

test('the seed-001 style file parses: actions in order, lists, message', () => {
  const file = join(ROOT, 'test/fixtures/obtuse/smtpd_check_rules');
  const r = parseObtuseRules(readFileSync(file, 'utf8'), file);
  assert.ok(r.ok, r.ok ? '' : r.diagnostics.map(formatObtuseDiagnostic).join('\n'));
  assert.deepEqual(
    r.rules.rules.map((x) => [x.pos.line, x.action]),
    [
      [9, 'deny'],
      [12, 'allow'],
      [15, 'allow'],
      [18, 'allow'],
      [21, 'noto_delay'],
    ],
  );
  const deny = r.rules.rules[0];
  assert.equal(deny?.source.items.length, 2);
  assert.deepEqual(deny?.message, { code: 550, enhanced: '5.7.1', text: 'Mail from %I refused; your network is a known source of spam' });
  assert.equal(r.rules.rules[3]?.to.items.length, 3);
  assert.ok(Object.isFrozen(r.rules.rules));
});

test('the loopback variant for end-to-end tests parses too', () => {
  const file = join(ROOT, 'test/fixtures/obtuse/smtpd_check_rules.loopback');
  const r = parseObtuseRules(readFileSync(file, 'utf8'), file);
  assert.ok(r.ok);
  assert.equal(r.rules.rules.length, 5);
});

test('every action is accepted', () => {
  const r = rules(['allow:ALL:ALL:ALL', 'deny:ALL:ALL:ALL', 'noto:ALL:ALL:ALL', 'deny_delay:ALL:ALL:ALL', 'noto_delay:ALL:ALL:ALL', 'debug:ALL:ALL:ALL'].join('\n'));
  assert.deepEqual(
    r.rules.map((x) => x.action),
    ['allow', 'deny', 'noto', 'deny_delay', 'noto_delay', 'debug'],
  );
});

test('comments, blank lines, CRLF, a comment in the message field', () => {
  const r = rules('# comment\r\n\r\n   \r\n  # indented comment\r\nallow:ALL:ALL:ALL:# why we allow: everyone\r\nnoto:ALL:ALL:ALL:550 no:# trailing comment\r\n');
  assert.equal(r.rules.length, 2);
  assert.equal(r.rules[0]?.message, undefined);
  assert.equal(r.rules[0]?.pos.line, 5);
  assert.equal(r.rules[1]?.message?.text, 'no');
});

test('source patterns: addresses, networks, globs, specials, NS=, RBL., ident', () => {
  const r = rules('allow:10.1.2.3 10.0.0.0/8,0/0 192.168.20.* *.example.com ALL KNOWN UNKNOWN NS=ns.example.net RBL.dnsbl.example root@10.0.0.0/8 KNOWN@ALL [2001:db8::]/32 [::1]:ALL:ALL');
  const kinds = r.rules[0]?.source.items.map((p) => (p.kind === 'ident' ? `ident(${p.user.kind},${p.host.kind})` : p.kind));
  assert.deepEqual(kinds, ['net', 'net', 'net', 'glob', 'glob', 'all', 'known', 'unknown', 'ns', 'rbl', 'ident(glob,net)', 'ident(known,all)', 'net', 'net']);
  const nets = r.rules[0]?.source.items.filter((p) => p.kind === 'net').map((p) => (p.kind === 'net' ? `${p.addr.toString()}/${p.bits}` : ''));
  assert.deepEqual(nets, ['10.1.2.3/32', '10.0.0.0/8', '0.0.0.0/0', '2001:db8::/32', '::1/128']);
});

test('address patterns: user@host globs, ALL, USER, NS= on either side', () => {
  const r = rules('allow:ALL:ALL *@example.com USER@example.com *spam* NS=ns.example.net *@NS=192.0.2.0/24 ALL@*.org:ALL');
  const kinds = r.rules[0]?.from.items.map((p) => (p.kind === 'mailbox' ? `${p.local.kind}@${p.domain.kind}` : p.kind));
  assert.deepEqual(kinds, ['all', 'glob@glob', 'user@glob', 'glob', 'ns', 'glob@ns', 'all@glob']);
});

test('EXCEPT lists nest; separators are spaces, tabs and commas; EXCEPT is case-insensitive', () => {
  const r = rules('allow:ALL EXCEPT 10.0.0.0/8,\tfoo.com except 10.1.0.0/16:ALL:ALL');
  const src = r.rules[0]?.source;
  assert.equal(src?.items.length, 1);
  assert.equal(src?.except?.items.length, 2);
  assert.equal(src?.except?.except?.items.length, 1);
  assert.equal(src?.except?.except?.except, undefined);
});

test('messages: code, optional enhanced code, %-variables checked at load', () => {
  const r = rules(['noto:ALL:ALL:ALL:551 Sorry %H (%I), I do not relay to %T', 'deny:ALL:ALL:ALL:554 5.7.0 go away %U%C %%', 'noto:ALL:ALL:ALL:450 try later', 'noto:ALL:ALL:ALL'].join('\n'));
  assert.deepEqual(r.rules[0]?.message, { code: 551, enhanced: '5.7.1', text: 'Sorry %H (%I), I do not relay to %T' });
  assert.deepEqual(r.rules[1]?.message, { code: 554, enhanced: '5.7.0', text: 'go away %U%C %%' });
  assert.deepEqual(r.rules[2]?.message, { code: 450, enhanced: '4.7.1', text: 'try later' });
  assert.equal(r.rules[3]?.message, undefined);
  assert.equal(DEFAULT_MESSAGE.text, 'Mail from %F to %T prohibited from your location (%U@%H ip=%I)');
});

test('bad lines: every one reported as FILE:LINE with the reason', () => {
  const file = join(ROOT, 'test/fixtures/obtuse/bad_rules');
  const r = parseObtuseRules(readFileSync(file, 'utf8'), 'bad_rules');
  assert.equal(r.ok, false);
  assert.deepEqual(r.diagnostics.map(formatObtuseDiagnostic), [
    'bad_rules:3: unknown action "permit" (expected allow, deny, noto, deny_delay, noto_delay or debug)',
    'bad_rules:4: invalid network "10.0.0.0/33": the prefix length must be 0–32',
    'bad_rules:5: invalid address "300.1.1.1"',
    'bad_rules:6: a rule needs four fields, action:SourceList:FromList:ToList (found 3)',
    'bad_rules:7: empty FromList (write ALL to match everything)',
    'bad_rules:8: the message must start with a three-digit SMTP code, e.g. "550 Relaying denied"',
    'bad_rules:9: unknown variable "%X" in the message (use %F %T %H %I %U, %C for ":" or %% for "%")',
    'bad_rules:10: text after the message (a ":" ends the message; write %C for a colon)',
    'bad_rules:11: SourceList: nothing after EXCEPT',
  ]);
});

test('more mistakes: positions, refusal codes, allow with a message, EXCEPT first', () => {
  const cases: [string, string][] = [
    ['noto:ALL:ALL:ALL:250 fine', 'r:1:18: message code 250 is not a refusal (use 4xx or 5xx)'],
    ['noto:ALL:ALL:ALL:550 4.7.1 mixed', 'r:1:18: enhanced status code 4.7.1 does not agree with reply code 550'],
    ['allow:ALL:ALL:ALL:550 why', 'r:1:19: an "allow" rule sends no reply, so it takes no message'],
    ['deny:EXCEPT 10.0.0.1:ALL:ALL', 'r:1:6: SourceList: EXCEPT needs patterns before it'],
    ['deny:ALL:@example.com:ALL', 'r:1:10: bad address pattern "@example.com": nothing before "@" (write *@example.com)'],
    ['deny:ALL:ALL:NS=', 'r:1:17: NS= needs a pattern (a name server name, address, network, KNOWN or UNKNOWN)'],
    ['deny:[2001:db8::/129]:ALL:ALL', 'r:1:6: invalid network "[2001:db8::/129]": the prefix length must be 0–128'],
    ['deny:RBL.:ALL:ALL', 'r:1:6: bad DNS list zone in "RBL." (expected RBL.zone.example)'],
    ['noto:ALL:ALL:ALL:', 'r:1:18: empty message field (remove the trailing ":" or write "550 text")'],
    ['deny:192.168.1.:ALL:ALL', 'r:1:6: invalid address "192.168.1." (write a network as a.b.c.d/bits, e.g. 192.168.1.0/24)'],
  ];
  for (const [line, want] of cases) {
    const r = parseObtuseRules(line, 'r');
    assert.equal(r.ok, false, line);
    const d = r.diagnostics[0];
    assert.equal(d ? `${d.pos.file}:${d.pos.line}:${d.pos.col}: ${d.message}` : '', want);
  }
});
