/*
 * test/e2e/relay-mx.test.ts — MX routing through the real daemon, with a
 * real DNS server on loopback (test/helpers/dns-server.ts, npm dns2) named
 * by a `resolver "127.0.0.1:PORT"` statement:
 *
 *   multi.test     MX 10 mx1 (down), MX 20 mx2 (Postfix's smtp-sink): the
 *                  first is tried, refused, the second takes the mail;
 *   implicit.test  no MX, an A record: the implicit MX (RFC 5321 §5.1);
 *   dest.test      MX → a second Postern (its own process, another
 *                  hostname): per-recipient results in one transaction;
 *   nullmx.test    MX 0 "." (RFC 7505): an immediate DSN, 5.1.10, and no
 *                  connection; mail *from* that domain is refused at MAIL;
 *   (unlisted)     NXDOMAIN: an immediate DSN, 5.1.2;
 *   servfail.test  SERVFAIL: deferred (4.4.3), kept in the queue;
 *   loop.test      MX → our own hostname: 5.4.6, not sent to ourselves;
 *   greet.test     MX → a server that greets with our hostname: 5.4.6.
 *
 * The daemon sends to port 25 of MX hosts (RelayTuning.port has no
 * smtpd.conf statement), so every MX host here is a 127/8 address with a
 * server on port 25: that needs root, and the suite says so when skipped.
 * DSNs go to the local sender's mbox and are read with Python's mailbox and
 * email packages.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';
import { startSmtpSink, type Sink } from '../helpers/mta-peers.js';
import { IS_ROOT, countLog, dsnRecipients, findDsn, header, loopback, parseMbox, send, showQueue, waitFor, waitLog, type ParsedMail } from './relay-helpers.js';

const ME = userInfo().username;
const HOSTNAME = 'mx.relay.test';
const SENDER = `${ME}@${HOSTNAME}`;

function message(subject: string, to: string): string {
  return `From: ${SENDER}\nTo: ${to}\nSubject: ${subject}\n\nMX routing test: ${subject}\n`;
}

describe('MX routing through the daemon, DNS on loopback', { skip: IS_ROOT ? false : 'MX hosts are reached on port 25 (no smtpd.conf statement changes it): the servers standing in for them need root to listen there' }, () => {
  let dns: DnsServerHandle | undefined;
  let sink: Sink | undefined;
  let greeter: Sink | undefined;
  let other: DaemonHandle | undefined;
  let d: DaemonHandle | undefined;
  let dir = '';
  let otherDir = '';
  const addr = { down: '', up: '', other: '', greeter: '' };

  /** The DSNs (and other mail) delivered to the sender's mbox so far. */
  const mailbox = (): Promise<ParsedMail[]> => parseMbox(join(dir, 'mail', ME));
  /** The DSN in the sender's mbox that reports on `rcpt`. */
  function waitDsn(rcpt: string): Promise<ParsedMail> {
    return waitFor(
      async () => findDsn(await mailbox(), rcpt),
      () => `a DSN about ${rcpt} in the sender's mbox; log:\n${d?.logs.join('\n')}`,
    );
  }

  before(async () => {
    addr.down = await loopback(25);
    addr.up = await loopback(25);
    addr.other = await loopback(25);
    addr.greeter = await loopback(25);
    sink = await startSmtpSink(addr.up, 25, ['-h', 'mx2.multi.test']);
    greeter = await startSmtpSink(addr.greeter, 25, ['-h', HOSTNAME]);
    otherDir = tempDir('postern-relay-mx2-');
    other = await startDaemon(
      `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.dest.test"
listen on ${addr.other} port 25
action "local" mbox
match from any for domain "dest.test" action "local"
`,
      { deliver: true, dir: otherDir },
    );
    dns = await startDnsServer({
      'multi.test': [
        { type: 'MX', priority: 10, exchange: 'mx1.multi.test' },
        { type: 'MX', priority: 20, exchange: 'mx2.multi.test' },
      ],
      'mx1.multi.test': [{ type: 'A', address: addr.down }],
      'mx2.multi.test': [{ type: 'A', address: addr.up }],
      'implicit.test': [{ type: 'A', address: addr.up }],
      'dest.test': [{ type: 'MX', priority: 10, exchange: 'mx.dest.test' }],
      'mx.dest.test': [{ type: 'A', address: addr.other }],
      'nullmx.test': [{ type: 'MX', priority: 0, exchange: '.' }],
      'servfail.test': 'SERVFAIL',
      'loop.test': [{ type: 'MX', priority: 10, exchange: HOSTNAME }],
      [HOSTNAME]: [{ type: 'A', address: '127.0.0.1' }],
      'greet.test': [{ type: 'MX', priority: 10, exchange: 'mx.greet.test' }],
      'mx.greet.test': [{ type: 'A', address: addr.greeter }],
    });
    dir = tempDir('postern-relay-mx-');
    d = await startDaemon(
      `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "${HOSTNAME}"
listen on 127.0.0.1 port 0
resolver "${dns.server}"
resolver timeout 1s
action "local" mbox
action "relay" relay
match from local for local action "local"
match from local for any action "relay"
match from any for any reject
`,
      { deliver: true, dir },
    );
  });

  after(async () => {
    await d?.stop();
    d?.cleanup();
    await other?.stop();
    other?.cleanup();
    await sink?.close();
    await greeter?.close();
    await dns?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (otherDir) rmSync(otherDir, { recursive: true, force: true });
  });

  it('several MX records, the preferred one down: the next one takes the mail', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['bob@multi.test'], data: message('two mx', 'bob@multi.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery ok .*to=<bob@multi\.test>/);
    const failed = daemon.logs.findIndex((l) => l.startsWith('mta connection-failed') && l.includes(`address=${addr.down}:25`) && l.includes('host=mx1.multi.test'));
    const connected = daemon.logs.findIndex((l) => l.startsWith('mta connected') && l.includes(`address=${addr.up}:25`) && l.includes('host=mx2.multi.test'));
    assert.ok(failed >= 0 && connected > failed, `mx1 tried (and refused) before mx2:\n${daemon.logs.join('\n')}`);
    assert.match(daemon.logs[failed] ?? '', /ECONNREFUSED|refused/i);
    const [dump] = await waitFor(() => (sink as Sink).messages().length >= 1 && (sink as Sink).messages(), () => 'the message at mx2');
    assert.match(dump ?? '', /^X-Rcpt-Args: <bob@multi\.test>$/m);
    assert.match(dump ?? '', /\nSubject: two mx\n/);
    assert.match(await waitLog(daemon.logs, /mta delivery evpid=\S+ .*to=<bob@multi\.test> .*result=Ok/), /relay="mx2\.multi\.test \[/);
    assert.ok((dns as DnsServerHandle).queries().includes('MX multi.test'), 'the MX records came from the DNS server on loopback');
  });

  it('no MX record but an address: the domain itself is the mail exchanger (implicit MX)', async () => {
    const daemon = d as DaemonHandle;
    const before = (sink as Sink).messages().length;
    const t = await send({ port: daemon.port, from: SENDER, to: ['carol@implicit.test'], data: message('implicit mx', 'carol@implicit.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery ok .*to=<carol@implicit\.test>/);
    await waitFor(() => (sink as Sink).messages().length > before, () => 'the message at the implicit MX');
    // smtp-sink names its dumps minute + random number: find it by content, not by order.
    assert.ok((sink as Sink).messages().some((m) => /^X-Rcpt-Args: <carol@implicit\.test>$/m.test(m)));
  });

  it('to a second Postern: each recipient on its own (known user delivered, unknown one bounced with the remote 550 5.1.1)', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['root@dest.test', 'no-such-user@dest.test'], data: message('to the other postern', 'root@dest.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery ok .*to=<root@dest\.test>/);
    await waitLog(daemon.logs, /mta delivery permfail .*to=<no-such-user@dest\.test>/);
    const conn = await waitLog(daemon.logs, new RegExp(`mta connected address=${addr.other.replaceAll('.', '\\.')}:25 host=mx\\.dest\\.test`));
    assert.match(conn, /tls=none/, 'the second Postern offers no STARTTLS without a pki');
    // The other Postern stored it, under its own name, with ours in the trace.
    const other2 = other as DaemonHandle;
    await waitLog(other2.logs, /mda delivery ok .*to=<root@dest\.test>/);
    const [stored] = await parseMbox(join(otherDir, 'mail', 'root'));
    assert.ok(stored, 'the second Postern delivered to its root mbox');
    assert.equal(header(stored, 'subject'), 'to the other postern');
    const received = stored.headers.filter(([k]) => k.toLowerCase() === 'received').map(([, v]) => v);
    assert.equal(received.length, 2);
    assert.match(received[0] ?? '', /from mx\.relay\.test .*\sby mx\.dest\.test/s);
    assert.match(received[1] ?? '', /by mx\.relay\.test/);
    // The refused recipient comes back to the sender.
    const dsn = await waitDsn('no-such-user@dest.test');
    assert.equal(dsn.contentType, 'multipart/report');
    const rs = dsnRecipients(dsn);
    assert.equal(rs.length, 1, 'only the refused recipient is reported');
    assert.equal(rs[0]?.['Final-Recipient'], 'rfc822; no-such-user@dest.test');
    assert.equal(rs[0]?.['Action'], 'failed');
    assert.equal(rs[0]?.['Status'], '5.1.1');
    assert.equal(rs[0]?.['Remote-MTA'], 'dns; mx.dest.test');
    assert.match(rs[0]?.['Diagnostic-Code'] ?? '', /^smtp; 550 5\.1\.1 /);
  });

  it('a null MX (RFC 7505): an immediate permanent failure, 5.1.10, without connecting anywhere', async () => {
    const daemon = d as DaemonHandle;
    const connecting = countLog(daemon.logs, /^mta connecting/);
    const t = await send({ port: daemon.port, from: SENDER, to: ['dave@nullmx.test'], data: message('null mx', 'dave@nullmx.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    const line = await waitLog(daemon.logs, /mta delivery permfail .*to=<dave@nullmx\.test>/);
    assert.match(line, /attempts=1 /);
    assert.match(line, /stat="5\.1\.10 /);
    assert.equal(countLog(daemon.logs, /^mta connecting/), connecting, 'no connection for a null MX');
    const rs = dsnRecipients(await waitDsn('dave@nullmx.test'));
    assert.equal(rs[0]?.['Final-Recipient'], 'rfc822; dave@nullmx.test');
    assert.equal(rs[0]?.['Status'], '5.1.10');
  });

  it(
    'a sender in a null-MX domain is refused at MAIL FROM (RFC 7505 §4.2, 550 5.7.27)',
    async () => {
      const daemon = d as DaemonHandle;
      // MAIL only: no recipient, so nothing is queued if the sender is (wrongly) accepted.
      const t = await send({ port: daemon.port, from: 'eve@nullmx.test', to: [], data: '' });
      assert.equal(t.mail.code, 550, t.mail.text);
      assert.match(t.mail.text, /5\.7\.27/);
    },
  );

  it('NXDOMAIN: an immediate permanent failure, 5.1.2, reported to the sender', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['frank@nxdomain.test'], data: message('nxdomain', 'frank@nxdomain.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    const line = await waitLog(daemon.logs, /mta delivery permfail .*to=<frank@nxdomain\.test>/);
    assert.match(line, /stat="5\.1\.2 /);
    const dsn = await waitDsn('frank@nxdomain.test');
    assert.equal(header(dsn, 'to'), SENDER);
    const rs = dsnRecipients(dsn);
    assert.equal(rs[0]?.['Final-Recipient'], 'rfc822; frank@nxdomain.test');
    assert.equal(rs[0]?.['Status'], '5.1.2');
    assert.ok(dsn.returned?.some(([k, v]) => k === 'Subject' && v === 'nxdomain'), 'the original\'s header comes back');
  });

  it('SERVFAIL: a temporary failure (4.4.3), the envelope stays queued for a retry', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['gina@servfail.test'], data: message('servfail', 'gina@servfail.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    const line = await waitLog(daemon.logs, /mta delivery tempfail .*to=<gina@servfail\.test>/);
    assert.match(line, /stat="4\.4\.3 /);
    const q = await showQueue(join(dir, 'smtpd.conf'));
    const e = q.entries.find((x) => x.rcpt === 'gina@servfail.test');
    assert.ok(e, q.raw);
    assert.equal(e.state, 'deferred');
    assert.equal(e.retry, 1);
    assert.match(e.error, /4\.4\.3|servfail/i);
  });

  it('an MX that is our own hostname: 5.4.6, the mail is not sent to ourselves', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['hal@loop.test'], data: message('loop', 'hal@loop.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    const line = await waitLog(daemon.logs, /mta delivery permfail .*to=<hal@loop\.test>/);
    assert.match(line, /stat="5\.4\.6 .*loops back to myself/);
  });

  it('an MX host that greets us with our own hostname: 5.4.6 (a loop), nothing sent', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['ivan@greet.test'], data: message('greeted', 'ivan@greet.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    const line = await waitLog(daemon.logs, /mta delivery (permfail|tempfail) .*to=<ivan@greet\.test>/);
    assert.match(line, /mta delivery permfail .*stat="5\.4\.6 /);
    assert.equal((greeter as Sink).messages().length, 0);
  });
});
