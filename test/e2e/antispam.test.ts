/*
 * End to end: the checks at the door (src/antispam/) in the built smtpd,
 * with an nsd on 127.0.16.53 serving the DNS lists and the records, and
 * real clients (Python's smtplib, swaks) from addresses of 127.0.16.0/24:
 * DNSBL refusal naming the list, DNSWL allowlisting past greylisting,
 * RHSBL, HELO syntax, sender domain, a DNS failure that passes and is
 * logged, greylisting that survives a restart, a rate limit's 450, and
 * header checks that remove and refuse.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { startDaemon, basicConfig, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { startNsd, type NsdHandle } from '../helpers/nsd.js';
import { spoolMessages } from '../helpers/inproc.js';
import { python, requireTool, run } from '../helpers/tools.js';

let dns: NsdHandle;
let d: DaemonHandle;
let dir: string;

function config(): string {
  return basicConfig(`resolver "${dns.server}"
dnsbl "zen.test=127.0.0.[2..11]*3" "wl.test=127.0.0.[1..3]*-2"
dnsbl threshold 3
rhsbl "dbl.test=127.0.1.[2..99]"
check helo syntax reply 550
check sender-domain reply 550
greylist delay 1s allowlist-after 0
rate-limit messages 3 per 1h by client
header-checks "$DIR/header_checks"
`);
}

before(async () => {
  dns = await startNsd({
    address: '127.0.16.53',
    zones: {
      'zen.test': ['5.16.0.127 A 127.0.0.2', '8.16.0.127 A 127.0.0.4'],
      'wl.test': ['7.16.0.127 A 127.0.0.2', '13.16.0.127 A 127.0.0.3'],
      'dbl.test': ['spammy.example A 127.0.1.2'],
      'sender.test': ['@ MX 10 mx', 'mx A 127.0.16.2', 'alt A 127.0.16.3'],
    },
  });
  dir = tempDir();
  writeFileSync(`${dir}/header_checks`, '# test table\n/^Received:.*\\.domain\\.lan/ IGNORE\n/^Subject:.*casino/ REJECT No casino mail from $CLIENT_ADDR\n/^X-Spam-Flag: YES/ DISCARD\n/^X-Hold: yes/ HOLD held for a look\n/^X-Bulk:/ WARN\n');
  d = await startDaemon(config(), { dir });
});
after(async () => {
  await d?.stop();
  await dns?.close();
});

/** One smtplib transaction from SRC: prints "CODE MESSAGE" of the first refusal, or "ok". */
async function send(src: string, opts: { from?: string; helo?: string; to?: string; headers?: string } = {}): Promise<string> {
  const script = `
import smtplib
try:
    with smtplib.SMTP('127.0.0.1', ${d.port}, local_hostname=${JSON.stringify(opts.helo ?? 'client.sender.test')}, source_address=(${JSON.stringify(src)}, 0), timeout=20) as s:
        s.sendmail(${JSON.stringify(opts.from ?? 'alice@sender.test')}, [${JSON.stringify(opts.to ?? 'root@test.example')}], ${JSON.stringify((opts.headers ?? 'Subject: hello') + '\r\n\r\nbody\r\n')})
        print('ok')
except smtplib.SMTPRecipientsRefused as e:
    r = list(e.recipients.values())[0]
    print(r[0], r[1].decode())
except smtplib.SMTPResponseException as e:
    print(e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPServerDisconnected as e:
    print('disconnected', e)
`;
  const r = await run(python(), ['-c', script]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('a client the DNSBL lists is refused at connect with 554 5.7.1, naming the list', async () => {
  const out = await send('127.0.16.5');
  assert.match(out, /^554 5\.7\.1 Service unavailable; client \[127\.0\.16\.5\] blocked using zen\.test/);
});

test('greylisting defers a new triplet with 450 4.7.1, and the retry after the delay passes', async () => {
  assert.match(await send('127.0.16.9', { headers: 'Subject: grey' }), /^450 4\.7\.1 Greylisted/);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await send('127.0.16.9', { headers: 'Subject: grey' }), 'ok');
});

test('a DNSWL-listed client (negative weight) skips greylisting', async () => {
  assert.equal(await send('127.0.16.7', { headers: 'Subject: allowlisted' }), 'ok');
});

test('HELO syntax, sender domain and RHSBL refusals, with swaks', async () => {
  assert.match(await send('127.0.16.7', { helo: 'bad_name!' }), /^550 5\.5\.2 Helo command rejected/);
  assert.match(await send('127.0.16.7', { from: 'bob@nowhere.sender.test' }), /^550 5\.1\.8 Sender address rejected: domain nowhere\.sender\.test not found/);
  const swaks = requireTool('swaks');
  const r = await run(swaks, ['--server', '127.0.0.1', '--port', String(d.port), '--local-interface', '127.0.16.7', '--from', 'x@spammy.example', '--to', 'root@test.example', '--helo', 'client.sender.test', '--quit-after', 'MAIL']);
  assert.match(r.stdout, /<\*\* 550 5\.7\.1 Sender address rejected: spammy\.example is listed in dbl\.test/);
});

test('a sender domain the DNS cannot answer for passes, and the failure is logged', async () => {
  // nsd serves only its zones: "elsewhere.invalid" is REFUSED, a DNS failure, not "no such domain".
  assert.equal(await send('127.0.16.7', { from: 'carol@elsewhere.invalid', headers: 'Subject: dns down' }), 'ok');
  await d.waitForLog(/sender domain check could not be made \(passed\): elsewhere\.invalid/);
});

test('header checks: an internal Received: line is removed, a casino Subject: refused with 550 5.7.1', async () => {
  assert.equal(await send('127.0.16.10', { from: 'dave@sender.test', headers: 'Received: from secret-host.domain.lan by gw\r\nSubject: internal', to: 'root@test.example' }).then(async (o) => (o.startsWith('450') ? (await new Promise((r) => setTimeout(r, 1500)), send('127.0.16.10', { from: 'dave@sender.test', headers: 'Received: from secret-host.domain.lan by gw\r\nSubject: internal' })) : o)), 'ok');
  const m = (await spoolMessages(`${d.dir}/spool`)).find((x) => x.body.includes('Subject: internal'));
  assert.ok(m);
  assert.doesNotMatch(m.body, /secret-host/);
  assert.match(await send('127.0.16.7', { headers: 'Subject: best casino' }), /^550 5\.7\.1 No casino mail from 127\.0\.16\.7/);
});

test('header checks: DISCARD answers 250 and drops the message, HOLD keeps it on hold, WARN logs', async () => {
  assert.equal(await send('127.0.16.13', { headers: 'X-Spam-Flag: YES\r\nSubject: dropped' }), 'ok');
  await d.waitForLog(/smtp discarded session=\S+ msgid=\S+ from=<alice@sender\.test> reason="header checks \S+:4: DISCARD on \\"X-Spam-Flag: YES\\""/);
  assert.equal((await spoolMessages(`${d.dir}/spool`)).filter((x) => x.body.includes('Subject: dropped')).length, 0);
  assert.equal(await send('127.0.16.13', { headers: 'X-Bulk: 1\r\nX-Hold: yes\r\nSubject: kept' }), 'ok');
  await d.waitForLog(/smtp header-warning session=\S+ msgid=\S+ rule="\S+:6: X-Bulk: 1"/);
  await d.waitForLog(/smtp held session=\S+ msgid=\S+ reason="header checks \S+:5: HOLD on \\"X-Hold: yes\\": held for a look"/);
  assert.equal((await spoolMessages(`${d.dir}/spool`)).filter((x) => x.body.includes('Subject: kept')).length, 1);
});

test('a rate limit answers 450 4.7.1 past its count', async () => {
  // 127.0.16.7 has sent messages already (limit: 3 per hour).
  assert.match(await send('127.0.16.7', { headers: 'Subject: fourth' }), /^450 4\.7\.1 Error: too many messages from \[127\.0\.16\.7\]/);
});

test('greylisting state survives a daemon restart', async () => {
  assert.match(await send('127.0.16.11', { from: 'eve@sender.test', headers: 'Subject: restart' }), /^450 4\.7\.1 Greylisted/);
  await d.stop();
  d = await startDaemon(config(), { dir });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await send('127.0.16.11', { from: 'eve@sender.test', headers: 'Subject: restart' }), 'ok');
});
