/*
 * address.test.ts — MAIL FROM / RCPT TO path parsing (smtp/address.ts).
 *
 * Tables of arguments (the text after the verb) with the mailbox they must
 * parse into, or the exact reply code and enhanced code they must get.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatMailbox,
  mailboxKey,
  parseMailFromArg,
  parseRcptToArg,
  type Mailbox,
  type PathOptions,
  type PathResult,
} from '../../src/mail/address.js';

type Verb = 'MAIL' | 'RCPT';

interface Accept {
  readonly verb: Verb;
  readonly arg: string;
  readonly opts?: Partial<PathOptions>;
  /** Expected mailbox; null for <>. */
  readonly mailbox: Mailbox | null;
  readonly params?: string;
  readonly routed?: boolean;
}

interface Refuse {
  readonly verb: Verb;
  readonly arg: string;
  readonly opts?: Partial<PathOptions>;
  readonly code: number;
  readonly enhanced: string;
}

const LENIENT: PathOptions = { smtputf8: false, strict: false };

function run(verb: Verb, arg: string, opts?: Partial<PathOptions>): PathResult {
  const o = { ...LENIENT, ...opts };
  return verb === 'MAIL' ? parseMailFromArg(arg, o) : parseRcptToArg(arg, o);
}

function mb(local: string, domain: string, literal?: string, utf8 = false): Mailbox {
  return literal === undefined ? { local, domain, utf8 } : { local, domain, literal, utf8 };
}

const label63 = 'l'.repeat(63);
const domain191 = [label63, label63, label63].join('.');

const accepted: Accept[] = [
  // Underscores in a mailbox's domain are accepted, as Postfix does (issue 17; seed 002's user@our_domain.org).
  { verb: 'MAIL', arg: 'FROM:<user@our_domain.org>', mailbox: mb('user', 'our_domain.org') },
  { verb: 'RCPT', arg: 'TO:<a@b_c.d>', mailbox: mb('a', 'b_c.d') },
  // Plain forms.
  { verb: 'MAIL', arg: 'FROM:<a@b>', mailbox: mb('a', 'b') },
  { verb: 'MAIL', arg: 'from:<a@b>', mailbox: mb('a', 'b') },
  { verb: 'MAIL', arg: 'FrOm:<a@b>', mailbox: mb('a', 'b') },
  { verb: 'MAIL', arg: ' FROM:<a@b>', mailbox: mb('a', 'b') },
  { verb: 'MAIL', arg: 'FROM:<>', mailbox: null },
  { verb: 'MAIL', arg: 'FROM:<> SIZE=10', mailbox: null, params: 'SIZE=10' },
  { verb: 'MAIL', arg: 'FROM:<a@b> ', mailbox: mb('a', 'b'), params: '' },
  { verb: 'MAIL', arg: 'FROM:<a@b>  SIZE=10  BODY=8BITMIME ', mailbox: mb('a', 'b'), params: 'SIZE=10  BODY=8BITMIME' },
  { verb: 'MAIL', arg: 'FROM:<User.Name+tag@Example.COM>', mailbox: mb('User.Name+tag', 'example.com') },
  { verb: 'MAIL', arg: "FROM:<!#$%&'*+-/=?^_`{|}~@b>", mailbox: mb("!#$%&'*+-/=?^_`{|}~", 'b') },
  { verb: 'MAIL', arg: 'FROM:<a@b.c.>', mailbox: mb('a', 'b.c') },
  { verb: 'MAIL', arg: 'FROM:<a@my-host.example>', mailbox: mb('a', 'my-host.example') },
  { verb: 'MAIL', arg: 'FROM:<a@localhost>', mailbox: mb('a', 'localhost') },
  { verb: 'MAIL', arg: 'FROM:<a@123.example>', mailbox: mb('a', '123.example') },
  { verb: 'MAIL', arg: 'FROM:<a@xn--mnchen-3ya.de>', mailbox: mb('a', 'xn--mnchen-3ya.de') },
  { verb: 'MAIL', arg: 'FROM:<a%b@c>', mailbox: mb('a%b', 'c') },
  { verb: 'MAIL', arg: 'FROM:<a!b@c>', mailbox: mb('a!b', 'c') },
  // Quoted local parts.
  { verb: 'MAIL', arg: 'FROM:<"a@b"@c>', mailbox: mb('a@b', 'c') },
  { verb: 'MAIL', arg: 'FROM:<"a>b"@c>', mailbox: mb('a>b', 'c') },
  { verb: 'MAIL', arg: 'FROM:<"a b"@c>', mailbox: mb('a b', 'c') },
  { verb: 'MAIL', arg: 'FROM:<"a\\"b\\\\c"@d>', mailbox: mb('a"b\\c', 'd') },
  { verb: 'MAIL', arg: 'FROM:<"\\a"@d>', mailbox: mb('a', 'd') },
  { verb: 'MAIL', arg: 'FROM:<"a..b"@c>', mailbox: mb('a..b', 'c') },
  { verb: 'MAIL', arg: 'FROM:<"abc"@d>', mailbox: mb('abc', 'd') },
  { verb: 'MAIL', arg: 'FROM:<"a b"@c> SIZE=1', mailbox: mb('a b', 'c'), params: 'SIZE=1' },
  // Address literals.
  { verb: 'MAIL', arg: 'FROM:<a@[1.2.3.4]>', mailbox: mb('a', '[1.2.3.4]', '1.2.3.4') },
  { verb: 'MAIL', arg: 'FROM:<a@[001.002.003.004]>', mailbox: mb('a', '[1.2.3.4]', '1.2.3.4') },
  { verb: 'MAIL', arg: 'FROM:<a@[IPv6:2001:DB8:0:0:0:0:0:1]>', mailbox: mb('a', '[IPv6:2001:db8::1]', '2001:db8::1') },
  { verb: 'MAIL', arg: 'FROM:<a@[ipv6:::1]>', mailbox: mb('a', '[IPv6:::1]', '::1') },
  { verb: 'MAIL', arg: 'FROM:<a@[IPv6:::ffff:192.0.2.1]>', mailbox: mb('a', '[IPv6:::ffff:c000:201]', '::ffff:c000:201') },
  // Source routes are stripped.
  { verb: 'MAIL', arg: 'FROM:<@x,@y:a@b>', mailbox: mb('a', 'b'), routed: true },
  { verb: 'MAIL', arg: 'FROM:<@x.example:a@b> SIZE=1', mailbox: mb('a', 'b'), params: 'SIZE=1', routed: true },
  { verb: 'MAIL', arg: 'FROM:<@[192.0.2.1],@y:a@b>', mailbox: mb('a', 'b'), routed: true },
  // Lenient (non-strict) forms.
  { verb: 'MAIL', arg: 'FROM: <a@b>', mailbox: mb('a', 'b') },
  { verb: 'MAIL', arg: 'FROM:   <> SIZE=1', mailbox: null, params: 'SIZE=1' },
  { verb: 'MAIL', arg: 'FROM:a@b', mailbox: mb('a', 'b') },
  { verb: 'MAIL', arg: 'FROM: a@B.example SIZE=1', mailbox: mb('a', 'b.example'), params: 'SIZE=1' },
  { verb: 'MAIL', arg: 'FROM:"a b"@c SIZE=1', mailbox: mb('a b', 'c'), params: 'SIZE=1' },
  { verb: 'RCPT', arg: 'TO:postmaster', mailbox: mb('postmaster', '') },
  // Strict forms.
  { verb: 'MAIL', arg: 'FROM:<a@b> SIZE=1', opts: { strict: true }, mailbox: mb('a', 'b'), params: 'SIZE=1' },
  { verb: 'MAIL', arg: 'FROM:<>', opts: { strict: true }, mailbox: null },
  // Limits: local part 64 octets, path 256 octets.
  { verb: 'MAIL', arg: `FROM:<${'a'.repeat(64)}@b>`, mailbox: mb('a'.repeat(64), 'b') },
  { verb: 'MAIL', arg: `FROM:<${'a'.repeat(62)}@${domain191}>`, mailbox: mb('a'.repeat(62), domain191) },
  { verb: 'MAIL', arg: `FROM:<a@${label63}.b>`, mailbox: mb('a', `${label63}.b`) },
  // SMTPUTF8 (RFC 6531).
  { verb: 'MAIL', arg: 'FROM:<jö@münchen.de>', opts: { smtputf8: true }, mailbox: mb('jö', 'münchen.de', undefined, true) },
  { verb: 'MAIL', arg: 'FROM:<Jö@MÜNCHEN.de>', opts: { smtputf8: true }, mailbox: mb('Jö', 'münchen.de', undefined, true) },
  { verb: 'MAIL', arg: 'FROM:<"jö x"@b>', opts: { smtputf8: true }, mailbox: mb('jö x', 'b', undefined, true) },
  { verb: 'MAIL', arg: 'FROM:<用户@例子.广告>', opts: { smtputf8: true }, mailbox: mb('用户', '例子.广告', undefined, true) },
  {
    verb: 'MAIL',
    arg: 'FROM:<jö@b> SIZE=1 smtputf8',
    mailbox: mb('jö', 'b', undefined, true),
    params: 'SIZE=1 smtputf8',
  },
  { verb: 'RCPT', arg: 'TO:<δ@b>', opts: { smtputf8: true }, mailbox: mb('δ', 'b', undefined, true) },
  // RCPT.
  { verb: 'RCPT', arg: 'TO:<a@b>', mailbox: mb('a', 'b') },
  { verb: 'RCPT', arg: 'to:<a@b> NOTIFY=NEVER', mailbox: mb('a', 'b'), params: 'NOTIFY=NEVER' },
  { verb: 'RCPT', arg: 'TO:<postmaster>', mailbox: mb('postmaster', '') },
  { verb: 'RCPT', arg: 'TO:<PostMaster>', mailbox: mb('PostMaster', '') },
  { verb: 'RCPT', arg: 'TO:<postmaster> NOTIFY=NEVER', mailbox: mb('postmaster', ''), params: 'NOTIFY=NEVER' },
  { verb: 'RCPT', arg: 'TO:<postmaster@Example.org>', mailbox: mb('postmaster', 'example.org') },
  // nmap smtp-open-relay probe shapes: they parse into what the relay check sees.
  { verb: 'RCPT', arg: 'TO:<relaytest@nmap.scanme.org>', mailbox: mb('relaytest', 'nmap.scanme.org') },
  { verb: 'RCPT', arg: 'TO:<"to@dom"@[127.0.0.1]>', mailbox: mb('to@dom', '[127.0.0.1]', '127.0.0.1') },
  { verb: 'RCPT', arg: 'TO:<"to@dom"@srv.example>', mailbox: mb('to@dom', 'srv.example') },
  { verb: 'RCPT', arg: 'TO:<"to%dom"@[127.0.0.1]>', mailbox: mb('to%dom', '[127.0.0.1]', '127.0.0.1') },
  { verb: 'RCPT', arg: 'TO:<@[127.0.0.1]:to@dom>', mailbox: mb('to', 'dom'), routed: true },
  { verb: 'RCPT', arg: 'TO:<@srv.example:to@dom>', mailbox: mb('to', 'dom'), routed: true },
  { verb: 'RCPT', arg: 'TO:<dom!to@srv>', mailbox: mb('dom!to', 'srv') },
  { verb: 'RCPT', arg: 'TO:<dom!to@[127.0.0.1]>', mailbox: mb('dom!to', '[127.0.0.1]', '127.0.0.1') },
  { verb: 'RCPT', arg: 'TO:<to%dom@srv>', mailbox: mb('to%dom', 'srv') },
  { verb: 'RCPT', arg: 'TO:<to%dom@[127.0.0.1]>', mailbox: mb('to%dom', '[127.0.0.1]', '127.0.0.1') },
];

const refused: Refuse[] = [
  // The argument's shape: 501 5.5.4.
  { verb: 'MAIL', arg: '', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM<a@b>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM :<a@b>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROMX:<a@b>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'TO:<a@b>', code: 501, enhanced: '5.5.4' },
  { verb: 'RCPT', arg: 'FROM:<a@b>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:   ', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a@b', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<"a>b@c>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a@b>>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a@b> <c@d>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a@b><c@d>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a@b>,<c@d>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a@b>SIZE=1', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<> <>', code: 501, enhanced: '5.5.4' },
  { verb: 'RCPT', arg: 'TO:<a@b> <c@d>', code: 501, enhanced: '5.5.4' },
  { verb: 'RCPT', arg: 'TO: a@b <c@d>', code: 501, enhanced: '5.5.4' },
  // Strict mode: no space after the colon, brackets required.
  { verb: 'MAIL', arg: 'FROM: <a@b>', opts: { strict: true }, code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:a@b', opts: { strict: true }, code: 501, enhanced: '5.5.4' },
  { verb: 'RCPT', arg: 'TO:postmaster', opts: { strict: true }, code: 501, enhanced: '5.5.4' },
  { verb: 'RCPT', arg: 'TO: <a@b>', opts: { strict: true }, code: 501, enhanced: '5.5.4' },
  // Control characters, anywhere, never.
  { verb: 'MAIL', arg: 'FROM:<a\r@b>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a@b\n>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a@b>\r\n', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a\0b@c>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a\x7fb@c>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<"a\tb"@c>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<"a\\\rb"@c>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a@b>\tSIZE=1', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a@b> ENVID=\x1b', code: 501, enhanced: '5.5.4' },
  { verb: 'RCPT', arg: 'TO:<a@[1.2.3.4\0]>', code: 501, enhanced: '5.5.4' },
  { verb: 'MAIL', arg: 'FROM:<a\u0085b@c>', opts: { smtputf8: true }, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<"a\u0085b"@c>', opts: { smtputf8: true }, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@b\u2028c>', opts: { smtputf8: true }, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a\ufffdb@c>', opts: { smtputf8: true }, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a\ud800b@c>', opts: { smtputf8: true }, code: 553, enhanced: '5.1.7' },
  // The address itself: 553 5.1.7 for the sender.
  { verb: 'MAIL', arg: 'FROM:<<a@b>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@b@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<postmaster>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@.>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<@b>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<@a:>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<@a,b:c@d>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<@a:@b:c@d>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<@a_b:c@d>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a b@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a..b@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<.a@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a.@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a(b)@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a,b@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a"b"@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<"a"b@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<""@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<"a"."b"@c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@-b.c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@b-.c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@b..c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@.b>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@b.c..>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@b:c>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@1.2.3.4>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@b.123>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: `FROM:<a@${'l'.repeat(64)}.b>`, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: `FROM:<${'a'.repeat(65)}@b>`, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: `FROM:<"${'a'.repeat(63)}"@b>`, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:a@b>', code: 553, enhanced: '5.1.7' },
  // Address literals.
  { verb: 'MAIL', arg: 'FROM:<a@[1.2.3.256]>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[1.2.3]>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[1.2.3.4.5]>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[0x7f.0.0.1]>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[2130706433]>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[1.2.3.4>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[1.2.3.4]x>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[1.2.3.4].>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[]>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[IPv6:1::2::3]>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[IPv6:fe80::1%eth0]>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[IPv6:1.2.3.4]>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[2001:db8::1]>', code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@[x400:c=us;a=b]>', code: 553, enhanced: '5.1.7' },
  // Path too long: 501 with the address's enhanced code (RFC 5321 §4.5.3.1.10).
  { verb: 'MAIL', arg: `FROM:<${'a'.repeat(63)}@${domain191}>`, code: 501, enhanced: '5.1.7' },
  { verb: 'RCPT', arg: `TO:<@${domain191}:a@${label63}>`, code: 501, enhanced: '5.1.3' },
  // Non-ASCII without SMTPUTF8: 553 5.6.7.
  { verb: 'MAIL', arg: 'FROM:<jö@b>', code: 553, enhanced: '5.6.7' },
  { verb: 'MAIL', arg: 'FROM:<a@münchen.de>', code: 553, enhanced: '5.6.7' },
  { verb: 'MAIL', arg: 'FROM:<"jö"@b>', code: 553, enhanced: '5.6.7' },
  { verb: 'MAIL', arg: 'FROM:<jö@b> SMTPUTF8=yes', code: 553, enhanced: '5.6.7' },
  { verb: 'RCPT', arg: 'TO:<a@bü>', code: 553, enhanced: '5.6.7' },
  // RCPT does not look ahead for SMTPUTF8: only the transaction's flag counts.
  { verb: 'RCPT', arg: 'TO:<jö@b> SMTPUTF8', code: 553, enhanced: '5.6.7' },
  // Bad U-labels, even with SMTPUTF8.
  { verb: 'MAIL', arg: 'FROM:<a@x\u3002example>', opts: { smtputf8: true }, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@ü_x.example>', opts: { smtputf8: true }, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@-ü.example>', opts: { smtputf8: true }, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: `FROM:<a@${'ü'.repeat(60)}.example>`, opts: { smtputf8: true }, code: 553, enhanced: '5.1.7' },
  { verb: 'MAIL', arg: 'FROM:<a@b\u00a0c>', opts: { smtputf8: true }, code: 553, enhanced: '5.1.7' },
  // RCPT: 553 5.1.3.
  { verb: 'RCPT', arg: 'TO:<>', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<a@b@c>', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<postmaster@>', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<@a:postmaster>', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<"postmaster">', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<postmaster.x>', code: 553, enhanced: '5.1.3' },
  // nmap smtp-open-relay shapes that are not addresses.
  { verb: 'RCPT', arg: 'TO:<to@dom@srv>', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<to@dom@[127.0.0.1]>', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<"to@dom">', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<"to%dom">', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<dom!to>', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<to%dom>', code: 553, enhanced: '5.1.3' },
  { verb: 'RCPT', arg: 'TO:<relaytest>', code: 553, enhanced: '5.1.3' },
];

test('accepted paths', () => {
  for (const c of accepted) {
    const r = run(c.verb, c.arg, c.opts);
    assert.ok(r.ok, `${c.verb} ${JSON.stringify(c.arg)} refused: ${r.ok ? '' : r.reply.lines.join(' ')}`);
    assert.deepEqual(r.mailbox, c.mailbox, `${c.verb} ${JSON.stringify(c.arg)}`);
    assert.equal(r.params, c.params ?? '', `${c.verb} ${JSON.stringify(c.arg)} params`);
    assert.equal(r.sourceRouteStripped, c.routed ?? false, `${c.verb} ${JSON.stringify(c.arg)} source route`);
  }
});

test('refused paths', () => {
  for (const c of refused) {
    const r = run(c.verb, c.arg, c.opts);
    assert.ok(!r.ok, `${c.verb} ${JSON.stringify(c.arg)} accepted`);
    assert.equal(r.reply.code, c.code, `${c.verb} ${JSON.stringify(c.arg)}: ${r.reply.lines.join(' ')}`);
    assert.equal(r.reply.enhanced, c.enhanced, `${c.verb} ${JSON.stringify(c.arg)}: ${r.reply.lines.join(' ')}`);
  }
});

test('reply text never carries the client text', () => {
  const r = parseRcptToArg('TO:<a@b@c-secret>', LENIENT);
  assert.ok(!r.ok);
  assert.ok(!r.reply.lines.join(' ').includes('secret'));
});

test('formatMailbox: canonical form, re-quoted when not a dot-string', () => {
  const cases: [Mailbox, string][] = [
    [mb('a', 'b'), 'a@b'],
    [mb('User.Name', 'example.com'), 'User.Name@example.com'],
    [mb('a%b', 'c'), 'a%b@c'],
    [mb('a@b', 'c'), '"a@b"@c'],
    [mb('a b', 'c'), '"a b"@c'],
    [mb('a..b', 'c'), '"a..b"@c'],
    [mb('.a', 'c'), '".a"@c'],
    [mb('a"b\\c', 'd'), '"a\\"b\\\\c"@d'],
    [mb('a>b', 'c'), '"a>b"@c'],
    [mb('jö', 'münchen.de', undefined, true), 'jö@münchen.de'],
    [mb('a', '[1.2.3.4]', '1.2.3.4'), 'a@[1.2.3.4]'],
    [mb('postmaster', ''), 'postmaster'],
    [mb('PostMaster', ''), 'PostMaster'],
  ];
  for (const [m, want] of cases) assert.equal(formatMailbox(m), want);
});

test('formatMailbox output parses back to the same mailbox', () => {
  for (const c of accepted) {
    if (c.mailbox === null || c.mailbox.domain === '') continue;
    const text = formatMailbox(c.mailbox);
    const r = run(c.verb, `${c.verb === 'MAIL' ? 'FROM' : 'TO'}:<${text}>`, { smtputf8: true });
    assert.ok(r.ok, text);
    assert.deepEqual(r.mailbox, c.mailbox, text);
  }
});

test('mailboxKey lowercases the canonical form', () => {
  assert.equal(mailboxKey(mb('User.Name', 'example.com')), 'user.name@example.com');
  assert.equal(mailboxKey(mb('A B', 'c')), '"a b"@c');
  assert.equal(mailboxKey(mb('PostMaster', '')), 'postmaster');
  assert.equal(mailboxKey(mb('JÖ', 'münchen.de', undefined, true)), 'jö@münchen.de');
  const r = parseRcptToArg('TO:<"Abc"@EXAMPLE.org.>', LENIENT);
  assert.ok(r.ok && r.mailbox);
  assert.equal(mailboxKey(r.mailbox), 'abc@example.org');
});
