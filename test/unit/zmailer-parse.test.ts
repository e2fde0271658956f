/*
 * ZMailer's smtpserver.conf: each PARAM sets what it documents, names are
 * compared without case, "-" or "_", unsupported and unknown PARAMs are
 * errors with their line (worded differently), and the result is frozen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { formatZmailerDiagnostic, parseZmailerConf } from '../../src/config/zmailer/parse.js';
import { PARAMS, ZMAILER_DEFAULTS, type ZmailerConf } from '../../src/config/zmailer/params.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const yes = (): boolean => true;

function conf(text: string, env: Record<string, string> = {}): ZmailerConf {
  const r = parseZmailerConf(text, 'smtpserver.conf', { env, executable: yes });
  if (!r.ok) throw new Error(r.diagnostics.map(formatZmailerDiagnostic).join('\n'));
  return r.conf;
}

function problems(text: string): string[] {
  return parseZmailerConf(text, 'smtpserver.conf', { executable: yes }).diagnostics.map(formatZmailerDiagnostic);
}

test('defaults: ZMailer’s values when nothing is given', () => {
  const c = conf('');
  assert.equal(c.maxSize, 0);
  assert.equal(c.minAvailSpaceKb, 5000);
  assert.equal(c.maxErrorRecipients, 3);
  assert.equal(c.maxSameIpSource, 100);
  assert.equal(c.maxParallelConnections, 800);
  assert.equal(c.rcptLimitCount, 100);
  assert.equal(c.maxUnknownCommands, 10);
  assert.deepEqual(c.tarpit, { initialSec: 0, multiplier: 0, capSec: 250 });
  assert.equal(c.listenQueueSize, undefined);
  assert.equal(c.vrfy, false);
  assert.equal(c.expn, false);
  assert.equal(c.ehlo, true);
  assert.equal(c.multilineReplies, true);
  assert.equal(c.disabledExtensions.size, 0);
  assert.equal(c.contentFilter, undefined);
  assert.equal(c.heloPatterns.length, 0);
});

/** [PARAM line, what it must set] — one row per supported PARAM form. */
const SETS: [string, (c: ZmailerConf) => unknown, unknown][] = [
  ['PARAM maxsize 10000000', (c) => c.maxSize, 10_000_000],
  ['PARAM min-availspace 20000', (c) => c.minAvailSpaceKb, 20_000],
  ['PARAM max-error-recipients 1', (c) => c.maxErrorRecipients, 1],
  ['PARAM MaxSameIpSource 10', (c) => c.maxSameIpSource, 10],
  ['PARAM same-ip-source-parallel-max 12', (c) => c.maxSameIpSource, 12],
  ['PARAM MaxParallelConnections 50', (c) => c.maxParallelConnections, 50],
  ['PARAM max-parallel-connections 60', (c) => c.maxParallelConnections, 60],
  ['PARAM ListenQueueSize 128', (c) => c.listenQueueSize, 128],
  ['PARAM RcptLimitCount 10000', (c) => c.rcptLimitCount, 10_000],
  ['PARAM RcptLimitCnt 500', (c) => c.rcptLimitCount, 500],
  ['PARAM Rcpt-Limit-Count 600', (c) => c.rcptLimitCount, 600],
  ['PARAM BindPort 2525', (c) => c.bindPort, 2525],
  ['PARAM BindAddress [0.0.0.0]', (c) => c.bindAddresses, [{ kind: 'any', family: 4 }]],
  ['PARAM BindAddress [192.0.2.25]', (c) => c.bindAddresses, [{ kind: 'address', address: '192.0.2.25', family: 4 }]],
  ['PARAM BindAddress [IPv6.0::0]', (c) => c.bindAddresses, [{ kind: 'any', family: 6 }]],
  ['PARAM BindAddress [IPv6.2001:db8::25]', (c) => c.bindAddresses, [{ kind: 'address', address: '2001:db8::25', family: 6 }]],
  ['PARAM BindAddress iface:eth0', (c) => c.bindAddresses, [{ kind: 'interface', name: 'eth0' }]],
  ['PARAM BindAddress [127.0.0.1]\nPARAM BindAddress [::1]', (c) => c.bindAddresses.length, 2],
  ['PARAM EXPNcmd', (c) => c.expn, true],
  ['PARAM EXPNcmd\nPARAM no-expncmd', (c) => c.expn, false],
  ['PARAM VRFYcmd', (c) => c.vrfy, true],
  ['PARAM VRFYcmd\nPARAM no-vrfycmd', (c) => c.vrfy, false],
  ['PARAM no-debugcmd', (c) => c.given.map((g) => g.name), ['no-debugcmd']],
  ['PARAM No8BITMIME', (c) => [...c.disabledExtensions], ['8BITMIME']],
  ['PARAM NoCHUNKING', (c) => [...c.disabledExtensions], ['CHUNKING']],
  ['PARAM NoDSN', (c) => [...c.disabledExtensions], ['DSN']],
  ['PARAM NoENHANCEDSTATUSCODES', (c) => [...c.disabledExtensions], ['ENHANCEDSTATUSCODES']],
  ['PARAM NoENHANCEDSTATUS', (c) => [...c.disabledExtensions], ['ENHANCEDSTATUSCODES']],
  ['PARAM NoENCHANCEDSTATUS', (c) => [...c.disabledExtensions], ['ENHANCEDSTATUSCODES']],
  ['PARAM NoETRN', (c) => [...c.disabledExtensions], ['ETRN']],
  ['PARAM NoPIPELINING', (c) => [...c.disabledExtensions], ['PIPELINING']],
  ['PARAM NoPIPELINING\nPARAM pipelining-ok', (c) => c.disabledExtensions.size, 0],
  ['PARAM NoDSN\nPARAM dsn-ok', (c) => c.disabledExtensions.size, 0],
  ['PARAM No8BITMIME\nPARAM 8bitmime-ok', (c) => c.disabledExtensions.size, 0],
  ['PARAM NoCHUNKING\nPARAM chunking-ok', (c) => c.disabledExtensions.size, 0],
  ['PARAM NoETRN\nPARAM etrn-ok', (c) => c.disabledExtensions.size, 0],
  ['PARAM NoENHANCEDSTATUSCODES\nPARAM enhancedstatuscodes-ok', (c) => c.disabledExtensions.size, 0],
  ['PARAM NoEHLO', (c) => c.ehlo, false],
  ['PARAM NoEHLO\nPARAM ehlo-ok', (c) => c.ehlo, true],
  ['PARAM no-multiline-replies', (c) => c.multilineReplies, false],
  ['PARAM nomultilinereplies', (c) => c.multilineReplies, false],
  ['PARAM no-multiline-replies\nPARAM multiline-replies-ok', (c) => c.multilineReplies, true],
  ['PARAM hdr220 %H ESMTP %V\nPARAM hdr220 second  line', (c) => c.hdr220, ['%H ESMTP %V', 'second  line']],
  ['PARAM help\nPARAM help Call us: +1 234 # not a comment\nPARAM help', (c) => c.help, ['', 'Call us: +1 234 # not a comment', '']],
  ['PARAM tarpit 20 2', (c) => c.tarpit, { initialSec: 20, multiplier: 2, capSec: 250 }],
  ['PARAM tarpit 20 0.1 300', (c) => c.tarpit, { initialSec: 20, multiplier: 0.1, capSec: 300 }],
  ['PARAM max-unknown-commands 5', (c) => c.maxUnknownCommands, 5],
  ['PARAM maxunknowncommands 6', (c) => c.maxUnknownCommands, 6],
  ['PARAM allowsourceroute', (c) => c.allowSourceRoute, true],
  ['PARAM rcvd-ident\nPARAM rcvd-auth-user\nPARAM rcvd-tls-mode\nPARAM rcvd-tls-peer', (c) => c.received, { ident: true, authUser: true, tlsMode: true, tlsPeer: true, whoson: false }],
  ['PARAM rcvd-ident\nPARAM no-rcvd-ident\nPARAM rcvdauthuser', (c) => [c.received.ident, c.received.authUser], [false, true]],
  ['PARAM rcvd-auth-user\nPARAM rcvd-tls-mode\nPARAM rcvd-tls-peer\nPARAM no-rcvd-auth-user\nPARAM no-rcvd-tls-mode\nPARAM no-rcvd-tls-peer', (c) => c.received, { ident: false, authUser: false, tlsMode: false, tlsPeer: false, whoson: false }],
  ['PARAM rcvd-whoson', (c) => c.received.whoson, true],
  ['PARAM TcpRcvBufferSize 1000\nPARAM TcpXmitBufferSize 2000', (c) => [c.tcpRcvBufferSize, c.tcpXmitBufferSize], [1000, 2000]],
  ['PARAM DEBUGcmd', (c) => c.given.length, 1],
  ['PARAM enable-router\nPARAM enable-router-maxpar 2', (c) => c.enableRouter, true],
  ['PARAM policydb /var/db/smtp-policy', (c) => c.policyDb, { path: '/var/db/smtp-policy' }],
  ['PARAM etrn-cluster node2 u p', (c) => c.etrnCluster, [{ node: 'node2', user: 'u', password: 'p' }]],
  ['PARAM no-rcvd-whoson\nPARAM no-smtp-auth-sasl\nPARAM no-force-rcpt-notify-never', (c) => c.given.length, 3],
  ['PARAM NoENHANCEDSTATUS\nPARAM enhancedstatus-ok', (c) => c.disabledExtensions.size, 0],
  ['PARAM contentfilter /usr/lib/zmailer/filter', (c) => c.contentFilter, { path: '/usr/lib/zmailer/filter', maxParallel: 2, debug: false }],
  ['PARAM contentfilter /f\nPARAM contentfilter-maxpar 5\nPARAM debug-contentfilter', (c) => c.contentFilter, { path: '/f', maxParallel: 5, debug: true }],
  ['PARAM smtp-auth', (c) => c.auth.enabled, true],
  ['PARAM smtp-auth\nPARAM no-smtp-auth', (c) => c.auth.enabled, false],
  ['PARAM AUTH-LOGIN-also-without-TLS', (c) => c.auth.loginWithoutTls, true],
  ['PARAM MSA-mode', (c) => c.auth.msaMode, true],
  ['PARAM SMTP-auth-pipe /usr/libexec/check-password', (c) => c.auth.pipe, '/usr/libexec/check-password'],
  ['PARAM no-smtp-auth-on-25\nPARAM auth-failrate 1', (c) => [c.auth.noAuthOnPort25, c.auth.failRate], [true, 3]],
  ['PARAM smtp-auth-username-prompt "User name:"\nPARAM smtp-auth-password-prompt \'Secret:\'', (c) => [c.auth.usernamePrompt, c.auth.passwordPrompt], ['User name:', 'Secret:']],
  ['PARAM usetls', (c) => c.tls.enabled, true],
  ['PARAM use-tls\nPARAM no-use-tls', (c) => c.tls.enabled, false],
  ['PARAM listen-ssmtp', (c) => c.tls.listenSmtps, true],
  ['PARAM tls-cert-file /etc/ssl/mail.pem', (c) => [c.tls.certFile, c.tls.keyFile], ['/etc/ssl/mail.pem', '/etc/ssl/mail.pem']],
  ['PARAM tls-key-file /k.pem\nPARAM tls-cert-file /c.pem', (c) => [c.tls.certFile, c.tls.keyFile], ['/c.pem', '/k.pem']],
  ['PARAM tlsCAfile /ca.pem\nPARAM tls-CApath /ca', (c) => [c.tls.caFile, c.tls.caPath], ['/ca.pem', '/ca']],
  ['PARAM tls-cipher-list HIGH:!aNULL', (c) => c.tls.cipherList, 'HIGH:!aNULL'],
  ['PARAM tls-loglevel 2\nPARAM tls-ask-cert 1\nPARAM tls-require-cert 1\nPARAM tls-ccert-vd 3\nPARAM tls-enforce-tls 1', (c) => c.tls, { enabled: false, listenSmtps: false, logLevel: 2, askCert: true, requireCert: true, verifyDepth: 3, enforce: true }],
];

test('each supported PARAM sets its value', () => {
  for (const [text, get, want] of SETS) assert.deepEqual(get(conf(text)), want, text);
});

test('every supported PARAM name of the table is covered by a test row', () => {
  const covered = SETS.map(([t]) => t.toLowerCase().replace(/[-_]/g, '')).join('\n');
  for (const spec of PARAMS.filter((p) => p.unsupported === undefined)) {
    const named = spec.names.some((n) => covered.includes(`param ${n.toLowerCase().replace(/[-_]/g, '')}`));
    assert.ok(named, `no test sets PARAM ${spec.names[0]}`);
  }
});

test('names ignore case, "-" and "_"; PARAM itself may be lower case', () => {
  for (const line of ['PARAM max-unknown-commands 7', 'PARAM MaxUnknownCommands 7', 'PARAM Max_Unknown_Commands 7', 'param MAX-UNKNOWN-COMMANDS 7']) {
    assert.equal(conf(line).maxUnknownCommands, 7, line);
  }
});

test('comments, quotes, $-variables from ZENV; lines starting with white space are ignored with a warning', () => {
  const c = conf('# a comment\nPARAM maxsize 1000 # bytes\n\nPARAM contentfilter "$MAILBIN/smtp filter"\nPARAM SMTP-auth-pipe ${MAILBIN}/pw\nPARAM smtp-auth-username-prompt $$user\n', { MAILBIN: '/opt/zmailer/bin' });
  assert.equal(c.maxSize, 1000);
  assert.equal(c.contentFilter?.path, '/opt/zmailer/bin/smtp filter');
  assert.equal(c.auth.pipe, '/opt/zmailer/bin/pw');
  assert.equal(c.auth.usernamePrompt, '$user');
  const r = parseZmailerConf('  PARAM maxsize 5\n\t# indented comment\n', 'f', { executable: yes });
  assert.ok(r.ok);
  assert.equal(r.conf.maxSize, 0);
  assert.deepEqual(r.diagnostics.map(formatZmailerDiagnostic), ['f:1: warning: line starts with white space and is ignored, as ZMailer does (remove the indentation to use it)']);
});

test('the seed\'s PARAMs load (with a warning where Postern does otherwise); unsupported ones are errors that say why; unknown ones are different errors', () => {
  const file = join(ROOT, 'test/fixtures/zmailer/unsupported.conf');
  const r = parseZmailerConf(readFileSync(file, 'utf8'), 'unsupported.conf', { executable: yes });
  assert.equal(r.ok, false);
  assert.deepEqual(r.diagnostics.map(formatZmailerDiagnostic), [
    'unsupported.conf:5: PARAM perl-hook is not supported by Postern: Postern runs no Perl hooks; use contentfilter',
    'unsupported.conf:6: unknown PARAM "maxsise"; did you mean "maxsize"?',
    'unsupported.conf:7: PARAM tarpit needs at least 2 arguments',
    'unsupported.conf:9: warning: PARAM DEBUGcmd: Postern has no DEBUG command (it would show server internals to any client): DEBUG is answered 502 5.5.1',
  ]);
  const ok = parseZmailerConf('PARAM policydb btree /var/db/smtp-policy\nPARAM etrn-cluster node2 user pw\nPARAM etrn-cluster [127.0.0.1]\nPARAM enable-router\nPARAM rcvd-whoson\nPARAM TcpXmitBufferSize 32000\n', 'f', { executable: yes });
  assert.ok(ok.ok);
  assert.deepEqual(ok.conf.policyDb, { type: 'btree', path: '/var/db/smtp-policy' });
  assert.deepEqual(ok.conf.etrnCluster, [{ node: 'node2', user: 'user', password: 'pw' }, { node: '[127.0.0.1]' }]);
  assert.equal(ok.conf.enableRouter, true);
  assert.equal(ok.conf.received.whoson, true);
  assert.equal(ok.conf.tcpXmitBufferSize, 32000);
  for (const spec of PARAMS.filter((p) => p.unsupported !== undefined)) {
    for (const name of spec.names) {
      const out = problems(`PARAM ${name} x y z`);
      assert.match(out[0] ?? '', new RegExp(`^smtpserver.conf:1: PARAM ${name} is not supported by Postern: .+`), name);
    }
  }
  assert.deepEqual(problems('PARAM frobnicate 1'), ['smtpserver.conf:1: unknown PARAM "frobnicate"']);
});

test('argument errors name the PARAM and the argument', () => {
  const cases: [string, string][] = [
    ['PARAM maxsize', 'smtpserver.conf:1:7: PARAM maxsize needs 1 argument'],
    ['PARAM maxsize 10M', 'smtpserver.conf:1:15: PARAM maxsize: "10M" is not a whole number'],
    ['PARAM maxsize 1 2', 'smtpserver.conf:1:17: PARAM maxsize takes at most 1 argument (found "2")'],
    ['PARAM VRFYcmd yes', 'smtpserver.conf:1:15: PARAM VRFYcmd takes no argument (found "yes")'],
    ['PARAM BindPort 70000', 'smtpserver.conf:1:16: PARAM BindPort: 70000 is out of range (1–65535)'],
    ['PARAM BindAddress 999.1.1.1', 'smtpserver.conf:1:19: PARAM BindAddress: invalid address "999.1.1.1"'],
    ['PARAM BindAddress somewhere', 'smtpserver.conf:1:19: PARAM BindAddress: bad bind address "somewhere" (expected [a.b.c.d], [IPv6.addr], iface:NAME or any)'],
    ['PARAM contentfilter @MAILBIN@/smtpcontentfilter', 'smtpserver.conf:1:21: PARAM contentfilter: contentfilter "@MAILBIN@/smtpcontentfilter" must be an absolute path'],
    ['PARAM contentfilter $MAILBIN/f', 'smtpserver.conf:1:21: undefined variable "$MAILBIN" (known: none)'],
    ['PARAM contentfilter-maxpar 21', 'smtpserver.conf:1:28: PARAM contentfilter-maxpar: 21 is out of range (1–20)'],
    ['PARAM tls-ask-cert 2', 'smtpserver.conf:1:20: PARAM tls-ask-cert: "2" must be 0 or 1'],
    ['PARAM tarpit 20 x', 'smtpserver.conf:1:17: PARAM tarpit: "x" is not a number'],
    ['PARAM smtp-auth-username-prompt "open', 'smtpserver.conf:1:33: unterminated double quote'],
    ['PARAM', 'smtpserver.conf:1:1: PARAM needs a name'],
  ];
  for (const [text, want] of cases) {
    const d = parseZmailerConf(text, 'smtpserver.conf', { executable: yes }).diagnostics[0];
    assert.equal(d ? `${d.pos.file}:${d.pos.line}:${d.pos.col}: ${d.message}` : '', want, text);
  }
});

test('a contentfilter that is not executable is refused (the real check)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-zm-'));
  const plain = join(dir, 'plain');
  writeFileSync(plain, 'not a program\n', { mode: 0o644 });
  chmodSync(plain, 0o644);
  const r = parseZmailerConf(`PARAM contentfilter ${plain}\nPARAM SMTP-auth-pipe ${dir}`, 'f');
  assert.deepEqual(r.diagnostics.map(formatZmailerDiagnostic), [
    `f:1: PARAM contentfilter: contentfilter "${plain}" is not an executable file`,
    `f:2: PARAM SMTP-auth-pipe: SMTP-auth-pipe "${dir}" is not an executable file`,
  ]);
  chmodSync(plain, 0o755);
  assert.ok(parseZmailerConf(`PARAM contentfilter ${plain}`, 'f').ok);
  rmSync(dir, { recursive: true, force: true });
});

test('clamped values and repeated PARAMs are warnings', () => {
  const r = parseZmailerConf('PARAM RcptLimitCount 50\nPARAM min-availspace 10\nPARAM maxsize 1\nPARAM maxsize 2\nPARAM contentfilter-maxpar 3\n', 'f', { executable: yes });
  assert.ok(r.ok);
  assert.equal(r.conf.rcptLimitCount, 100);
  assert.equal(r.conf.minAvailSpaceKb, 1000);
  assert.equal(r.conf.maxSize, 2);
  assert.equal(r.conf.contentFilter, undefined);
  assert.deepEqual(r.diagnostics.map(formatZmailerDiagnostic), [
    'f:1: warning: RcptLimitCount 50 raised to 100, the minimum RFC 821 requires',
    'f:2: warning: min-availspace 10 raised to 1000 kB, ZMailer\'s minimum',
    'f:4: warning: PARAM maxsize was already given at line 3; this one wins',
    'f:5: warning: contentfilter-maxpar without "PARAM contentfilter PATH" has no effect',
  ]);
});

test('the seed-style file: values, HELO patterns, and the result is frozen', () => {
  const file = join(ROOT, 'test/fixtures/zmailer/smtpserver.conf');
  const r = parseZmailerConf(readFileSync(file, 'utf8'), 'smtpserver.conf', { env: { MAILBIN: '/opt/zmailer/bin' }, executable: yes });
  assert.ok(r.ok, r.diagnostics.map(formatZmailerDiagnostic).join('\n'));
  const c = r.conf;
  assert.equal(c.maxSize, 10_000_000);
  assert.equal(c.maxSameIpSource, 10);
  assert.equal(c.listenQueueSize, 10);
  assert.equal(c.rcptLimitCount, 10_000);
  assert.equal(c.bindPort, 2525);
  assert.equal(c.vrfy, true);
  assert.equal(c.expn, false);
  assert.deepEqual([...c.disabledExtensions], ['ETRN']);
  assert.equal(c.multilineReplies, false);
  assert.equal(c.hdr220.length, 2);
  assert.equal(c.help.length, 5);
  assert.deepEqual(c.tarpit, { initialSec: 20, multiplier: 2, capSec: ZMAILER_DEFAULTS.tarpitCapSec });
  assert.equal(c.contentFilter?.path, '/opt/zmailer/bin/smtp-contentfilter');
  assert.deepEqual(c.received, { ident: true, authUser: true, tlsMode: false, tlsPeer: false, whoson: false });
  assert.deepEqual(
    c.heloPatterns.map((p) => `${p.pos.line} ${p.pattern} ${p.maxLoadAvg ?? '-'} ${p.action.kind === 'refuse' ? `!${p.action.message}` : [...p.action.flags].join('')}`),
    ['49 localhost - veR', '50 some.host.domain - !NO EMAIL ACCEPTED FROM YOUR MACHINE', '51 *.spam.example - !Go away', '53 \\[*\\] 8 ve', '54 * - veR'],
  );
  assert.deepEqual(r.diagnostics, []);
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.tarpit));
  assert.ok(Object.isFrozen(c.help));
  assert.ok(Object.isFrozen(c.heloPatterns[0]));
  assert.throws(() => {
    (c as { maxSize: number }).maxSize = 1;
  }, TypeError);
});
