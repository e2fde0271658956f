/*
 * test/e2e/proxy-v2.test.ts — a listener with `proxy-v2` behind a real
 * HAProxy (`send-proxy-v2`), and fed hand-made headers: the session, its
 * Received: header and the log see the client the proxy speaks for; a
 * connection without a valid header is closed before any greeting.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { freePort, waitListening } from '../helpers/mta-peers.js';
import { proxyV2Header } from '../helpers/proxy-v2.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { requireTool, run } from '../helpers/tools.js';

let d: DaemonHandle;
let haproxy: ChildProcess;
let haproxyPort: number;

before(async () => {
  d = await startDaemon(`queue path "$DIR/spool"
hostname "mx.test.example"
smtp early-talker allow
table names { 203.0.113.7 = edge.test.example }
listen on 127.0.0.1 port 0 proxy-v2 hostnames <names>
action "local" mbox
match from any for domain "test.example" action "local"
`);
  haproxyPort = await freePort(['127.0.0.5']);
  const cfg = join(d.dir, 'haproxy.cfg');
  writeFileSync(cfg, `global
  log stderr format raw local0 err
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend smtp
  bind 127.0.0.5:${haproxyPort}
  default_backend postern
backend postern
  server p1 127.0.0.1:${d.port} send-proxy-v2
`);
  haproxy = spawn(requireTool('haproxy'), ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitListening('127.0.0.5', haproxyPort);
});
after(async () => {
  haproxy?.kill('SIGTERM');
  await d.stop();
  d.cleanup();
});

/** A client that starts by sending `first` (a PROXY header, perhaps with more). */
async function posing(first: Buffer, port = d.port): Promise<RawClient> {
  const c = await RawClient.open(port);
  c.send(first);
  return c;
}

test('swaks through HAProxy (send-proxy-v2): Received: and the log name the client, not the proxy', async () => {
  const r = await run(requireTool('swaks'), ['--server', '127.0.0.5', '--port', String(haproxyPort), '--local-interface', '127.0.0.9', '--from', 'a@client.example', '--to', 'root@test.example', '--helo', 'client.example', '--header', 'Subject: via haproxy']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const m = (await spoolMessages(`${d.dir}/spool`)).find((x) => x.body.includes('Subject: via haproxy'));
  assert.ok(m);
  assert.match(m.body, /^Received: from client\.example \(\S+ \[127\.0\.0\.9\]\)/);
  assert.equal(m.stored.envelope.client.address, '127.0.0.9');
  await d.waitForLog(/smtp connected .*address=127\.0\.0\.9/);
});

test('a hand-made header: the client 192.0.2.55, reaching 203.0.113.7, which hostnames names', async () => {
  const c = await posing(proxyV2Header(1, 0x11, [192, 0, 2, 55, 203, 0, 113, 7, 0x11, 0x5c, 0x00, 0x19]));
  const [greeting, ehlo] = await dialogue(c, 'S: 220\nC: EHLO c.example\nS: 250\nC: QUIT\nS: 221');
  c.close();
  assert.match(greeting?.text ?? '', /^220 edge\.test\.example /);
  assert.match(ehlo?.lines[0] ?? '', /^250-edge\.test\.example Hello c\.example \[192\.0\.2\.55\]/);
});

test('LOCAL (a health check) keeps the connection\'s own address', async () => {
  const c = await posing(proxyV2Header(0, 0x00, []));
  const [, ehlo] = await dialogue(c, 'S: 220\nC: EHLO check.example\nS: 250\nC: QUIT\nS: 221');
  c.close();
  assert.match(ehlo?.lines[0] ?? '', /^250-mx\.test\.example Hello check\.example \[127\.0\.0\.1\]/);
});

test('bytes in the same segment as the header are the session\'s (early talk is allowed on this daemon)', async () => {
  const c = await posing(Buffer.concat([proxyV2Header(0, 0x00, []), Buffer.from('EHLO early.example\r\nQUIT\r\n')]));
  const [greeting, ehlo] = await dialogue(c, 'S: 220\nS: 250\nS: 221');
  c.close();
  assert.match(greeting?.text ?? '', /^220 mx\.test\.example /);
  assert.match(ehlo?.lines[0] ?? '', /^250-mx\.test\.example Hello early\.example \[127\.0\.0\.1\]/);
});

test('no header, or not a v2 one: closed before any greeting, and logged', async () => {
  for (const first of [Buffer.from('EHLO plain.example\r\n'), Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1 25\r\n')]) {
    const c = await posing(first);
    assert.equal(await c.waitClosed(), true);
    assert.equal(c.pending, '', `got ${JSON.stringify(c.pending)}`);
  }
  await d.waitForLog(/smtp proxy-failed .*no PROXY protocol v2 signature/);
});

test('connections that never send their header cannot pile up: at most the server\'s connection limit wait', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'smtpserver.conf'), 'PARAM MaxParallelConnections 2\n');
  const small = await startDaemon(`queue path "$DIR/spool"
hostname "mx.test.example"
smtpserver-conf "$DIR/smtpserver.conf"
listen on 127.0.0.1 port 0 proxy-v2
action "local" mbox
match from any for domain "test.example" action "local"
`, { dir });
  try {
    const waiting = [await RawClient.open(small.port), await RawClient.open(small.port)];
    await new Promise((r) => setTimeout(r, 200));
    const third = await RawClient.open(small.port);
    assert.equal(await third.waitClosed(1500), true, 'a third silent connection is closed at once');
    await small.waitForLog(/proxy-failed .*2 connections already wait for their PROXY header \(limit 2\)/);
    // One of them says who it is: it is served, and there is room again.
    waiting[0]?.send(proxyV2Header(0, 0x00, []));
    await dialogue(waiting[0] as RawClient, 'S: 220');
    const fourth = await RawClient.open(small.port);
    assert.equal(await fourth.waitClosed(1500), false, 'room again once a header came');
    for (const c of [...waiting, fourth]) c.close();
  } finally {
    await small.stop();
    small.cleanup();
  }
});
