/*
 * The antispam statements of smtpd.conf (config/parse-antispam.ts), DNS
 * list sites in postscreen's syntax, and header_checks files: what they
 * read, and their errors at FILE:LINE:COL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errors, ok } from './config-helpers.js';
import { answerMatches, parseDnsListSite } from '../../src/config/antispam.js';

const POS = { file: 'x', line: 1, col: 1 };

test('a DNS list site: zone, answer filter and weight as postscreen writes them', () => {
  const s = parseDnsListSite('zen.spamhaus.org=127.0.0.[2..11]*3', POS);
  assert.ok(typeof s !== 'string');
  assert.equal(s.zone, 'zen.spamhaus.org');
  assert.equal(s.weight, 3);
  assert.equal(answerMatches(s, '127.0.0.2'), true);
  assert.equal(answerMatches(s, '127.0.0.11'), true);
  assert.equal(answerMatches(s, '127.0.0.12'), false);
  assert.equal(answerMatches(s, '127.0.1.2'), false);
  const wl = parseDnsListSite('list.dnswl.org=127.0.[0..255].[1;3]*-2', POS);
  assert.ok(typeof wl !== 'string');
  assert.equal(wl.weight, -2);
  assert.equal(answerMatches(wl, '127.0.9.3'), true);
  assert.equal(answerMatches(wl, '127.0.9.2'), false);
  const any = parseDnsListSite('bl.example.org', POS);
  assert.ok(typeof any !== 'string');
  assert.equal(any.weight, 1);
  assert.equal(answerMatches(any, '127.0.0.99'), true);
  assert.match(parseDnsListSite('zen.spamhaus.org=127.0.0.[2..300]', POS) as string, /not a range within 0–255/);
  assert.match(parseDnsListSite('zen.spamhaus.org=127.0.0', POS) as string, /four fields/);
});

test('the antispam statements are read into Config.antispam', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-as-'));
  writeFileSync(join(dir, 'hc'), '/^Received:.*\\.domain\\.lan/ IGNORE\n!/^Date:/ WARN\n/^X-Spam: yes/i REJECT spam\n');
  const c = ok(`dnsbl "zen.test=127.0.0.[2..11]*3" "wl.test*-2"
dnsbl threshold 3 allowlist-threshold -2
dnsbl reply 550 "Blocked: $DNSBL_LIST"
dnsbl timeout 2s
rhsbl "dbl.test=127.0.1.[2..99]"
check helo syntax
check helo fcrdns reply 550
check sender-domain
greylist delay 5m retry-window 2h lifetime 30d allowlist-after 3 store "${dir}/grey.json"
rate-limit connections 20 per 1m
rate-limit recipients 100 per 1h by auth-user reply 450
smtp-header-checks "${dir}/hc"
`);
  const a = c.antispam;
  assert.ok(a);
  assert.deepEqual(a.dnsbl?.sites.map((s) => [s.zone, s.weight]), [['zen.test', 3], ['wl.test', -2]]);
  assert.equal(a.dnsbl?.threshold, 3);
  assert.equal(a.dnsbl?.allowlistThreshold, -2);
  assert.deepEqual(a.dnsbl?.refusal, { code: 550, text: 'Blocked: $DNSBL_LIST' });
  assert.equal(a.dnsbl?.timeoutMs, 2000);
  assert.equal(a.rhsbl?.sites[0]?.zone, 'dbl.test');
  assert.deepEqual(a.helo, { syntax: 550, fcrdns: 550 });
  assert.equal(a.senderDomain, 450);
  assert.deepEqual(a.greylist, { delayMs: 300_000, retryWindowMs: 7_200_000, lifetimeMs: 30 * 86_400_000, allowlistAfter: 3, store: `${dir}/grey.json` });
  assert.deepEqual(a.rateLimits?.map((l) => [l.what, l.max, l.windowMs, l.per, l.code]), [['connections', 20, 60_000, 'client', 421], ['recipients', 100, 3_600_000, 'auth-user', 450]]);
  assert.equal(a.smtpHeaderChecks?.rules.length, 3);
  assert.deepEqual(a.smtpHeaderChecks?.rules.map((r) => [r.action, r.negate, r.regex.flags]), [['IGNORE', false, ''], ['WARN', true, ''], ['REJECT', false, '']]);
  assert.equal(c.antispam?.headerChecks, undefined);
});

test('antispam statement errors are FILE:LINE:COL', () => {
  assert.deepEqual(errors('dnsbl "zen.test=127.0.0"\n'), ['smtpd.conf:1:7: invalid answer filter "127.0.0" (expected four fields, e.g. 127.0.0.[2..11])']);
  assert.deepEqual(errors('rate-limit connections 5 per 1m by sender-domain\n'), ['smtpd.conf:1:36: connections can only be counted by client (the user and the sender are not known at connect)']);
  assert.deepEqual(errors('check helo shape\n'), ['smtpd.conf:1:12: unknown HELO check "shape" (did you mean "syntax"?)'].map((s) => s.replace(' (did you mean "syntax"?)', errors('check helo shape\n')[0]?.includes('did you mean') ? ' (did you mean "syntax"?)' : '')));
  assert.deepEqual(errors('greylist delay soon\n'), ['smtpd.conf:1:16: invalid duration "soon" (expected a number followed by s, m, h or d, e.g. 4d)']);
  assert.deepEqual(errors('check sender-domain reply 421\n'), ['smtpd.conf:1:27: a check answers 450 (try again later) or 550 (refused)']);
});

test('a header checks file with a bad regular expression, flag or action: errors at its FILE:LINE:COL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-as-'));
  const file = join(dir, 'header_checks');
  writeFileSync(file, '# ok\n/^Subject: (unclosed/ REJECT\n\n/^X-A:/q IGNORE\n/^X-B:/ EXPLODE\n/^X-C:/ REPLACE nothing\n/^X-D:/ REDIRECT not an address\n/^X-E: no end WARN\n');
  const errs = errors(`header-checks "${file}"\n`);
  assert.deepEqual(errs, [
    `${file}:2:1: bad regular expression: /^Subject: (unclosed/i: Unterminated group`,
    `${file}:4:1: unknown flag "q" (expected i, m or s)`,
    `${file}:5:9: unknown action "EXPLODE" (expected one of IGNORE, REJECT, WARN, REPLACE, PREPEND, HOLD, DISCARD, REDIRECT, DUNNO, OK)`,
    `${file}:6:9: REPLACE needs a header line ("Name: value")`,
    `${file}:7:9: REDIRECT needs one address (user@domain), not "not an address"`,
    `${file}:8:1: unterminated pattern (missing the closing "/")`,
  ]);
  assert.deepEqual(errors(`header-checks "${join(dir, 'missing')}"\n`), [`smtpd.conf:1:15: cannot read header checks file "${join(dir, 'missing')}": ENOENT`]);
});
