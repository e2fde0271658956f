/*
 * Postern's own statements, the defaults, and the built-in configuration.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as D from '../../src/config/defaults.js';
import { loadConfigText } from '../../src/config/load.js';
import { ROOT, action, conds, lines, ok } from './config-helpers.js';

test('defaults when nothing is configured', () => {
  const c = ok('');
  assert.equal(c.dialect, 'empty');
  assert.equal(c.hostname, 'mx.example.org');
  assert.deepEqual(c.listeners, []);
  assert.deepEqual(c.rules, []);
  const s = c.smtp;
  assert.deepEqual(
    [s.maxMessageSize, s.maxRcpt, s.maxMails, s.maxUnknownCommands, s.maxJunkCommands, s.commandTimeoutMs, s.dataTimeoutMs, s.maxReceivedHeaders],
    [35 * 1024 * 1024, 1000, 100, 10, 100, 300_000, 300_000, 100],
  );
  assert.deepEqual([s.bareNewline, s.earlyTalker, s.greetingDelayMs, s.vrfy, s.expn], ['normalize', 'reject', 0, false, false]);
  assert.deepEqual([s.help, s.banner, [...s.disabledExtensions], s.ciphers, s.tlsMinVersion], [[], undefined, [], undefined, undefined]);
  assert.deepEqual(c.queue, { path: D.DEFAULT_QUEUE_PATH, ttl: 4 * 86400, minFreeSpace: D.DEFAULT_MIN_FREE_SPACE, groupCommitMs: 0, activeLimit: D.DEFAULT_ACTIVE_LIMIT });
  assert.deepEqual(c.bounce.warnIntervals, [4 * 3600]);
  assert.deepEqual(c.paths, {
    controlSocket: join(D.DEFAULT_QUEUE_PATH, 'smtpd.sock'),
    pidFile: join(D.DEFAULT_QUEUE_PATH, 'smtpd.pid'),
    mboxDir: '/var/mail',
  });
  assert.deepEqual(c.resolver, { servers: [], timeoutMs: 5000 });
  assert.equal(c.rulesFile, undefined);
  assert.equal(c.smtpserverConf, undefined);
});

test('the host name defaults to this machine\'s', () => {
  const r = loadConfigText('', 'smtpd.conf');
  assert.equal(r.config?.hostname, D.defaultHostname());
  assert.ok((r.config?.hostname ?? '').length > 0);
});

test('Postern statements', () => {
  const c = ok(`queue path "var/spool"
queue min-free-space 100M
queue group-commit 5ms
queue active-limit 500
control socket "run/smtpd.sock"
pidfile "/run/postern.pid"
mbox path "var/mail"
log file "log/maillog"
resolver "127.0.0.53" "[::1]:5353"
resolver 8.8.8.8:53
resolver timeout 2s
smtp limit max-unknown-commands 3 max-junk-commands 50
smtp timeout command 2m
smtp timeout data 10m
smtp max-received 50
smtp bare-newline reject
smtp early-talker allow
smtp greeting-delay 500ms
smtp vrfy
smtp expn
smtp help "Contact postmaster@example.org"
smtp help "Second line"
smtp banner "Postern at your service"
smtp disable PIPELINING chunking, DSN
smtp tls-min-version TLSv1.3
rules "etc/smtpd_check_rules"
smtpserver-conf "/etc/mail/smtpserver.conf"
hostname mail.example.org
`);
  assert.equal(c.hostname, 'mail.example.org');
  assert.deepEqual(c.queue, { path: '/srv/postern/var/spool', ttl: 4 * 86400, minFreeSpace: 100 * 1024 * 1024, groupCommitMs: 5, activeLimit: 500 });
  assert.deepEqual(c.paths, {
    controlSocket: '/srv/postern/run/smtpd.sock',
    pidFile: '/run/postern.pid',
    mboxDir: '/srv/postern/var/mail',
    logFile: '/srv/postern/log/maillog',
  });
  assert.deepEqual(c.resolver, { servers: ['127.0.0.53', '[::1]:5353', '8.8.8.8:53'], timeoutMs: 2000 });
  const s = c.smtp;
  assert.deepEqual(
    [s.maxUnknownCommands, s.maxJunkCommands, s.commandTimeoutMs, s.dataTimeoutMs, s.maxReceivedHeaders, s.bareNewline, s.earlyTalker, s.greetingDelayMs, s.vrfy, s.expn],
    [3, 50, 120_000, 600_000, 50, 'reject', 'allow', 500, true, true],
  );
  assert.deepEqual(s.help, ['Contact postmaster@example.org', 'Second line']);
  assert.equal(s.banner, 'Postern at your service');
  assert.deepEqual([...s.disabledExtensions], ['PIPELINING', 'CHUNKING', 'DSN']);
  assert.equal(s.tlsMinVersion, 'TLSv1.3');
  assert.equal(c.rulesFile?.path, '/srv/postern/etc/smtpd_check_rules');
  assert.equal(c.rulesFile?.pos.line, 26);
  assert.equal(c.smtpserverConf?.path, '/etc/mail/smtpserver.conf');
  assert.equal(c.dialect, 'empty', "Postern's own statements belong to no dialect");
});

test('the control socket and pid file follow the queue path', () => {
  const c = ok('queue path "/var/spool/x"\n');
  assert.equal(c.paths.controlSocket, '/var/spool/x/smtpd.sock');
  assert.equal(c.paths.pidFile, '/var/spool/x/smtpd.pid');
});

test('sizes and durations with units', () => {
  assert.equal(ok('size 512K\n').smtp.maxMessageSize, 512 * 1024);
  assert.equal(ok('size 1G\n').smtp.maxMessageSize, 1024 ** 3);
  assert.equal(ok('size 1048576\n').smtp.maxMessageSize, 1048576);
  assert.equal(ok('smtp max-message-size 10MB\n').smtp.maxMessageSize, 10 * 1024 * 1024);
  assert.equal(ok('queue ttl 90m\n').queue.ttl, 90 * 60);
  assert.equal(ok('queue ttl 1w\n').queue.ttl, 7 * 86400);
  assert.equal(ok('queue ttl 3600\n').queue.ttl, 3600);
  assert.equal(ok('smtp timeout data 45s\n').smtp.dataTimeoutMs, 45_000);
});

test('a setting given twice keeps the later value, with a warning', () => {
  assert.deepEqual(lines('size 10M\nsize 20M\n'), ['smtpd.conf:2:1: warning: "size" is set again (first at line 1); the later value is used']);
  assert.equal(ok('size 10M\nsize 20M\n').smtp.maxMessageSize, 20 * 1024 * 1024);
});

test('DEFAULT_CONFIG_TEXT equals etc/smtpd.conf.default', () => {
  assert.equal(readFileSync(join(ROOT, 'etc/smtpd.conf.default'), 'utf8'), D.DEFAULT_CONFIG_TEXT);
});

test('the built-in configuration: no root needed, local mail to mbox, relay for local senders', () => {
  const r = loadConfigText(D.DEFAULT_CONFIG_TEXT, '<built-in>', { cwd: '/home/me/postern', hostname: 'h.example' });
  assert.deepEqual(r.diagnostics, []);
  const c = r.config;
  assert.ok(c);
  assert.equal(c.dialect, 'modern');
  assert.equal(c.queue.path, '/home/me/postern/var/spool');
  assert.equal(c.paths.mboxDir, '/home/me/postern/var/mail');
  assert.deepEqual(
    c.listeners.map((l) => [l.on, l.port, l.tls]),
    [['127.0.0.1', 2525, 'none']],
  );
  assert.deepEqual(conds(c, 0), ['from-local', 'for-local']);
  assert.equal(action(c, c.rules[0]?.action).kind, 'mbox');
  assert.deepEqual(conds(c, 1), ['from-local', 'for-any']);
  assert.equal(action(c, c.rules[1]?.action).kind, 'relay');
});
