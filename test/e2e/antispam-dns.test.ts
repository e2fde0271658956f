/*
 * End to end: the checks at the door that depend on DNS, and the ones
 * that work without it — HELO forward-confirmed and resolvable (nsd on
 * 127.0.16.54 serving the reverse zone), a DNS server that never answers
 * (a UDP socket on 127.0.16.55 that reads and stays silent: DNSBL and the
 * HELO lookup time out, the client is accepted, the failures are logged),
 * the connection rate limit's 421, and header checks on mail relayed out
 * (smtp-header-checks: an internal Received: line does not leave; Postfix's
 * smtp-sink receives).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { startNsd } from '../helpers/nsd.js';
import { freePort, startSmtpSink } from '../helpers/mta-peers.js';
import { requireTool, run } from '../helpers/tools.js';

const HEAD = `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
`;
const RULES = `action "local" mbox
match from any for domain "test.example" action "local"
`;

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function daemon(conf: string, args: string[] = []): Promise<DaemonHandle> {
  const d = await startDaemon(conf, { dir: tempDir(), args });
  cleanups.push(() => d.stop());
  return d;
}

/** swaks from SRC with HELO; its whole transcript. */
async function swaks(port: number, src: string, helo: string, extra: string[] = []): Promise<string> {
  const r = await run(requireTool('swaks'), ['--server', '127.0.0.1', '--port', String(port), '--local-interface', src, '--helo', helo, '--from', 'a@sender.test', '--to', 'root@test.example', ...extra]);
  return r.stdout + r.stderr;
}

test('HELO must resolve and be the client\'s forward-confirmed name: 450 4.7.1 and 550 5.7.1 as configured', async () => {
  const dns = await startNsd({
    address: '127.0.16.54',
    zones: {
      'sender.test': ['client30 A 127.0.16.30', 'other A 127.0.16.31'],
      '16.0.127.in-addr.arpa': ['30 PTR client30.sender.test.'],
    },
  });
  cleanups.push(() => dns.close());
  const d = await daemon(`${HEAD}resolver "${dns.server}"\ncheck helo fcrdns reply 550\ncheck helo resolve\n${RULES}`);
  assert.match(await swaks(d.port, '127.0.16.30', 'client30.sender.test'), /<-  250 2\.0\.0 \S+ Message accepted/);
  assert.match(await swaks(d.port, '127.0.16.30', 'other.sender.test'), /<\*\* 550 5\.7\.1 Helo command rejected: "other\.sender\.test" is not the name of \[127\.0\.16\.30\]/);
  const d2 = await daemon(`${HEAD}resolver "${dns.server}"\ncheck helo resolve\n${RULES}`);
  assert.match(await swaks(d2.port, '127.0.16.31', 'nothere.sender.test'), /<\*\* 450 4\.7\.1 Helo command rejected: host "nothere\.sender\.test" not found/);
  assert.match(await swaks(d2.port, '127.0.16.31', 'other.sender.test'), /<-  250 2\.0\.0 \S+ Message accepted/);
});

test('a DNS server that never answers: DNSBL and HELO checks pass, and each failure is logged with the client address', async () => {
  const silent = createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.16.55', () => r()));
  cleanups.push(async () => silent.close());
  const d = await daemon(`${HEAD}resolver "127.0.16.55:${silent.address().port}"\nresolver timeout 300ms\ndnsbl "zen.test"\ndnsbl timeout 1s\ncheck helo resolve\n${RULES}`);
  assert.match(await swaks(d.port, '127.0.16.40', 'client.sender.test'), /<-  250 2\.0\.0 \S+ Message accepted/);
  await d.waitForLog(/address 127\.0\.16\.40: dnsbl lookup failed \(not counted\): .*zen\.test.*(ETIMEOUT|no answer)/);
  await d.waitForLog(/address 127\.0\.16\.40: helo check could not be made \(passed\)/);
});

test('the connection rate limit answers 421 4.7.0 and closes; with -v every command and reply is logged', async () => {
  const d = await daemon(`${HEAD}rate-limit connections 2 per 1h\n${RULES}`, ['-v']);
  for (let i = 0; i < 2; i++) assert.match(await swaks(d.port, '127.0.16.41', 'client.sender.test', ['--quit-after', 'CONNECT']), /<-  220 /);
  assert.match(await swaks(d.port, '127.0.16.41', 'client.sender.test', ['--quit-after', 'CONNECT']), /<\*\* 421 4\.7\.0 Error: too many connections from \[127\.0\.16\.41\]/);
  // Another client is not counted with it.
  assert.match(await swaks(d.port, '127.0.16.42', 'client.sender.test', ['--quit-after', 'CONNECT']), /<-  220 /);
  await d.waitForLog(/smtp failed-command session=\S+ address=127\.0\.16\.41 command="\(connect\)"|smtp failed-command session=\S+ address=127\.0\.16\.41 .*421 4\.7\.0/);
  await d.waitForLog(/trace io: session \S+: >>> 421 4\.7\.0 Error: too many connections/);
  assert.match(await swaks(d.port, '127.0.16.42', 'client.sender.test', ['--quit-after', 'HELO']), /<-  250 /);
  await d.waitForLog(/trace io: session \S+: <<< EHLO client\.sender\.test/);
});

test('smtp-header-checks: an internal Received: line is removed from mail relayed out', async () => {
  const port = await freePort(['127.0.16.20']);
  const sink = await startSmtpSink('127.0.16.20', port);
  cleanups.push(() => sink.close());
  const dir = tempDir();
  writeFileSync(`${dir}/smtp_header_checks`, '/^Received:.*\\.domain\\.lan/ IGNORE\n/^X-Internal:/ REPLACE X-Internal: removed\n');
  const d = await startDaemon(`${HEAD}smtp-header-checks "$DIR/smtp_header_checks"\naction "relay" relay host smtp+notls://127.0.16.20:${port}\nmatch from local for any action "relay"\n`, { dir, deliver: true });
  cleanups.push(() => d.stop());
  const out = await swaks(d.port, '127.0.0.1', 'client.sender.test', ['--to', 'someone@remote.example', '--add-header', 'Received: from secret-host.domain.lan by gw.domain.lan', '--add-header', 'X-Internal: payroll', '--header', 'Subject: leaving']);
  assert.match(out, /<-  250 2\.0\.0 /);
  const deadline = Date.now() + 20_000;
  let dump: string | undefined;
  while (dump === undefined && Date.now() < deadline) {
    dump = sink.messages().find((m) => m.includes('Subject: leaving'));
    if (dump === undefined) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(dump, 'the relayed message reached smtp-sink');
  assert.doesNotMatch(dump, /secret-host/);
  assert.match(dump, /X-Internal: removed/);
  assert.match(dump, /Received: from client\.sender\.test \(localhost \[127\.0\.0\.1\]\)/);
});
