/*
 * What `smtpd -n` shows for broken files: every error, at FILE:LINE:COL,
 * worded for the person who has to fix it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatDiagnostic, loadConfigFile } from '../../src/config/load.js';
import { errors, lines, load } from './config-helpers.js';

/** [config text, expected error lines] — one error kind each. */
const CASES: [string, string[]][] = [
  ['lisen on lo0\n', ['smtpd.conf:1:1: unknown keyword "lisen"; did you mean "listen"?']],
  ['frobnicate\n', ['smtpd.conf:1:1: unknown keyword "frobnicate"']],
  ['listen on lo0 prot 25\n', ['smtpd.conf:1:15: unknown listen option "prot"; did you mean "port"?']],
  ['action a relay host smtp://mx.example.org:0\n', ['smtpd.conf:1:21: invalid port 0 (ports are 1–65535)']],
  ['listen on lo0 port 65536\n', ['smtpd.conf:1:20: invalid port 65536 (ports are 1–65535)']],
  ['listen on lo0 port 25 port 26\n', ['smtpd.conf:1:23: "port" is already given on this listen line (at column 15)']],
  ['listen on 10.0.0.0/8\n', ['smtpd.conf:1:11: cannot listen on a network ("10.0.0.0/8"); give an interface name or one address']],
  ['listen on 300.1.1.1\n', ['smtpd.conf:1:11: invalid address "300.1.1.1"']],
  ['listen on lo0 enable auth\n', ['smtpd.conf:1:15: "enable auth" needs "tls" or "smtps" on the same listen line']],
  ['listen on lo0\nlisten on lo0 port 25\n', ['smtpd.conf:2:1: listener on lo0 port 25 is already declared at line 1']],
  ['hostname "bad host"\n', ['smtpd.conf:1:10: invalid hostname "bad host" (labels are letters, digits and "-", at most 63 characters)']],
  ['size 10Q\n', ['smtpd.conf:1:6: invalid size "10Q" (expected a number of bytes with an optional K, M or G suffix, e.g. 35M)']],
  ['expire 4x\n', ['smtpd.conf:1:8: invalid duration "4x" (expected a number followed by s, m, h or d, e.g. 4d)']],
  ['table t { a, b = c }\n', ['smtpd.conf:1:14: a table cannot mix "key = value" entries and single values']],
  ['table t ldap:/etc/x\n', ['smtpd.conf:1:9: table backend "ldap" is not supported by Postern (use file:PATH, db:PATH or { values })']],
  ['table t { a }\ntable t { b }\n', ['smtpd.conf:2:7: table "t" is already defined at line 1']],
  ['map "m" { source db "/a" }\nmap "m" { source db "/b" }\n', ['smtpd.conf:2:5: map "m" is already defined at line 1']],
  ['action "a" mbox\naction "a" relay\n', ['smtpd.conf:2:8: action "a" is already defined at line 1']],
  ['action "out" relay\nmatch for any action "outt"\n', ['smtpd.conf:2:22: undefined action "outt"; did you mean "out"?']],
  ['action "a" mbox alias <aliases>\nmatch for local action "a"\n', ['smtpd.conf:1:24: undefined table "aliases"']],
  ['listen on lo0 tls pki mail.example.org\n', ['smtpd.conf:1:23: undefined pki "mail.example.org"']],
  ['listen on lo0 tls-require verify ca myca\n', ['smtpd.conf:1:37: undefined ca "myca"']],
  ['listen on $extif\n', ['smtpd.conf:1:11: undefined macro "$extif"']],
  ['ext_if = "eth0"\nlisten on $ext_fi\n', ['smtpd.conf:2:11: undefined macro "$ext_fi"; did you mean "ext_if"?']],
  ['pki mx.example.org cert "/c.pem"\n', ['smtpd.conf:1:5: pki "mx.example.org" has no key (add: pki mx.example.org key "/etc/ssl/private/mx.example.org.key")']],
  ['action a relay auth <t>\ntable t { a = b }\nmatch for any action a\n', ['smtpd.conf:1:16: "auth" needs a relay host: add "host smtp+tls://label@host" (the label selects the credentials)']],
  ['action a relay host foo://x\n', ['smtpd.conf:1:21: unknown relay scheme "foo" in "foo://x" (expected smtp, smtp+tls, smtp+notls, smtps, lmtp)']],
  ['action a relay alias <t>\n', ['smtpd.conf:1:16: "alias" is not valid for a relay action (alias, virtual, userbase, user and wrapper apply to local delivery)']],
  ['match from any for any\n', ['smtpd.conf:1:23: a match rule must end with "action NAME" or "reject"']],
  ['match for domian x reject\n', ['smtpd.conf:1:11: unknown "for" destination "domian"; did you mean "domain"?']],
  ['match from src 10.0.0.300 reject\n', ['smtpd.conf:1:16: invalid address "10.0.0.300" (expected an IPv4 or IPv6 address, or a network such as 192.0.2.0/24)']],
  ['match from src 10.0.0.0/33 reject\n', ['smtpd.conf:1:16: invalid network "10.0.0.0/33": the prefix length must be 0–32']],
  ['accept for all deliver to mbx\n', ['smtpd.conf:1:27: unknown delivery method "mbx"; did you mean "mbox"?']],
  ['accept for local\n', ['smtpd.conf:1:17: unexpected end of line: expected "deliver" or "relay"']],
  [
    'accept for all relay via smtp.example.org tls enable auth\n',
    ['smtpd.conf:1:47: "enable auth" takes the relay credentials from a map named "secrets", but none is declared (add: map "secrets" { source db "/etc/mail/secrets.db" })'],
  ],
  [
    'map "secrets" { source db "/s.db" }\naccept for all relay via smtp.example.org enable auth\n',
    ['smtpd.conf:2:43: "enable auth" on a relay needs "tls", "smtps" or "ssl": credentials are never sent in clear text'],
  ],
  ['reject for all deliver to mbox\n', ['smtpd.conf:1:16: a reject rule takes no delivery action']],
  ['map m { }\n', ['smtpd.conf:1:5: map "m" has no source (add: source db "/path/to/file.db")']],
  ['filter "dkim" milter "tcp:x"\n', ['smtpd.conf:1:22: invalid milter address "tcp:x" (expected "inet:HOST:PORT", "inet6:[ADDR]:PORT" or "unix:/PATH")']],
  ['smtp disable PIPELINNG\n', ['smtpd.conf:1:14: unknown SMTP extension "PIPELINNG" (expected PIPELINING, CHUNKING, DSN, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, ETRN, SIZE); did you mean "PIPELINING"?']],
  ['smtp bare-newline strip\n', ['smtpd.conf:1:19: invalid value "strip" for "smtp bare-newline" (expected normalize or reject)']],
  ['smtp vrfy yes\n', ['smtpd.conf:1:11: unexpected "yes" at the end of the smtp statement']],
  ['resolver 1.2.3\n', ['smtpd.conf:1:10: invalid resolver "1.2.3" (expected an IP address, optionally with :port; IPv6 with a port as [::1]:53)']],
  ['listen on lo0 port "25\n', ['smtpd.conf:1:20: unterminated quoted string (a string cannot span lines; end the line with \\ to continue it)', 'smtpd.conf:1:23: expected a port number after "port", found end of line']],
  ['"listen" on lo0\n', ['smtpd.conf:1:1: expected a statement, found the string "listen"']],
  ['x-y = "1"\n', ['smtpd.conf:1:1: invalid macro name "x-y" (letters, digits and "_" only, so that $x-y can refer to it)']],
  ['match from src regex <nets> reject\n', ['smtpd.conf:1:16: regex tables are not supported by Postern']],
  ['include "no-such-file.conf"\n', ['smtpd.conf:1:9: cannot include "no-such-file.conf": no such file']],
];

for (const [text, expected] of CASES) {
  test(`error: ${JSON.stringify(text)}`, () => {
    assert.deepEqual(errors(text, { cwd: tmpdir() }), expected);
    assert.equal(load(text, { cwd: tmpdir() }).config, undefined);
  });
}

test('several errors in one file are all reported, in file order', () => {
  const text = `lisen on lo0
listen on lo0 port 99999
table t { a }
table t { b }
match from any for any action "nowhere"
smtp max-message-size lots
listen on lo1
`;
  assert.deepEqual(lines(text), [
    'smtpd.conf:1:1: unknown keyword "lisen"; did you mean "listen"?',
    'smtpd.conf:2:20: invalid port 99999 (ports are 1–65535)',
    'smtpd.conf:4:7: table "t" is already defined at line 3',
    'smtpd.conf:5:31: undefined action "nowhere"',
    'smtpd.conf:6:23: invalid size "lots" (expected a number of bytes with an optional K, M or G suffix, e.g. 35M)',
  ]);
});

test('a missing "}" is reported at its "{" and parsing resumes at the next statement', () => {
  const text = 'table t {\n  a, b\nlisten on lo0 prot 1\n';
  assert.deepEqual(errors(text), [
    'smtpd.conf:1:9: "{" is never closed (expected "}" before line 3)',
    'smtpd.conf:3:15: unknown listen option "prot"; did you mean "port"?',
  ]);
});

test('an error on a continued line points at the physical line', () => {
  assert.deepEqual(errors('listen on lo0 \\\n  port 2525 \\\n  prot 3\n'), ['smtpd.conf:3:3: unknown listen option "prot"; did you mean "port"?']);
});

test('open relay: a warning, and the configuration still loads', () => {
  const legacy = load('accept from all for all relay\n');
  assert.ok(legacy.config);
  assert.deepEqual(legacy.diagnostics.map(formatDiagnostic), [
    'smtpd.conf:1:1: warning: this accept rule makes this server an open relay: anyone on the Internet can send mail through it (limit "from" to local or trusted networks, or require auth)',
  ]);
  assert.equal(legacy.config.warnings.length, 1);
  assert.match(legacy.config.warnings[0]?.message ?? '', /open relay/);

  const modern = [
    'action "r" relay\nmatch from any for any action "r"\n',
    'action "r" relay\nmatch from src 0.0.0.0/0 for any action "r"\n',
    'action "r" relay\nmatch from src { 192.0.2.0/24, ::/0 } for any action "r"\n',
    'action "r" relay\nmatch !from local for any action "r"\n',
    'action "r" relay\nmatch from mail-from "@example.org" for any action "r"\n',
    'action "r" relay\nmatch from any !for local action "r"\n',
  ];
  for (const text of modern) {
    const r = load(text);
    assert.ok(r.config, text);
    assert.deepEqual(
      r.diagnostics.map(formatDiagnostic),
      ['smtpd.conf:2:1: warning: this match rule makes this server an open relay: anyone on the Internet can send mail through it (limit "from" to local or trusted networks, or require auth)'],
      text,
    );
  }
});

test('not an open relay: local sources, authentication, known domains, local delivery', () => {
  const closed = [
    'action "r" relay\nmatch from local for any action "r"\n',
    'action "r" relay\nmatch for any action "r"\n',
    'action "r" relay\nmatch from src 10.0.0.0/8 for any action "r"\n',
    'action "r" relay\nmatch auth from any for any action "r"\n',
    'action "r" relay\nmatch from auth for any action "r"\n',
    'action "r" relay\nmatch from any for domain example.org action "r"\n',
    'action "r" relay\nmatch from any for any rcpt-to <r> action "r"\ntable r { a@example.org }\n',
    'action "m" mbox\nmatch from any for any action "m"\n',
    'accept from all for domain "example.org" relay\n',
    'accept for all relay\n',
  ];
  for (const text of closed) {
    const r = load(text);
    assert.ok(r.config, text);
    assert.ok(!r.diagnostics.some((d) => d.message.includes('open relay')), text);
  }
});

test('include: relative to the including file, errors name the included file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-conf-'));
  mkdirSync(join(dir, 'conf.d'));
  writeFileSync(join(dir, 'smtpd.conf'), 'include "conf.d/tables.conf"\naction "a" mbox alias <aliases>\nmatch for local action "a"\n');
  writeFileSync(join(dir, 'conf.d/tables.conf'), 'table aliases file:/etc/mail/aliases\ninclude "more.conf"\n');
  writeFileSync(join(dir, 'conf.d/more.conf'), 'lisen on lo0\n');
  const r = loadConfigFile('smtpd.conf', { cwd: dir, hostname: 'h.example' });
  assert.deepEqual(r.diagnostics.map(formatDiagnostic), ['conf.d/more.conf:1:1: unknown keyword "lisen"; did you mean "listen"?']);

  writeFileSync(join(dir, 'conf.d/more.conf'), 'listen on lo0\n');
  const good = loadConfigFile('smtpd.conf', { cwd: dir, hostname: 'h.example' });
  assert.deepEqual(good.diagnostics, []);
  assert.equal(good.config?.tables.get('aliases')?.kind, 'file');
  assert.equal(good.config?.listeners[0]?.pos.file, 'conf.d/more.conf');
});

test('include loop', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-conf-'));
  writeFileSync(join(dir, 'a.conf'), 'include "b.conf"\n');
  writeFileSync(join(dir, 'b.conf'), 'include "a.conf"\n');
  const r = loadConfigFile('a.conf', { cwd: dir, hostname: 'h.example' });
  assert.deepEqual(r.diagnostics.map(formatDiagnostic), ['b.conf:1:9: include loop: a.conf → b.conf → a.conf']);
  assert.equal(r.config, undefined);
});

test('diagnostics of an included file come at the include line, in file order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-conf-'));
  writeFileSync(join(dir, 'main.conf'), 'lisen 1\ninclude "inc.conf"\nlisen 3\n');
  writeFileSync(join(dir, 'inc.conf'), 'lisen 2\n');
  const r = loadConfigFile('main.conf', { cwd: dir, hostname: 'h.example' });
  assert.deepEqual(
    r.diagnostics.map((d) => `${d.pos.file}:${d.pos.line}`),
    ['main.conf:1', 'inc.conf:1', 'main.conf:3'],
  );
});

test('an unreadable configuration file', () => {
  const r = loadConfigFile('/nonexistent/smtpd.conf');
  assert.deepEqual(r.diagnostics.map(formatDiagnostic), ['/nonexistent/smtpd.conf:1:1: cannot read configuration: no such file']);
});
