/*
 * The mail log's configuration and pure parts (issue 17): `log syslog`,
 * `log format`, syslog priorities, OpenSMTPD's line forms, where smtpd logs
 * for each way it runs, -v counting, `auth-over-plaintext`, and sendmail -t's
 * unqualified names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok, errors, lines } from './config-helpers.js';
import { priority } from '../../src/log/syslog.js';
import { opensmtpdLine, seconds } from '../../src/log/opensmtpd.js';
import { MailLog } from '../../src/log/maillog.js';
import { logOptions, nowhereToLog } from '../../src/cli/log-setup.js';
import { countFlag } from '../../src/cli/getopt.js';
import { headerRecipients, splitHeaders } from '../../src/submit/headers.js';

test('log syslog: defaults mail/smtpd, and each option', () => {
  assert.deepEqual(ok('log syslog\n').paths.syslog, { facility: 'mail', tag: 'smtpd' });
  assert.deepEqual(ok('log syslog facility local3 tag postern socket "/run/log.sock"\n').paths.syslog, { facility: 'local3', tag: 'postern', socket: '/run/log.sock' });
  assert.equal(ok('log format opensmtpd\n').paths.logFormat, 'opensmtpd');
  assert.equal(ok('log file "/var/log/postern.log"\nlog syslog\n').paths.logFile, '/var/log/postern.log');
});

test('log statements: errors with their position', () => {
  assert.match(errors('log syslog facility kern\n')[0] ?? '', /:1:\d+: unknown syslog facility "kern"/);
  assert.match(errors('log syslog tag "a b"\n')[0] ?? '', /syslog tag/);
  assert.match(errors('log format json\n')[0] ?? '', /unknown log format "json"/);
  assert.match(errors('log stderr\n')[0] ?? '', /expected "file", "syslog" or "format" after "log"/);
  assert.match(errors('log syslog colour red\n')[0] ?? '', /unknown a "log syslog" option "colour"|"colour"/);
});

test('auth-over-plaintext: an explicit opt-in after auth <T>, with a warning', () => {
  const text = 'table secrets file:/etc/mail/secrets\naction "out" relay host smtp://label@smarthost.example auth <secrets> auth-over-plaintext\nmatch from local for any action "out"\n';
  const c = ok(text);
  const a = c.actions.get('out');
  assert.equal(a?.relay?.authOverPlaintext, true);
  assert.ok(lines(text).some((l) => /warning: "auth-over-plaintext": the relay credentials are sent without TLS/.test(l)), lines(text).join('\n'));
  const plain = ok('table secrets file:/etc/mail/secrets\naction "out" relay host smtp+tls://label@smarthost.example auth <secrets>\nmatch from local for any action "out"\n');
  assert.equal(plain.actions.get('out')?.relay?.authOverPlaintext, undefined);
});

test('syslog priorities: facility × 8 + severity', () => {
  assert.equal(priority('mail', 6), 22);
  assert.equal(priority('mail', 3), 19);
  assert.equal(priority('local7', 7), 191);
  assert.equal(priority('daemon', 4), 28);
});

test('log format opensmtpd: seed 002 lines', () => {
  assert.equal(
    opensmtpdLine('smtp', 'message', { session: 's', msgid: '1a2b3c4d', from: '<user@our_domain.org>', size: 471, nrcpt: 1, proto: 'ESMTP', address: '::1', host: 'localhost' }),
    '1a2b3c4d: from=<user@our_domain.org>, size=471, nrcpts=1, proto=ESMTP, relay=localhost [IPv6:::1]',
  );
  assert.equal(
    opensmtpdLine('mda', 'delivery ok', { evpid: '1a2b3c4d00112233', from: '<a@b>', to: '<someguy@somedomain.org>', delay: '0s', stat: '2.0.0 delivered' }),
    '1a2b3c4d00112233: to=<someguy@somedomain.org>, delay=0, stat=Sent',
  );
  assert.match(opensmtpdLine('mta', 'delivery tempfail', { evpid: 'e', to: '<x@y>', delay: '1h0m5s', stat: '4.4.1 refused' }) ?? '', /^e: to=<x@y>, delay=3605, stat=Deferred: 4\.4\.1 refused$/);
  assert.equal(opensmtpdLine('smtp', 'connected', { address: '192.0.2.1' }), undefined);
  assert.equal(seconds('2d4h0m1s'), 187201);
});

test('MailLog: OpenSMTPD form only where asked; reopen() follows the file after a rename', () => {
  const got: string[] = [];
  new MailLog({ sink: (l) => got.push(l), format: 'opensmtpd' }).event('smtp', 'message', { msgid: 'm', from: '<a@b>', size: 1, nrcpt: 1, proto: 'SMTP', address: '192.0.2.1', host: 'c.example' });
  assert.deepEqual(got, ['m: from=<a@b>, size=1, nrcpts=1, proto=SMTP, relay=c.example [192.0.2.1]']);
  const dir = mkdtempSync(join(tmpdir(), 'postern-log-'));
  const file = join(dir, 'smtpd.log');
  const log = new MailLog({ file });
  log.info('before');
  log.flush();
  renameSync(file, `${file}.1`);
  log.info('after rename, before reopen');
  log.reopen();
  log.info('after reopen');
  log.close();
  assert.match(readFileSync(`${file}.1`, 'utf8'), /before\n.*after rename, before reopen\n/);
  assert.match(readFileSync(file, 'utf8'), /log file .* reopened\n.*after reopen\n/);
  rmSync(dir, { recursive: true });
});

test('where smtpd logs: -d stderr; detached or -F without log file: syslog; with one: the file', () => {
  const trace = new Set<never>();
  const o = (text: string, stderr: boolean, socket = true) => logOptions(ok(text), { stderr, verbose: false, trace, socketExists: () => socket });
  assert.deepEqual([o('', true).file, o('', true).syslog, o('', true).stderr], [undefined, undefined, true]);
  assert.deepEqual(o('', false).syslog, { facility: 'mail', tag: 'smtpd' });
  assert.equal(o('', false).stderr, false);
  // -F with no log file and no /dev/log (a container): standard error, not a socket nobody reads.
  assert.deepEqual([o('', false, false).syslog, o('', false, false).stderr], [undefined, true]);
  assert.equal(o('log file "/var/log/x"\n', false).file, '/var/log/x');
  assert.equal(o('log file "/var/log/x"\n', false).syslog, undefined);
  assert.deepEqual(o('log syslog facility local1\n', true).syslog, { facility: 'local1', tag: 'smtpd' });
  assert.equal(o('log format opensmtpd\n', false).format, 'opensmtpd');
  assert.match(nowhereToLog(ok('log syslog socket "/nonexistent/log.sock"\n')) ?? '', /^refusing to detach: no "log file" and no syslog socket at \/nonexistent\/log\.sock/);
  assert.equal(nowhereToLog(ok('log file "/var/log/x"\n')), undefined);
});

test('countFlag: -v -v, -vv, bundled, values skipped', () => {
  const spec = 'dFhnvb:D:f:T:P:';
  assert.equal(countFlag(['-v'], spec, 'v'), 1);
  assert.equal(countFlag(['-d', '-v', '-v'], spec, 'v'), 2);
  assert.equal(countFlag(['-dvv'], spec, 'v'), 2);
  assert.equal(countFlag(['-f', '/etc/v/v.conf', '-v'], spec, 'v'), 1);
  assert.equal(countFlag(['-fv.conf', '-d'], spec, 'v'), 0);
});

test('sendmail -t: unqualified names in To/Cc are recipients', () => {
  const f = splitHeaders('To: root\nCc: Admin <postmaster>, bob@example.org\nBcc: "Ops, Team" <ops@example.org>\n\nbody\n').fields;
  assert.deepEqual(headerRecipients(f), ['root', 'postmaster', 'bob@example.org', 'ops@example.org']);
});
