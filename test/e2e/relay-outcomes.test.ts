/*
 * test/e2e/relay-outcomes.test.ts — what happens to relayed mail, through
 * the real daemon, against real servers on loopback. One daemon; each test
 * has its own recipient domain routed to its own smarthost:
 *
 *   split.test / refused.test  two smtp-sinks, the second rejecting RCPT
 *                  (-f RCPT): one recipient delivered, the other bounced;
 *   mixed.test     aiosmtpd accepting, deferring (450) and refusing (550)
 *                  recipients of one transaction: each on its own;
 *   soft.test      smtp-sink deferring RCPT (-r RCPT), then a well-behaved
 *                  smtp-sink on the same port: `smtpctl schedule` retries
 *                  and the mail is delivered;
 *   hard.test      smtp-sink refusing the message after the final dot
 *                  (-f .): a DSN back to the local sender, read with
 *                  Python's email package;
 *   tls.test       `relay host smtp+tls://…` to smtp-sink, which offers no
 *                  STARTTLS: deferred, as `smtpctl show queue` shows;
 *   drop.test      smtp-sink hanging up after the final dot without a reply
 *                  (-q .): deferred as a possible duplicate, then retried by
 *                  ETRN and delivered.
 * The local sender is the user running the tests; DSNs land in its mbox.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { makeCert, startAiosmtpd, startSmtpSink, type Aiosmtpd, type Cert, type Sink } from '../helpers/mta-peers.js';
import { countLog, dsnRecipients, etrn, findDsn, header, kernelPort, loopback, parseMbox, send, showQueue, smtpctl, waitFor, waitLog, type ParsedMail } from './relay-helpers.js';

const ME = userInfo().username;
const HOSTNAME = 'mx.outcomes.test';
const SENDER = `${ME}@${HOSTNAME}`;

interface Peer {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

function message(subject: string, to: string): string {
  return `From: ${SENDER}\nTo: ${to}\nSubject: ${subject}\nMessage-ID: <${subject.replaceAll(' ', '-')}@${HOSTNAME}>\n\nOutcome test: ${subject}\n`;
}

/** The dumps of a sink, once it has at least n. */
function sinkMessages(s: Sink, n: number, what: string): Promise<string[]> {
  return waitFor(() => s.messages().length >= n && s.messages(), () => `${n} message(s) at ${what}`);
}

describe('relay outcomes through the daemon', () => {
  let dir = '';
  let d: DaemonHandle | undefined;
  let cert: Cert | undefined;
  let mixed: Aiosmtpd | undefined;
  const sinks = new Map<string, Sink>();
  const peers = new Map<string, Peer>();
  const conf = (): string => join(dir, 'smtpd.conf');

  const mailbox = (): Promise<ParsedMail[]> => parseMbox(join(dir, 'mail', ME));
  /** The DSN in the sender's mbox that reports on `rcpt`. */
  function waitDsn(rcpt: string): Promise<ParsedMail> {
    return waitFor(
      async () => findDsn(await mailbox(), rcpt),
      () => `a DSN about ${rcpt} in ${ME}'s mbox; log:\n${d?.logs.join('\n')}`,
    );
  }

  async function sink(name: string, args: readonly string[] = []): Promise<Sink> {
    const p = peers.get(name) as Peer;
    const s = await startSmtpSink(p.host, p.port, ['-h', `${name}.smarthost.test`, ...args]);
    sinks.set(name, s);
    return s;
  }

  before(async () => {
    dir = tempDir('postern-relay-out-');
    for (const name of ['split', 'refused', 'mixed', 'soft', 'hard', 'tls', 'drop']) {
      const host = await loopback();
      peers.set(name, { name, host, port: await kernelPort(host) });
    }
    await sink('split');
    await sink('refused', ['-f', 'RCPT', '-B', '550 5.1.1 Recipient address rejected: User unknown in local recipient table']);
    await sink('soft', ['-r', 'RCPT', '-b', '451 4.3.0 Temporary lookup failure, try again']);
    await sink('hard', ['-f', '.', '-B', '554 5.7.1 Message rejected: looks like spam']);
    await sink('tls');
    await sink('drop', ['-q', '.']);
    const m = peers.get('mixed') as Peer;
    cert = makeCert(m.host, [], [m.host]);
    mixed = await startAiosmtpd({ mode: 'starttls', cert, address: m.host, port: m.port, user: 'unused', password: 'unused', authRequired: false });
    const url = (name: string, scheme = 'smtp'): string => {
      const p = peers.get(name) as Peer;
      return `${scheme}://${p.host}:${p.port}`;
    };
    const domains = ['split', 'refused', 'mixed', 'soft', 'hard', 'tls', 'drop'];
    d = await startDaemon(
      `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "${HOSTNAME}"
listen on 127.0.0.1 port 0
action "local" mbox
action "split" relay host ${url('split')}
action "refused" relay host ${url('refused')}
action "mixed" relay host ${url('mixed', 'smtp+tls')}
action "soft" relay host ${url('soft')}
action "hard" relay host ${url('hard')}
action "tls" relay host ${url('tls', 'smtp+tls')}
action "drop" relay host ${url('drop')}
match from local for local action "local"
${domains.map((n) => `match from local for domain "${n}.test" action "${n}"`).join('\n')}
match from any for any reject
`,
      // aiosmtpd's certificate is self-signed: trusted through Node's NODE_EXTRA_CA_CERTS (no relay `ca` statement exists).
      { deliver: true, dir, env: { NODE_EXTRA_CA_CERTS: cert.cert } },
    );
  });

  after(async () => {
    await d?.stop();
    d?.cleanup();
    for (const s of sinks.values()) await s.close();
    await mixed?.close();
    if (cert) rmSync(cert.dir, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('partial failure across relays: smtp-sink takes one recipient, the other (smtp-sink -f RCPT) refuses; only that one is bounced', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['anna@split.test', 'bert@refused.test'], data: message('split', 'anna@split.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery ok .*to=<anna@split\.test>/);
    const failed = await waitLog(daemon.logs, /mta delivery permfail .*to=<bert@refused\.test>/);
    assert.match(failed, /stat="5\.1\.1 /);
    const [dump] = await sinkMessages(sinks.get('split') as Sink, 1, 'split');
    assert.match(dump ?? '', /^X-Rcpt-Args: <anna@split\.test>$/m);
    assert.equal((sinks.get('refused') as Sink).messages().length, 0);
    const rs = dsnRecipients(await waitDsn('bert@refused.test'));
    assert.deepEqual(rs.map((r) => r['Final-Recipient']), ['rfc822; bert@refused.test'], 'the delivered recipient is not in the report');
    assert.equal(rs[0]?.['Status'], '5.1.1');
    assert.match(rs[0]?.['Diagnostic-Code'] ?? '', /^smtp; 550 5\.1\.1 Recipient address rejected/);
    const q = await showQueue(conf());
    assert.ok(!q.entries.some((e) => e.rcpt.endsWith('@split.test') || e.rcpt.endsWith('@refused.test')), `nothing left in the queue: ${q.raw}`);
  });

  it('smtpctl show hosts and show routes: the relay just used, with its cached session', async () => {
    const daemon = d as DaemonHandle;
    const p = peers.get('split') as Peer;
    const t = await send({ port: daemon.port, from: SENDER, to: ['hosts@split.test'], data: message('hosts', 'hosts@split.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery ok .*to=<hosts@split\.test>/);
    // Within the cached session's idle time (5 s): it is a route with one idle session.
    const routes = await smtpctl(conf(), 'show', 'routes');
    assert.match(routes, new RegExp(`^destination=relay:smtp://${p.host.replace(/\./g, '\\.')}:${p.port} idle=1$`, 'm'), routes);
    const hosts = JSON.parse(await smtpctl(conf(), 'show', 'hosts', '--json')) as { host: string; address: string; state: string; sessions: number; messages: number }[];
    const split = hosts.find((h) => h.address === `${p.host}:${p.port}`);
    assert.ok(split, JSON.stringify(hosts));
    assert.equal(split.state, 'up');
    assert.ok(split.sessions >= 1 && split.messages >= 1, JSON.stringify(split));
    assert.match(await smtpctl(conf(), 'show', 'hosts'), new RegExp(`host=${p.host.replace(/\./g, '\\.')} address=${p.host.replace(/\./g, '\\.')}:${p.port} state=up `));
  });

  it('partial failure in one transaction (aiosmtpd): 250, 450 and 550 recipients each get their own outcome', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['ok@mixed.test', 'later-please@mixed.test', 'refuse-me@mixed.test'], data: message('mixed', 'ok@mixed.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery ok .*to=<ok@mixed\.test>/);
    assert.match(await waitLog(daemon.logs, /mta delivery tempfail .*to=<later-please@mixed\.test>/), /stat="4\.2\.1 /);
    assert.match(await waitLog(daemon.logs, /mta delivery permfail .*to=<refuse-me@mixed\.test>/), /stat="5\.1\.1 /);
    const recs = (mixed as Aiosmtpd).messages();
    assert.equal(recs.length, 1, 'one transaction');
    assert.deepEqual(recs[0]?.rcpt_tos, ['ok@mixed.test']);
    assert.equal(recs[0]?.tls, true);
    // The deferred one waits in the queue; the refused one is reported without waiting for it.
    const q = await showQueue(conf());
    const waiting = q.entries.filter((e) => e.rcpt.endsWith('@mixed.test'));
    assert.deepEqual(waiting.map((e) => [e.rcpt, e.state]), [['later-please@mixed.test', 'deferred']], q.raw);
    assert.match(waiting[0]?.error ?? '', /450 4\.2\.1/);
    const rs = dsnRecipients(await waitDsn('refuse-me@mixed.test'));
    assert.deepEqual(rs.map((r) => [r['Final-Recipient'], r['Action'], r['Status']]), [['rfc822; refuse-me@mixed.test', 'failed', '5.1.1']], 'the deferred recipient is not reported as failed');
  });

  it('4xx, then success: deferred (smtpctl show queue), retried by `smtpctl schedule`, delivered', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['carl@soft.test'], data: message('soft then ok', 'carl@soft.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    const msgid = /250 2\.0\.0 (\w+) /.exec(t.data?.text ?? '')?.[1] ?? '';
    assert.match(msgid, /^[0-9a-f]{8}$/);
    assert.match(await waitLog(daemon.logs, /mta delivery tempfail .*to=<carl@soft\.test>/), /stat="4\.3\.0 .*451 4\.3\.0 Temporary lookup failure/);
    const q = await showQueue(conf());
    const e = q.entries.find((x) => x.rcpt === 'carl@soft.test');
    assert.ok(e, q.raw);
    assert.equal(e.state, 'deferred');
    assert.equal(e.retry, 1);
    assert.ok(e.nextTry !== null && e.nextTry > Date.now() / 1000 + 60, 'the next try is minutes away (backoff), not now');
    // The server recovers: the same address and port, now accepting.
    await (sinks.get('soft') as Sink).close();
    const good = await sink('soft');
    assert.match(await smtpctl(conf(), 'schedule', msgid), /^1 envelope scheduled/);
    await waitLog(daemon.logs, /mta delivery ok .*to=<carl@soft\.test> .*attempts=2 /);
    const [dump] = await sinkMessages(good, 1, 'soft (recovered)');
    assert.match(dump ?? '', /\nSubject: soft then ok\n/);
    const after = await showQueue(conf());
    assert.ok(!after.entries.some((x) => x.rcpt === 'carl@soft.test'), after.raw);
  });

  it('5xx after the final dot: a DSN back to the local sender, parsed by Python\'s email package', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['dora@hard.test', 'emil@hard.test'], data: message('rejected as spam', 'dora@hard.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    await waitLog(daemon.logs, /mta delivery permfail .*to=<dora@hard\.test>/);
    await waitLog(daemon.logs, /mta delivery permfail .*to=<emil@hard\.test>/);
    await waitLog(daemon.logs, new RegExp(`bounce sent .*to=<${SENDER.replaceAll('.', '\\.')}>`));
    const dsn = await waitDsn('dora@hard.test');
    assert.equal((await mailbox()).filter((m) => findDsn([m], 'emil@hard.test')).length, 1, 'one report for both recipients');
    assert.equal(dsn.contentType, 'multipart/report');
    assert.equal(dsn.reportType, 'delivery-status');
    assert.equal(header(dsn, 'to'), SENDER);
    assert.match(header(dsn, 'from') ?? '', /MAILER-DAEMON@mx\.outcomes\.test/i);
    assert.match(header(dsn, 'auto-submitted') ?? '', /^auto-replied/);
    assert.ok(dsn.text.some((x) => /dora@hard\.test/.test(x)), 'the human-readable part names the recipient');
    assert.match(dsn.status[0]?.['Reporting-MTA'] ?? '', /^dns; ?mx\.outcomes\.test$/);
    const rs = dsnRecipients(dsn);
    assert.deepEqual(rs.map((r) => r['Final-Recipient']).sort(), ['rfc822; dora@hard.test', 'rfc822; emil@hard.test']);
    for (const r of rs) {
      assert.equal(r['Action'], 'failed');
      assert.equal(r['Status'], '5.7.1');
      assert.match(r['Diagnostic-Code'] ?? '', /^smtp; 554 5\.7\.1 Message rejected: looks like spam/);
      assert.equal(r['Remote-MTA'], `dns; ${(peers.get('hard') as Peer).host}`);
    }
    assert.ok(dsn.returned?.some(([k, v]) => k === 'Subject' && v === 'rejected as spam'), 'the original message (or its header) is returned');
    // The report itself was delivered as mail from <>, locally.
    await waitLog(daemon.logs, new RegExp(`mda delivery ok .*from=<> to=<${SENDER.replaceAll('.', '\\.')}>`));
  });

  it('TLS required (smtp+tls://) but not offered: deferred with 4.7.4, nothing sent in clear text', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['fred@tls.test'], data: message('needs tls', 'fred@tls.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    assert.match(await waitLog(daemon.logs, /mta delivery tempfail .*to=<fred@tls\.test>/), /stat="4\.7\.4 TLS is required, but was not offered by host /);
    const q = await showQueue(conf());
    const e = q.entries.find((x) => x.rcpt === 'fred@tls.test');
    assert.ok(e, q.raw);
    assert.equal(e.state, 'deferred');
    assert.match(e.error, /TLS is required, but was not offered/);
    // The text form, as an administrator reads it.
    const text = await smtpctl(conf(), 'show', 'queue');
    assert.match(text, /fred@tls\.test/);
    assert.equal((sinks.get('tls') as Sink).messages().length, 0, 'no message went out without TLS');
  });

  it('connection dropped after the final dot: deferred as a possible duplicate, retried (ETRN) and delivered', async () => {
    const daemon = d as DaemonHandle;
    const t = await send({ port: daemon.port, from: SENDER, to: ['gert@drop.test'], data: message('dropped', 'gert@drop.test') });
    assert.equal(t.data?.code, 250, t.data?.text);
    const line = await waitLog(daemon.logs, /mta delivery tempfail .*to=<gert@drop\.test>/);
    assert.match(line, /may have been delivered/);
    assert.equal(countLog(daemon.logs, /mta delivery permfail .*to=<gert@drop\.test>/), 0);
    const q = await showQueue(conf());
    assert.equal(q.entries.find((x) => x.rcpt === 'gert@drop.test')?.state, 'deferred', q.raw);
    await (sinks.get('drop') as Sink).close();
    const good = await sink('drop');
    const r = await etrn(daemon.port, 'drop.test');
    assert.equal(r.code, 250, r.text);
    await waitLog(daemon.logs, /mta delivery ok .*to=<gert@drop\.test> .*attempts=2 /);
    const [dump] = await sinkMessages(good, 1, 'drop (recovered)');
    assert.match(dump ?? '', /\nSubject: dropped\n/);
  });
});
