/*
 * The modern (OpenSMTPD 6.4+) dialect: a representative configuration in
 * the style of smtpd.conf(5), then each statement and option on its own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { action, conds, lines, ok } from './config-helpers.js';

const MODERN = `# In the style of smtpd.conf(5)
ext = "eth0"
table aliases file:/etc/mail/aliases
table secrets db:/etc/mail/secrets.db
table other-relays { 192.0.2.0/24, 2001:db8::/32 }
table users { bob = "bob:secret", alice => "alice:pw" }

pki mail.example.com cert "/etc/ssl/mail.example.com.crt"
pki mail.example.com key "/etc/ssl/private/mail.example.com.key"

listen on lo0
listen on $ext tls pki mail.example.com auth-optional hostname mail.example.com
listen on 192.0.2.25 port submission tls-require pki mail.example.com auth <users> tag SUBMISSION

action "local_mail" mbox alias <aliases>
action "outbound" relay host smtp+tls://bob@smtp.example.com \\
	auth <secrets>
action mda_with_aliases mda "/path/to/mda -f -" alias <aliases>

match for local action "local_mail"
match from any for domain example.com action mda_with_aliases
match !from src <other-relays> mail-from "@example.com" for any reject
match auth from any for any action "outbound"
match from local for any action "outbound"
`;

test('a representative modern configuration', () => {
  const c = ok(MODERN);
  assert.equal(c.dialect, 'modern');
  assert.equal(c.macros.get('ext'), 'eth0');
  assert.deepEqual(
    c.listeners.map((l) => [l.on, l.port, l.tls, l.auth, l.pki ?? '-']),
    [
      ['lo0', 25, 'none', 'none', '-'],
      ['eth0', 25, 'starttls', 'optional', 'mail.example.com'],
      ['192.0.2.25', 587, 'require', 'required', 'mail.example.com'],
    ],
  );
  assert.equal(c.listeners[1]?.hostname, 'mail.example.com');
  assert.equal(c.listeners[2]?.authTable, 'users');
  assert.equal(c.listeners[2]?.tag, 'SUBMISSION');
  assert.deepEqual(c.pki.get('mail.example.com'), {
    name: 'mail.example.com',
    pos: c.pki.get('mail.example.com')?.pos,
    cert: '/etc/ssl/mail.example.com.crt',
    key: '/etc/ssl/private/mail.example.com.key',
  });
  const t = c.tables.get('users');
  assert.equal(t?.kind, 'map');
  assert.deepEqual(t?.kind === 'map' ? [...t.entries] : [], [
    ['bob', 'bob:secret'],
    ['alice', 'alice:pw'],
  ]);
  assert.deepEqual(c.tables.get('secrets'), { name: 'secrets', pos: c.tables.get('secrets')?.pos, kind: 'db', path: '/etc/mail/secrets.db' });

  const out = action(c, 'outbound');
  assert.deepEqual(out.relay?.host, { scheme: 'smtp+tls', label: 'bob', host: 'smtp.example.com' });
  assert.equal(out.relay?.authTable, 'secrets');
  assert.equal(out.relay?.tls, 'required');
  assert.equal(action(c, 'mda_with_aliases').command, '/path/to/mda -f -');

  assert.equal(c.rules.length, 5);
  assert.deepEqual(conds(c, 0), ['from-local', 'for-local']);
  assert.deepEqual(conds(c, 1), ['from-any', 'for-domain <example.com>']);
  assert.deepEqual(conds(c, 2), ['!from-src other-relays', 'mail-from <@example.com>', 'for-any']);
  assert.equal(c.rules[2]?.decision, 'reject');
  assert.equal(c.rules[2]?.action, undefined);
  assert.deepEqual(conds(c, 3), ['auth', 'from-any', 'for-any']);
  assert.deepEqual(conds(c, 4), ['from-local', 'for-any']);
  assert.deepEqual(c.warnings, []);
});

test('match defaults: no from means from local, no for means for local', () => {
  const c = ok('action "a" relay\nmatch for any action "a"\nmatch from any action "a"\n');
  assert.deepEqual(conds(c, 0), ['from-local', 'for-any']);
  assert.deepEqual(conds(c, 1), ['for-local', 'from-any']);
});

test('match conditions: every source, destination and option, with negation', () => {
  const c = ok(`table t { a.example, b.example }
action "a" mbox
match from socket for any action "a"
match from src 10.0.0.0/8 for rcpt-to <t> action "a"
match from 192.0.2.1 for any action "a"
match from rdns for local action "a"
match from rdns <t> for local action "a"
match from auth <t> for local action "a"
match from mail-from "@example.org" for local action "a"
match !from local !for domain <t> action "a"
match helo <t> mail-from <t> rcpt-to <t> tag T tls !auth for local action "a"
`);
  assert.deepEqual(conds(c, 0), ['from-socket', 'for-any']);
  assert.deepEqual(conds(c, 1), ['from-src <10.0.0.0/8>', 'for-rcpt-to t']);
  assert.deepEqual(conds(c, 2), ['from-src <192.0.2.1>', 'for-any']);
  assert.deepEqual(conds(c, 3), ['from-rdns', 'for-local']);
  assert.deepEqual(conds(c, 4), ['from-rdns t', 'for-local']);
  assert.deepEqual(conds(c, 5), ['from-auth t', 'for-local']);
  assert.deepEqual(conds(c, 6), ['from-mail-from <@example.org>', 'for-local']);
  assert.deepEqual(conds(c, 7), ['!from-local', '!for-domain t']);
  assert.deepEqual(conds(c, 8), ['from-local', 'helo t', 'mail-from t', 'rcpt-to t', 'tag T', 'tls', '!auth', 'for-local']);
  const net = c.tables.get('<10.0.0.0/8>');
  assert.deepEqual(net?.kind === 'list' ? net.values : undefined, ['10.0.0.0/8']);
});

test('listen options', () => {
  const c = ok(`table h { mail.example.org = 192.0.2.1 }
table s { bob = "bob@example.org" }
pki p cert "p.crt"
pki p key "p.key"
ca c cert "/etc/ssl/ca.pem"
listen on socket
listen on 0.0.0.0 inet4 port 465 smtps pki p
listen on ::1 inet6 tls-require verify ca c pki p
listen on lo0 port 2525 tls pki p auth hostnames <h> senders <s> masquerade mask-src no-dsn smtputf8 proxy-v2
action a mbox
match for local action a
`);
  const [sock, smtps, verify, all] = c.listeners;
  assert.deepEqual([sock?.on, sock?.port], ['socket', 0]);
  assert.deepEqual([smtps?.family, smtps?.port, smtps?.tls], ['inet4', 465, 'smtps']);
  assert.deepEqual([verify?.family, verify?.port, verify?.tls, verify?.tlsVerify, verify?.ca], ['inet6', 25, 'require', true, 'c']);
  assert.equal(all?.hostnamesTable, 'h');
  assert.deepEqual(all?.senders, { table: 's', masquerade: true });
  assert.deepEqual([all?.maskSrc, all?.noDsn, all?.smtputf8, all?.proxyV2], [true, true, true, true]);
  assert.equal(c.pki.get('p')?.cert, '/srv/postern/p.crt', 'relative paths resolve against cwd');
  assert.equal(c.ca?.get('c')?.cert, '/etc/ssl/ca.pem');
});

test('listen on … port 0: the kernel picks a free port', () => {
  const c = ok('listen on 127.0.0.1 port 0\naction a mbox\nmatch for local action a\n');
  assert.equal(c.listeners[0]?.port, 0);
});

test('smtps listeners default to port 465', () => {
  const c = ok('listen on lo0 smtps\naction a mbox\nmatch for local action a\n');
  assert.equal(c.listeners[0]?.port, 465);
});

test('local actions and their options', () => {
  const c = ok(`table al { root = bob }
table ub file:/etc/mail/userbase
action m1 mbox alias <al> ttl 2d
action m2 maildir
action m3 maildir "~/Mail/%{rcpt.domain}" junk virtual <al> userbase <ub> user vmail
action m4 maildir junk
action m5 mda "/usr/bin/procmail -f -" wrapper w user nobody
action m6 lmtp "/var/run/dovecot/lmtp" rcpt-to
action m7 lmtp "127.0.0.1:24"
action m8 expand-only alias <al>
action m9 forward-only
match for local action m1
match for domain a action m2
match for domain b action m3
match for domain c action m4
match for domain d action m5
match for domain e action m6
match for domain f action m7
match for domain g action m8
match for domain h action m9
`);
  assert.equal(action(c, 'm1').ttl, 2 * 86400);
  assert.equal(action(c, 'm1').alias, 'al');
  assert.equal(action(c, 'm2').maildirPath, undefined);
  const m3 = action(c, 'm3');
  assert.deepEqual([m3.kind, m3.maildirPath, m3.junk, m3.virtual, m3.userbase, m3.user], ['maildir', '~/Mail/%{rcpt.domain}', true, 'al', 'ub', 'vmail']);
  assert.deepEqual([action(c, 'm4').junk, action(c, 'm4').maildirPath], [true, undefined]);
  assert.deepEqual([action(c, 'm5').wrapper, action(c, 'm5').user], ['w', 'nobody']);
  assert.deepEqual([action(c, 'm6').lmtpDestination, action(c, 'm6').lmtpRcptTo], ['/var/run/dovecot/lmtp', 'rcpt-to']);
  assert.equal(action(c, 'm7').lmtpRcptTo, undefined);
  assert.equal(action(c, 'm8').kind, 'expand-only');
  assert.equal(action(c, 'm9').kind, 'forward-only');
});

test('relay actions and their options', () => {
  const c = ok(`table creds { bob = "bob:pw" }
pki client cert "/c.crt" key "/c.key"
action r1 relay
action r2 relay host smtps://mx.example.org
action r3 relay host "smtp+notls://[2001:db8::1]:2525"
action r4 relay host smtp://relay.example.org:25 tls no-verify
action r5 relay backup mx mx2.example.org helo out.example.org helo-src { 192.0.2.1 = out.example.org } src 192.0.2.1 mail-from "bounce@example.org" pki client srs
action r6 relay host lmtp://127.0.0.1:24 auth <creds>
action r7 relay backup
match for domain a action r1
match for domain b action r2
match for domain c action r3
match for domain d action r4
match for domain e action r5
match for domain f action r6
match for domain g action r7
`);
  assert.deepEqual(action(c, 'r1').relay, { backup: false, tls: 'opportunistic', tlsNoVerify: false, srs: false });
  assert.deepEqual(action(c, 'r2').relay?.host, { scheme: 'smtps', host: 'mx.example.org' });
  assert.equal(action(c, 'r2').relay?.tls, 'smtps');
  assert.deepEqual(action(c, 'r3').relay?.host, { scheme: 'smtp+notls', host: '2001:db8::1', port: 2525 });
  assert.equal(action(c, 'r3').relay?.tls, 'none');
  assert.deepEqual([action(c, 'r4').relay?.tls, action(c, 'r4').relay?.tlsNoVerify], ['required', true]);
  const r5 = action(c, 'r5').relay;
  assert.deepEqual(
    [r5?.backup, r5?.backupMx, r5?.helo, r5?.heloSrc, r5?.src, r5?.mailFrom, r5?.pki, r5?.srs],
    [true, 'mx2.example.org', 'out.example.org', '<192.0.2.1=out.example.org>', '<192.0.2.1>', 'bounce@example.org', 'client', true],
  );
  assert.deepEqual(action(c, 'r6').relay?.host, { scheme: 'lmtp', host: '127.0.0.1', port: 24 });
  assert.equal(action(c, 'r6').relay?.authTable, 'creds');
  assert.deepEqual([action(c, 'r7').relay?.backup, action(c, 'r7').relay?.backupMx], [true, undefined]);
});

test('server-wide OpenSMTPD options: smtp, queue ttl, bounce', () => {
  const c = ok(`smtp max-message-size 50M
smtp limit max-rcpt 500 max-mails 10
smtp ciphers "HIGH:!aNULL"
queue ttl 5d
bounce warn-interval 1h, 6h, 2d
`);
  assert.equal(c.smtp.maxMessageSize, 50 * 1024 * 1024);
  assert.equal(c.smtp.maxRcpt, 500);
  assert.equal(c.smtp.maxMails, 10);
  assert.equal(c.smtp.ciphers, 'HIGH:!aNULL');
  assert.equal(c.queue.ttl, 5 * 86400);
  assert.deepEqual(c.bounce.warnIntervals, [3600, 6 * 3600, 2 * 86400]);
});

test('forward references are fine: actions and tables may come after their use', () => {
  const c = ok('match for domain <d> action "later"\naction "later" mbox\ntable d { example.org }\n');
  assert.equal(c.rules[0]?.action, 'later');
});

test('a ca without verify draws a warning with its position', () => {
  assert.deepEqual(lines('table h { 192.0.2.1 = mail.example.org }\nlisten on lo0 hostnames <h> proxy-v2\nlisten on lo0 port 2525 tls ca c\nca c cert "/etc/ssl/ca.pem"\naction a mbox\nmatch for local action a\n'), [
    'smtpd.conf:3:29: warning: "ca" is used only with "verify" (tls-require verify, smtps verify): this listener does not check client certificates',
  ]);
});

test('action options Postern does not apply, wrapper and srs, draw warnings with their position', () => {
  assert.deepEqual(lines('action m mda "/usr/bin/procmail" wrapper w\naction r relay srs\nmatch for local action m\nmatch for any action r\n'), [
    'smtpd.conf:1:34: warning: "wrapper" cannot be honoured: Postern has no "mda wrapper" statement, so deliveries through this action are deferred (4.3.5) until it is removed',
    'smtpd.conf:2:16: warning: "srs" is not applied yet: the envelope sender of relayed mail is not rewritten, so forwarded mail may fail SPF at the next hop',
  ]);
});

test('a config without rules loads, with a warning', () => {
  assert.deepEqual(lines('listen on lo0\n'), ['smtpd.conf:1:1: warning: no accept or match rules: every recipient will be refused']);
});
