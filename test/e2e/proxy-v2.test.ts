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
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { requireTool, run } from '../helpers/tools.js';
import { proxyV2Header } from '../helpers/proxy-v2.js';

let d: DaemonHandle;
let haproxy: ChildProcess;
let haproxyPort: number;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

before(async () => {
  d = await startDaemon(`queue path "$DIR/spool"
hostname "mx.test.example"
smtp early-talker allow
table names { 203.0.113.7 = edge.test.example }
listen on 127.0.0.1 port 0 proxy-v2 hostnames <names>
action "local" mbox
match from any for domain "test.example" action "local"
`);
  haproxyPort = await freePort();
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
  for (let i = 0; i < 50; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = netConnect({ host: '127.0.0.5', port: haproxyPort }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
});
after(async () => {
  haproxy?.kill('SIGTERM');
  await d.stop();
  d.cleanup();
});

/** Send `first` on connect, then the lines after the greeting; all that came back. */
function converse(first: Buffer, lines: readonly string[]): Promise<string> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port: d.port }, () => s.write(first));
    let got = '';
    let sent = false;
    s.on('data', (b: Buffer) => {
      got += b.toString();
      if (!sent && got.includes('\r\n')) {
        sent = true;
        if (lines.length === 0) s.end();
        else s.write(lines.map((l) => `${l}\r\n`).join(''));
      }
      if (got.includes('221 ')) s.end();
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
  });
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
  const header = proxyV2Header(1, 0x11, [192, 0, 2, 55, 203, 0, 113, 7, 0x11, 0x5c, 0x00, 0x19]);
  const got = await converse(header, ['EHLO c.example', 'QUIT']);
  assert.match(got, /^220 edge\.test\.example /);
  assert.match(got, /250-edge\.test\.example Hello c\.example \[192\.0\.2\.55\]/);
});

test('LOCAL (a health check) keeps the connection\'s own address', async () => {
  const got = await converse(proxyV2Header(0, 0x00, []), ['EHLO check.example', 'QUIT']);
  assert.match(got, /250-mx\.test\.example Hello check\.example \[127\.0\.0\.1\]/);
});

test('bytes in the same segment as the header are the session\'s (early talk is allowed on this daemon)', async () => {
  const got = await converse(Buffer.concat([proxyV2Header(0, 0x00, []), Buffer.from('EHLO early.example\r\nQUIT\r\n')]), ['NOOP']);
  assert.match(got, /^220 mx\.test\.example [^\r]*\r\n250-mx\.test\.example Hello early\.example \[127\.0\.0\.1\]/);
  assert.match(got, /221 /);
});

test('no header, or not a v2 one: closed before any greeting, and logged', async () => {
  for (const first of [Buffer.from('EHLO plain.example\r\n'), Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1 25\r\n')]) {
    const got = await converse(first, []);
    assert.equal(got, '', `got ${JSON.stringify(got)}`);
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
  const open = (): Promise<Socket> => new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port: small.port }, () => resolve(s));
    s.on('error', () => undefined);
  });
  const closedSoon = (s: Socket): Promise<boolean> => new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), 1500);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
  try {
    const waiting = [await open(), await open()];
    await new Promise((r) => setTimeout(r, 200));
    const third = await open();
    assert.equal(await closedSoon(third), true, 'a third silent connection is closed at once');
    await small.waitForLog(/proxy-failed .*2 connections already wait for their PROXY header \(limit 2\)/);
    // One of them says who it is: it is served, and there is room again.
    const greeted = new Promise<string>((resolve) => waiting[0]?.once('data', (b: Buffer) => resolve(b.toString())));
    waiting[0]?.write(proxyV2Header(0, 0x00, []));
    assert.match(await greeted, /^220 /);
    const fourth = await open();
    assert.equal(await closedSoon(fourth), false, 'room again once a header came');
    for (const s of [...waiting, fourth]) s.destroy();
  } finally {
    await small.stop();
    small.cleanup();
  }
});
