/*
 * The rules file at RCPT: which rule decides for a client, a sender and a
 * recipient, and the verdict it turns into (noto refuses the recipient,
 * deny closes the session, the *_delay actions wait, variables are filled
 * in and cleaned).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { obtuseRulesPhase, type ObtuseRulesOptions } from '../../src/policy/obtuse/phase.js';
import { parseObtuseRules } from '../../src/config/obtuse/parse.js';
import type { SessionFacts } from '../../src/policy/policy.js';
import { ROOT, facts, fakeDns, mbox, rules, tx } from './obtuse-helpers.js';

type Extra = Omit<ObtuseRulesOptions, 'rules'>;

/** "allow" / "noto 550 text" / "deny 550 text" / "tempfail" for one RCPT. */
async function decide(text: string, s: SessionFacts, from: string, to: string, extra: Extra = {}): Promise<string> {
  const phase = obtuseRulesPhase({ rules: rules(text), ...extra });
  const v = await phase.rcpt(s, tx(from), mbox(to));
  if (v.kind === 'pass') return 'allow';
  const what = v.reply.code === 451 ? 'tempfail' : v.disconnect ? 'deny' : 'noto';
  return `${what} ${v.reply.code} ${v.reply.lines.join(' ')}`.trim();
}

/** Does the source pattern list match this client? */
async function src(list: string, ip: string, rdns?: string, extra: Extra = {}): Promise<boolean> {
  return (await decide(`noto:${list}:ALL:ALL:550 x`, facts(ip, rdns), 'a@b.example', 'c@d.example', extra)) !== 'allow';
}

/** Does the address pattern list match this sender? */
async function from(list: string, sender: string, extra: Extra = {}): Promise<boolean> {
  return (await decide(`noto:ALL:${list}:ALL:550 x`, facts('192.0.2.1'), sender, 'c@d.example', extra)) !== 'allow';
}

test('source: addresses, networks, globs on the address text, ALL', async () => {
  assert.equal(await src('10.1.2.3', '10.1.2.3'), true);
  assert.equal(await src('10.1.2.3', '10.1.2.4'), false);
  assert.equal(await src('10.0.0.0/8', '10.200.1.1'), true);
  assert.equal(await src('10.0.0.0/8', '11.0.0.1'), false);
  assert.equal(await src('192.168.20.*', '192.168.20.77'), true);
  assert.equal(await src('192.168.20.*', '192.168.21.77'), false);
  assert.equal(await src('0/0', '203.0.113.5'), true);
  assert.equal(await src('ALL', '203.0.113.5'), true);
  assert.equal(await src('10.0.0.0/8', '::ffff:10.0.0.1'), true, 'IPv4-mapped IPv6 is IPv4');
  assert.equal(await src('[2001:db8::]/32', '2001:db8:1::5'), true);
  assert.equal(await src('[2001:db8::/32]', '2001:db9::5'), false);
  assert.equal(await src('10.0.0.0/8', '2001:db8::5'), false);
});

test('source: host-name globs use the forward-confirmed name; KNOWN and UNKNOWN', async () => {
  assert.equal(await src('*.example.com', '192.0.2.1', 'mx1.example.com'), true);
  assert.equal(await src('*.example.com', '192.0.2.1', 'mx1.EXAMPLE.net'), false);
  assert.equal(await src('*.example.com', '192.0.2.1'), false, 'no name, no match');
  assert.equal(await src('MX1.Example.COM', '192.0.2.1', 'mx1.example.com'), true, 'case is ignored');
  assert.equal(await src('KNOWN', '192.0.2.1', 'mx1.example.com'), true);
  assert.equal(await src('KNOWN', '192.0.2.1'), false);
  assert.equal(await src('UNKNOWN', '192.0.2.1'), true);
  assert.equal(await src('UNKNOWN', '192.0.2.1', 'mx1.example.com'), false);
  assert.equal(await src('UNKNOWN', '192.0.2.1', '10.9.9.9'), true, 'a PTR name that is an address counts as no name');
  assert.equal(await src('KNOWN', '192.0.2.1', '10.9.9.9'), false);
});

test('EXCEPT: ALL EXCEPT 10.0.0.0/8 foo.com, and nested exceptions', async () => {
  const list = 'ALL EXCEPT 10.0.0.0/8 foo.com';
  assert.equal(await src(list, '192.0.2.1'), true);
  assert.equal(await src(list, '10.1.1.1'), false);
  assert.equal(await src(list, '192.0.2.1', 'foo.com'), false);
  assert.equal(await src(list, '192.0.2.1', 'bar.foo.com'), true, 'a glob without "*" is the exact name');
  const nested = 'ALL EXCEPT 10.0.0.0/8 EXCEPT 10.1.0.0/16';
  assert.equal(await src(nested, '10.2.0.1'), false);
  assert.equal(await src(nested, '10.1.0.1'), true, 'the exception to the exception matches again');
  assert.equal(await from('*@example.com EXCEPT boss@example.com', 'clerk@example.com'), true);
  assert.equal(await from('*@example.com EXCEPT boss@example.com', 'BOSS@example.com'), false);
});

test('addresses: user@host globs, globs over the whole address, ALL, the null sender, <postmaster>', async () => {
  assert.equal(await from('*@example.com', 'someone@example.com'), true);
  assert.equal(await from('*@example.com', 'someone@sub.example.com'), false);
  assert.equal(await from('*@*.example.com', 'someone@sub.example.com'), true);
  assert.equal(await from('sales*@example.com', 'Sales-Team@Example.com'), true);
  assert.equal(await from('*spam*', 'bigspammer@example.org'), true);
  assert.equal(await from('ALL@example.org', 'x@example.org'), true);
  assert.equal(await from('ALL', ''), true, 'ALL matches the null sender');
  assert.equal(await from('*@*', ''), false, 'an "@" pattern needs an "@" in the address');
  assert.equal(await from('*', ''), true, 'a "*" glob matches the empty null sender');
  const toPostmaster = await decide('noto:ALL:ALL:*@*:550 x', facts('192.0.2.1'), 'a@b.example', 'postmaster');
  assert.equal(toPostmaster, 'allow', '<postmaster> has no "@"');
  assert.equal(await decide('noto:ALL:ALL:postmaster:550 x', facts('192.0.2.1'), 'a@b.example', 'postmaster'), 'noto 550 x');
});

test('ident: user@host sources and USER@host addresses, with an injected ident lookup', async () => {
  let asked = 0;
  const ident = async (): Promise<string | undefined> => {
    asked++;
    return 'alice';
  };
  assert.equal(await src('alice@10.0.0.0/8', '10.0.0.5', undefined, { ident }), true);
  assert.equal(await src('bob@10.0.0.0/8', '10.0.0.5', undefined, { ident }), false);
  assert.equal(await src('KNOWN@ALL', '192.0.2.1', undefined, { ident }), true);
  assert.equal(await src('KNOWN@ALL', '192.0.2.1'), false, 'no ident lookup: no user is known');
  assert.equal(await src('ALL@10.0.0.0/8', '10.0.0.5'), true, 'ALL@host matches without an ident user');
  assert.equal(await from('USER@example.com', 'alice@example.com', { ident }), true);
  assert.equal(await from('USER@example.com', 'mallory@example.com', { ident }), false);
  assert.equal(await from('USER@example.com', 'alice@example.com'), false);
  asked = 0;
  await decide('allow:10.0.0.0/8:ALL:ALL\nnoto:alice@ALL:ALL:ALL:550 x', facts('10.0.0.5'), 'a@b.example', 'c@d.example', { ident });
  assert.equal(asked, 0, 'ident is asked only when a rule needs it');
  await decide('noto:x@ALL y@ALL:ALL:ALL:550 %U %U', facts('192.0.2.1'), 'a@b.example', 'c@d.example', { ident });
  assert.equal(asked, 1, 'and at most once per recipient');
});

test('NS=: the name servers (and MX hosts) of the sender domain, by name, address, KNOWN/UNKNOWN', async () => {
  const dns = fakeDns({
    servers: { 'spammy.example': ['ns1.bulk-host.example', 'mx.bulk-host.example'], 'good.example': ['ns.good.example'] },
    addresses: { 'ns1.bulk-host.example': ['198.51.100.7'], 'ns.good.example': ['203.0.113.53'], 'good.example': ['203.0.113.80'] },
  });
  const opts = { dns };
  assert.equal(await from('NS=*.bulk-host.example', 'x@spammy.example', opts), true);
  assert.equal(await from('NS=*.bulk-host.example', 'x@good.example', opts), false);
  assert.equal(await from('*@NS=198.51.100.0/24', 'x@spammy.example', opts), true);
  assert.equal(await from('*@NS=198.51.100.*', 'x@spammy.example', opts), true);
  assert.equal(await from('NS=KNOWN', 'x@good.example', opts), true);
  assert.equal(await from('NS=UNKNOWN', 'x@nowhere.invalid', opts), true);
  // A name that does not exist under an existing domain: labels are dropped, which makes it UNKNOWN.
  assert.equal(await from('NS=UNKNOWN', 'x@made-up.spammy.example', opts), true);
  assert.equal(await from('NS=*.bulk-host.example', 'x@made-up.spammy.example', opts), true, 'the parent domain’s servers count');
  assert.ok(!dns.asked.includes('servers example'), 'never asks about a top-level domain');
});

test('NS= in a SourceList: the client name, else its reverse zone; RBL.zone', async () => {
  const dns = fakeDns({
    servers: { 'dialup.isp.example': ['ns.isp.example'], '2.0.192.in-addr.arpa': ['ns.isp.example'] },
    addresses: { 'ns.isp.example': ['198.51.100.53'], '1.2.0.192.dnsbl.example': ['127.0.0.2'] },
  });
  assert.equal(await src('NS=ns.isp.example', '192.0.2.9', 'dialup.isp.example', { dns }), true);
  assert.equal(await src('NS=198.51.100.53', '192.0.2.1', undefined, { dns }), true, 'reverse zone 1.2.0.192.in-addr.arpa → 2.0.192.in-addr.arpa');
  assert.equal(await src('RBL.dnsbl.example', '192.0.2.1', undefined, { dns }), true);
  assert.equal(await src('RBL.dnsbl.example', '192.0.2.2', undefined, { dns }), false);
});

test('a DNS failure is a 451 temporary failure, never "no match"', async () => {
  const dns = fakeDns({ failing: ['broken.example'] });
  const r = await decide('noto:ALL:NS=ns.evil.example:ALL:550 x\nallow:ALL:ALL:ALL', facts('192.0.2.1'), 'x@broken.example', 'c@d.example', { dns });
  assert.equal(r, 'tempfail 451 Temporary failure, please try again later');
});

test('NS= and RBL. patterns without a resolver are refused when the phase is built', () => {
  assert.throws(() => obtuseRulesPhase({ rules: rules('allow:ALL:ALL:ALL\nnoto:RBL.x.example:ALL:ALL') }), /need a DNS resolver \(rules:2\)/);
});

test('first match wins', async () => {
  const text = 'allow:10.0.0.0/8:ALL:ALL\ndeny:ALL:ALL:ALL:550 no';
  assert.equal(await decide(text, facts('10.0.0.1'), 'a@b.example', 'c@d.example'), 'allow');
  assert.equal(await decide(text, facts('192.0.2.1'), 'a@b.example', 'c@d.example'), 'deny 550 no');
  const reversed = 'deny:ALL:ALL:ALL:550 no\nallow:10.0.0.0/8:ALL:ALL';
  assert.equal(await decide(reversed, facts('10.0.0.1'), 'a@b.example', 'c@d.example'), 'deny 550 no');
});

test('all three lists must match', async () => {
  const text = 'noto:10.0.0.0/8:*@example.com:*@example.org:550 x';
  assert.equal(await decide(text, facts('10.0.0.1'), 'a@example.com', 'b@example.org'), 'noto 550 x');
  assert.equal(await decide(text, facts('10.0.0.1'), 'a@example.net', 'b@example.org'), 'allow');
  assert.equal(await decide(text, facts('10.0.0.1'), 'a@example.com', 'b@example.net'), 'allow');
  assert.equal(await decide(text, facts('11.0.0.1'), 'a@example.com', 'b@example.org'), 'allow');
});

test('verdicts: noto goes on, deny closes, the *_delay actions wait (60 s by default, configurable, 0 = none)', async () => {
  const text = 'noto:10.0.0.1:ALL:ALL:550 a\ndeny:10.0.0.2:ALL:ALL:550 b\nnoto_delay:10.0.0.3:ALL:ALL:550 c\ndeny_delay:10.0.0.4:ALL:ALL:550 d';
  const run = async (ip: string, delays?: { notoMs?: number; denyMs?: number }) =>
    obtuseRulesPhase({ rules: rules(text), ...(delays ? { delays } : {}) }).rcpt(facts(ip), tx('a@b.example'), mbox('c@d.example'));
  const strip = (v: Awaited<ReturnType<typeof run>>) => (v.kind === 'reject' ? { code: v.reply.code, disconnect: v.disconnect, delayMs: v.delayMs } : v);
  assert.deepEqual(strip(await run('10.0.0.1')), { code: 550, disconnect: undefined, delayMs: undefined });
  assert.deepEqual(strip(await run('10.0.0.2')), { code: 550, disconnect: true, delayMs: undefined });
  assert.deepEqual(strip(await run('10.0.0.3')), { code: 550, disconnect: undefined, delayMs: 60_000 });
  assert.deepEqual(strip(await run('10.0.0.4')), { code: 550, disconnect: true, delayMs: 60_000 });
  assert.deepEqual(strip(await run('10.0.0.3', { notoMs: 5000 })), { code: 550, disconnect: undefined, delayMs: 5000 });
  assert.deepEqual(strip(await run('10.0.0.4', { denyMs: 0 })), { code: 550, disconnect: true, delayMs: undefined });
  assert.throws(() => obtuseRulesPhase({ rules: rules(text), delays: { notoMs: -1 } }), RangeError);
});

test('variables %F %T %H %I %U %C %% are filled in; the default message', async () => {
  const ident = async () => 'joe';
  const s = facts('192.0.2.7', 'client.example.net');
  assert.equal(
    await decide('noto:ALL:ALL:ALL:551 %F to %T from %U@%H [%I]%C 100%% refused', s, 'a@b.example', 'c@d.example', { ident }),
    'noto 551 <a@b.example> to <c@d.example> from joe@client.example.net [192.0.2.7]: 100% refused',
  );
  assert.equal(await decide('noto:ALL:ALL:ALL', facts('192.0.2.7'), '', 'c@d.example'), 'noto 550 Mail from <> to <c@d.example> prohibited from your location (UNKNOWN@UNKNOWN ip=192.0.2.7)');
});

test('values are cleaned: an ident answer cannot split the reply', async () => {
  const ident = async () => 'evil\r\n250 OK';
  const phase = obtuseRulesPhase({ rules: rules('noto:ALL:ALL:ALL:550 user %U'), ident });
  const v = await phase.rcpt(facts('192.0.2.7'), tx('a@b.example'), mbox('c@d.example'));
  assert.equal(v.kind, 'reject');
  if (v.kind !== 'reject') return;
  assert.deepEqual(v.reply.lines, ['user evil  250 OK']);
  assert.equal(v.reply.enhanced, '5.7.1');
});

test('no rule matches: allow by default (as Obtuse), or noto / deny when configured', async () => {
  const text = 'noto:10.0.0.0/8:ALL:ALL:550 x';
  assert.equal(await decide(text, facts('192.0.2.1'), 'a@b.example', 'c@d.example'), 'allow');
  assert.match(await decide(text, facts('192.0.2.1'), 'a@b.example', 'c@d.example', { noMatch: 'noto' }), /^noto 550 Mail from/);
  assert.match(await decide(text, facts('192.0.2.1'), 'a@b.example', 'c@d.example', { noMatch: 'deny' }), /^deny 550 /);
});

test('explain(): the deciding rule with FILE:LINE, and debug rules on the way', async () => {
  const phase = obtuseRulesPhase({ rules: rules('debug:ALL:ALL:ALL\nallow:10.0.0.0/8:ALL:ALL\nnoto:ALL:ALL:ALL:550 relaying denied', 'check_rules') });
  const a = await phase.explain(facts('10.0.0.1'), tx('a@b.example'), mbox('c@d.example'));
  assert.equal(a.outcome, 'allow');
  assert.equal(a.why, 'check_rules:2: allow:10.0.0.0/8:ALL:ALL');
  assert.deepEqual(a.debug.map((r) => r.pos.line), [1]);
  const n = await phase.explain(facts('192.0.2.1'), tx('a@b.example'), mbox('c@d.example'));
  assert.equal(n.outcome, 'noto');
  assert.equal(n.rule?.pos.line, 3);
  assert.equal(n.verdict.kind === 'reject' ? n.verdict.reason : '', 'check_rules:3: noto a@b.example -> c@d.example from 192.0.2.1');
});

test('the seed-001 style file decides as its comments say', async () => {
  const file = join(ROOT, 'test/fixtures/obtuse/smtpd_check_rules');
  const r = parseObtuseRules(readFileSync(file, 'utf8'), 'smtpd_check_rules');
  assert.ok(r.ok);
  const phase = obtuseRulesPhase({ rules: r.rules });
  const outcome = async (ip: string, rdns: string | undefined, to: string) => {
    const e = await phase.explain(facts(ip, rdns), tx('someone@sender.example'), mbox(to));
    const v = e.verdict;
    return v.kind === 'pass' ? `${e.outcome} line ${e.rule?.pos.line}` : `${e.outcome} ${v.reply.code} ${v.reply.lines.join(' ')}${v.delayMs ? ` after ${v.delayMs} ms` : ''}`;
  };
  assert.equal(await outcome('10.0.0.9', undefined, 'anyone@elsewhere.example'), 'allow line 12');
  assert.equal(await outcome('10.3.4.5', undefined, 'anyone@elsewhere.example'), 'allow line 15');
  assert.equal(await outcome('203.0.113.5', 'mx.friend.example', 'user@example.com'), 'allow line 18');
  assert.equal(await outcome('203.0.113.5', 'mx.friend.example', 'user@mail.example.com'), 'allow line 18');
  assert.equal(await outcome('203.0.113.5', 'mx.friend.example', 'postmaster'), 'allow line 18');
  assert.equal(await outcome('203.0.113.5', 'mx.friend.example', 'victim@elsewhere.example'), 'noto 550 Relaying to <victim@elsewhere.example> denied to mx.friend.example (203.0.113.5) after 60000 ms');
  assert.equal(await outcome('192.0.2.66', undefined, 'user@example.com'), 'deny 550 Mail from 192.0.2.66 refused; your network is a known source of spam');
  assert.equal(await outcome('198.51.100.1', 'relay.spam-provider.example', 'user@example.com'), 'deny 550 Mail from 198.51.100.1 refused; your network is a known source of spam');
});
