/*
 * test/e2e/relay-seed002.test.ts — seed 002's configurations #2, #3 and #4
 * (Calomel's OpenSMTPD 4.6 how-to) run by the real daemon, end to end, with
 * the smarthost on loopback: "port and host changed, nothing else" (the
 * fixtures in test/fixtures/relay/ say what changed and why).
 *
 *   #2  local mail and mail for somehost.com through `procmail -f -`; root
 *       is aliased to a user (aliases.db made by makemap); everything else
 *       relayed via a central server: Postfix's smtp-sink.
 *   #3  the same local delivery; everything else relayed to a "gmail" that
 *       requires STARTTLS and AUTH: Python's aiosmtpd, with a certificate
 *       made by the test and credentials from secrets.db (makemap, the
 *       seed's "host user:password" line).
 *   #4  a second, "external" listener: mail for example.org from anywhere is
 *       delivered by procmail; outside clients cannot relay; local senders
 *       relay via the central server (smtp-sink).
 *
 * Local delivery runs as the recipient (the daemon runs as root here and
 * delivers through the deliver-as helper), so the test creates a real user
 * whose ~/.procmailrc files into a maildir; procmail reads it by itself, so
 * the mda command stays the seed's. That needs root: without it the local
 * legs are skipped, with the reason.
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { makeCert, startAiosmtpd, startSmtpSink, type Aiosmtpd, type Cert, type Sink } from '../helpers/mta-peers.js';
import { IS_ROOT, addUser, dsnRecipients, fixture, kernelPort, loopback, maildirFiles, makemap, parseMail, send, showQueue, waitFor, waitLog, type TestUser } from './relay-helpers.js';

const NEEDS_ROOT = IS_ROOT ? false : 'local delivery runs as the recipient: the test creates a real user (useradd), which needs root (CI runs as root)';

/** A message as a local program would hand it over. */
function message(subject: string, from: string, to: string, body = 'Hello from the seed 002 test.\n'): string {
  return `From: ${from}\nTo: ${to}\nSubject: ${subject}\nMessage-ID: <${Math.random().toString(36).slice(2)}@machine.domain.lan>\n\n${body}`;
}

/** Wait for a maildir to hold n messages; returns the files. */
function waitMaildir(user: TestUser, n: number, d: DaemonHandle): Promise<string[]> {
  return waitFor(
    () => {
      const f = maildirFiles(user.maildir);
      return f.length >= n && f;
    },
    () => `${n} message(s) in ${user.maildir}; daemon log:\n${d.logs.join('\n')}`,
  );
}

describe('seed 002 #2: procmail for local mail and somehost.com, relay via a central server', { skip: NEEDS_ROOT }, () => {
  let dir = '';
  let user: TestUser | undefined;
  let sink: Sink | undefined;
  let d: DaemonHandle | undefined;
  let relayHost = '';

  before(async () => {
    dir = tempDir('postern-relay-s2-');
    chmodSync(dir, 0o755);
    user = addUser(dir);
    // The seed: "root: calomel" in /etc/mail/aliases, then makemap -t aliases -o aliases.db aliases.
    writeFileSync(join(dir, 'aliases'), `root: ${user.name}\n`);
    await makemap(['-t', 'aliases', '-o', join(dir, 'aliases.db'), join(dir, 'aliases')]);
    relayHost = await loopback();
    const relayPort = await kernelPort(relayHost);
    sink = await startSmtpSink(relayHost, relayPort, ['-h', 'mailrelay.domain.lan']);
    d = await startDaemon(fixture('seed002-example2.conf', { RELAY_HOST: relayHost, RELAY_PORT: relayPort }), { deliver: true, dir });
  });

  after(async () => {
    await d?.stop();
    d?.cleanup();
    await sink?.close();
    user?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('mail for root@ (aliased to the user) is filed by procmail -f - through the user\'s .procmailrc', async () => {
    const u = user as TestUser;
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: `${u.name}@machine.domain.lan`, to: ['root@machine.domain.lan'], data: message('for root', `${u.name}@machine.domain.lan`, 'root@machine.domain.lan') });
    assert.equal(t.rcpts[0]?.code, 250, t.rcpts[0]?.text);
    assert.equal(t.data?.code, 250, t.data?.text);
    const [file] = await waitMaildir(u, 1, daemon);
    const m = await parseMail(file as string);
    assert.equal(m.subject, 'for root');
    const h = new Map(m.headers.map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(h.get('return-path'), `<${u.name}@machine.domain.lan>`);
    // As OpenSMTPD's mda: Delivered-To is the address the mail was sent to; the alias decided whose mailbox it is.
    assert.equal(h.get('delivered-to'), 'root@machine.domain.lan');
    assert.equal(statSync(file as string).uid, u.uid, 'procmail ran as the user root is aliased to, and wrote as that user');
    assert.match(h.get('received') ?? '', /by machine\.domain\.lan/);
    assert.equal(m.body.trim(), 'Hello from the seed 002 test.');
    assert.match(readFileSync(join(u.home, 'procmail.log'), 'utf8'), /Subject: for root/, 'procmail logged its delivery');
    await waitLog(daemon.logs, /mda delivery ok .*to=<root@machine\.domain\.lan> .*stat="2\.0\.0 mda: delivered"/);
  });

  it('mail for USER@somehost.com is delivered locally by procmail too', async () => {
    const u = user as TestUser;
    const daemon = d as DaemonHandle;
    const seen = new Set(maildirFiles(u.maildir));
    const before = seen.size;
    const t = await send({ port: daemon.port, from: 'root@machine.domain.lan', to: [`${u.name}@somehost.com`], data: message('for somehost', 'root@machine.domain.lan', `${u.name}@somehost.com`) });
    assert.equal(t.data?.code, 250, t.data?.text);
    const files = await waitMaildir(u, before + 1, daemon);
    // procmail names maildir files time.pid_n.host: within one second, sorting by name does not put the newest last.
    const m = await parseMail(files.find((f) => !seen.has(f)) as string);
    assert.equal(m.subject, 'for somehost');
    assert.equal(new Map(m.headers.map(([k, v]) => [k.toLowerCase(), v])).get('delivered-to'), `${u.name}@somehost.com`);
    assert.equal(sink?.messages().length, 0, 'nothing was relayed');
  });

  it('mail for anywhere else is relayed via the central server (smtp-sink), intact', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: 'root@machine.domain.lan', to: ['someone@far.example', 'other@far.example'], data: message('relayed', 'root@machine.domain.lan', 'someone@far.example', 'line one\n.leading dot\nline three\n') });
    assert.deepEqual(t.rcpts.map((r) => r.code), [250, 250]);
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery ok .*to=<other@far\.example>/);
    await waitLog(daemon.logs, /mta delivery ok .*to=<someone@far\.example>/);
    const dumps = await waitFor(() => (sink as Sink).messages().length >= 1 && (sink as Sink).messages(), () => 'the smarthost dump');
    assert.equal(dumps.length, 1, 'one transaction for both recipients');
    const dump = dumps[0] as string;
    assert.match(dump, /^X-Mail-Args: <root@machine\.domain\.lan>/m);
    assert.match(dump, /^X-Rcpt-Args: <someone@far\.example>/m);
    assert.match(dump, /^X-Rcpt-Args: <other@far\.example>/m);
    assert.match(dump, /^X-Helo-Args: machine\.domain\.lan$/m, 'EHLO with the configured hostname');
    assert.match(dump, /\nSubject: relayed\n/);
    assert.match(dump, /\nline one\n\.leading dot\nline three\n/, 'dot-stuffing undone by the server: the content is intact');
    const relayLine = await waitLog(daemon.logs, /mta delivery evpid=\S+ from=<root@machine\.domain\.lan> to=<someone@far\.example> .*result=Ok/);
    assert.match(relayLine, new RegExp(`relay="${relayHost.replaceAll('.', '\\.')} \\[${relayHost.replaceAll('.', '\\.')}\\]"`));
  });

  it('a client from outside (another address) may not relay, nor deliver: the seed listens for local senders only', async () => {
    const daemon = d as DaemonHandle;
    const outside = await loopback();
    const t = await send({ port: daemon.port, localAddress: outside, from: 'spammer@outside.example', to: ['victim@far.example', `${(user as TestUser).name}@somehost.com`], data: 'x' });
    assert.equal(t.mail.code, 250);
    assert.deepEqual(t.rcpts.map((r) => r.code), [550, 550], t.rcpts.map((r) => r.text).join(' | '));
    assert.match(t.rcpts[0]?.text ?? '', /5\.7\.1/);
  });
});

describe('seed 002 #3: relay to "gmail" over STARTTLS with AUTH from secrets.db', () => {
  let dir = '';
  let user: TestUser | undefined;
  let gmail: Aiosmtpd | undefined;
  let cert: Cert | undefined;
  let d: DaemonHandle | undefined;
  let relayHost = '';
  let relayPort = 0;
  const login = 'calomel@gmail.example';
  // A password with a colon and a dollar sign: only the first colon separates user from password.
  const password = 'pa:ss$word';

  /** The seed's maps in `folder`: aliases.db and secrets.db ("host user:password", chmod 600), made by makemap. */
  async function maps(folder: string): Promise<void> {
    writeFileSync(join(folder, 'aliases'), `root: ${user?.name ?? 'root'}\n`);
    await makemap(['-t', 'aliases', '-o', join(folder, 'aliases.db'), join(folder, 'aliases')]);
    // The seed: "smtp.gmail.com GMAIL_USERNAME@gmail.com:GMAIL_PASSWORD", chmod 600, makemap -o secrets.db secrets.
    writeFileSync(join(folder, 'secrets'), `${relayHost} ${login}:${password}\n`, { mode: 0o600 });
    await makemap(['-o', join(folder, 'secrets.db'), join(folder, 'secrets')]);
  }

  before(async () => {
    dir = tempDir('postern-relay-s3-');
    chmodSync(dir, 0o755);
    if (IS_ROOT) user = addUser(dir);
    relayHost = await loopback();
    relayPort = await kernelPort(relayHost);
    await maps(dir);
    cert = makeCert(relayHost, [], [relayHost]);
    gmail = await startAiosmtpd({ mode: 'starttls', cert, address: relayHost, port: relayPort, user: login, password });
    // The certificate is self-signed: Node's own mechanism for an extra trusted CA (there is no relay `ca` statement yet).
    d = await startDaemon(fixture('seed002-example3.conf', { RELAY_HOST: relayHost, RELAY_PORT: relayPort }), { deliver: true, dir, env: { NODE_EXTRA_CA_CERTS: cert.cert } });
  });

  after(async () => {
    await d?.stop();
    d?.cleanup();
    await gmail?.close();
    user?.remove();
    if (cert) rmSync(cert.dir, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('relays over verified STARTTLS and authenticates with the secrets.db credentials', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: 'root@machine.domain.lan', to: ['friend@gmail.example'], data: message('via gmail', 'root@machine.domain.lan', 'friend@gmail.example') });
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery ok .*to=<friend@gmail\.example>/);
    const [rec] = (gmail as Aiosmtpd).messages();
    assert.ok(rec, 'aiosmtpd received the message');
    assert.equal(rec.tls, true);
    assert.equal(rec.auth, login);
    assert.equal(rec.mail_from, 'root@machine.domain.lan');
    assert.deepEqual(rec.rcpt_tos, ['friend@gmail.example']);
    assert.equal(rec.helo, 'machine.domain.lan');
    assert.match(rec.content, /\r\nSubject: via gmail\r\n/);
    const connected = await waitLog(daemon.logs, /mta connected .*tls=TLSv1\.[23]/);
    assert.match(connected, /verified=yes/, 'the certificate was verified, not skipped');
    assert.match(connected, new RegExp(`auth=${login.replaceAll('.', '\\.')}`));
    assert.ok(!daemon.logs.some((l) => l.includes(password)), 'the password never reaches the log');
  });

  it('a recipient the server refuses comes back to the local sender as a DSN (procmail files it)', { skip: NEEDS_ROOT }, async () => {
    const daemon = d as DaemonHandle;
    const u = user as TestUser;
    // aiosmtpd refuses recipients starting with "refuse" (550 5.1.1), accepts the others.
    const t = await send({ port: daemon.port, from: `${u.name}@machine.domain.lan`, to: ['refuse-me@gmail.example', 'ok@gmail.example'], data: message('partly refused', `${u.name}@machine.domain.lan`, 'refuse-me@gmail.example') });
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery permfail .*to=<refuse-me@gmail\.example>/);
    await waitLog(daemon.logs, /mta delivery ok .*to=<ok@gmail\.example>/);
    const [file] = await waitMaildir(u, 1, daemon);
    const dsn = await parseMail(file as string);
    assert.equal(dsn.contentType, 'multipart/report');
    assert.equal(dsn.reportType, 'delivery-status');
    const [rcpt, ...more] = dsnRecipients(dsn);
    assert.equal(more.length, 0, 'only the refused recipient is reported');
    assert.equal(rcpt?.['Final-Recipient'], 'rfc822; refuse-me@gmail.example');
    assert.equal(rcpt?.['Action'], 'failed');
    assert.equal(rcpt?.['Status'], '5.1.1');
    assert.match(rcpt?.['Diagnostic-Code'] ?? '', /^smtp; 550 5\.1\.1 .*User unknown/);
    assert.equal(rcpt?.['Remote-MTA'], `dns; ${relayHost}`);
  });

  it('without the self-signed certificate trusted, `tls` refuses it: deferred (4.7.5), no credentials sent', async () => {
    const other = tempDir('postern-relay-s3b-');
    let untrusting: DaemonHandle | undefined;
    try {
      await maps(other);
      untrusting = await startDaemon(fixture('seed002-example3.conf', { RELAY_HOST: relayHost, RELAY_PORT: relayPort }), { deliver: true, dir: other, env: { NODE_EXTRA_CA_CERTS: '' } });
      const before = (gmail as Aiosmtpd).messages().length;
      const t = await send({ port: untrusting.port, from: 'root@machine.domain.lan', to: ['friend@gmail.example'], data: message('untrusted', 'root@machine.domain.lan', 'friend@gmail.example') });
      assert.equal(t.data?.code, 250, t.data?.text);
      const line = await waitLog(untrusting.logs, /mta delivery tempfail .*to=<friend@gmail\.example>/);
      assert.match(line, /stat="4\.7\.5 /);
      assert.ok(!untrusting.logs.some((l) => /mta connected/.test(l)), 'no session was established');
      assert.equal((gmail as Aiosmtpd).messages().length, before);
      const q = await showQueue(join(other, 'smtpd.conf'));
      assert.equal(q.entries.find((e) => e.rcpt === 'friend@gmail.example')?.state, 'deferred', q.raw);
    } finally {
      await untrusting?.stop();
      untrusting?.cleanup();
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe('seed 002 #4: example.org from anywhere through procmail, relay for local senders only', { skip: NEEDS_ROOT }, () => {
  let dir = '';
  let user: TestUser | undefined;
  let sink: Sink | undefined;
  let d: DaemonHandle | undefined;
  let outsideAddr = '';

  before(async () => {
    dir = tempDir('postern-relay-s4-');
    chmodSync(dir, 0o755);
    user = addUser(dir);
    writeFileSync(join(dir, 'aliases'), `root: ${user.name}\n`);
    await makemap(['-t', 'aliases', '-o', join(dir, 'aliases.db'), join(dir, 'aliases')]);
    // The seed's virtual file (unused by its rules, as in OpenSMTPD 4.6), built as the seed builds it.
    writeFileSync(join(dir, 'virtual'), `bob_smith@example.org:  ${user.name}\nsupport@example.org:    ${user.name}\nabuse@example.org:      ${user.name}\n`);
    await makemap(['-t', 'aliases', '-o', join(dir, 'virtual.db'), join(dir, 'virtual')]);
    const relayHost = await loopback();
    const relayPort = await kernelPort(relayHost);
    sink = await startSmtpSink(relayHost, relayPort, ['-h', 'mailrelay.domain.lan']);
    outsideAddr = await loopback();
    d = await startDaemon(fixture('seed002-example4.conf', { RELAY_HOST: relayHost, RELAY_PORT: relayPort, OUTSIDE_ADDR: outsideAddr }), { deliver: true, dir });
    assert.equal(d.ports.length, 2, d.logs.join('\n'));
  });

  after(async () => {
    await d?.stop();
    d?.cleanup();
    await sink?.close();
    user?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('warns that the "virtual" map is unused, as the how-to declares it without a rule', () => {
    assert.ok((d as DaemonHandle).logs.some((l) => /map "virtual" is declared but never used/.test(l)), (d as DaemonHandle).logs.join('\n'));
  });

  it('mail for USER@example.org from outside, on the external listener, goes to procmail', async () => {
    const daemon = d as DaemonHandle;
    const u = user as TestUser;
    const client = await loopback();
    const t = await send({ port: daemon.ports[1] as number, host: outsideAddr, localAddress: client, from: 'someone@outside.example', to: [`${u.name}@example.org`], data: message('from outside', 'someone@outside.example', `${u.name}@example.org`) });
    assert.equal(t.rcpts[0]?.code, 250, t.rcpts[0]?.text);
    assert.equal(t.data?.code, 250, t.data?.text);
    const [file] = await waitMaildir(u, 1, daemon);
    const m = await parseMail(file as string);
    assert.equal(m.subject, 'from outside');
    const h = new Map(m.headers.map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(h.get('return-path'), '<someone@outside.example>');
    assert.match(h.get('received') ?? '', new RegExp(client.replaceAll('.', '\\.')), 'the outside client\'s address is in Received:');
  });

  it('an outside client cannot relay, nor reach local-only users, on either listener', async () => {
    const daemon = d as DaemonHandle;
    const client = await loopback();
    for (const [port, host] of [[daemon.ports[1] as number, outsideAddr], [daemon.port, '127.0.0.1']] as const) {
      const t = await send({ port, host, localAddress: client, from: 'spammer@outside.example', to: ['victim@far.example', 'root@machine.domain.lan', 'nobody-such-user@example.org'], data: 'x' });
      assert.deepEqual(t.rcpts.map((r) => r.code), [550, 550, 550], `${host}: ${t.rcpts.map((r) => r.text).join(' | ')}`);
      assert.match(t.rcpts[0]?.text ?? '', /5\.7\.1/, 'relaying denied');
      assert.match(t.rcpts[2]?.text ?? '', /5\.1\.1/, 'unknown user in our domain');
    }
    assert.equal(sink?.messages().length, 0);
  });

  it('a local sender relays via the central server (smtp-sink); root@ still reaches the user through the alias', async () => {
    const daemon = d as DaemonHandle;
    const u = user as TestUser;
    const before = maildirFiles(u.maildir).length;
    const t = await send({ port: daemon.port, from: `${u.name}@machine.domain.lan`, to: ['friend@far.example', 'root@machine.domain.lan'], data: message('local sender', `${u.name}@machine.domain.lan`, 'friend@far.example') });
    assert.deepEqual(t.rcpts.map((r) => r.code), [250, 250]);
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery ok .*to=<friend@far\.example>/);
    const [dump] = await waitFor(() => (sink as Sink).messages().length >= 1 && (sink as Sink).messages(), () => 'the smarthost dump');
    assert.match(dump ?? '', /^X-Rcpt-Args: <friend@far\.example>/m);
    assert.doesNotMatch(dump ?? '', /X-Rcpt-Args: <root/m, 'the local recipient is not relayed');
    await waitMaildir(u, before + 1, daemon);
  });
});
