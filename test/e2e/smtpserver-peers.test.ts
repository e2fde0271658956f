/*
 * ZMailer's `smtpserver` options and PARAMs about the client and its TLS
 * (seed 000), end to end through the detached daemon:
 *   -w + rcvd-whoson + policydb trust-whoson   the whoson server is asked at accept
 *   -g                                         the client's PTR name is believed unchecked
 *   tls-enforce-tls, tls-ask-cert, tls-CApath, tls-ccert-vd, tls-cipher-list, tlsloglevel
 *   allowsourceroute                           the route is kept as the original recipient
 *   TcpRcvBufferSize, TcpXmitBufferSize        the listening socket's buffers, seen with ss
 * Debian ships no whoson server: the one here is a small one in the test
 * (the protocol is three lines; net/whoson.ts says it). The DNS is a real
 * nsd on loopback; the TLS peer is Node's own TLS client with certificates
 * the test makes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { spawnSync } from 'node:child_process';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { join } from 'node:path';
import { ME, run, site, smtpSend, freePort, stopSmtpserver, waitForMbox } from '../helpers/smtpserver.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { makeCa, makeCert, makeClientCert } from '../helpers/certs.js';
import { startNsd } from '../helpers/nsd.js';
import { waitUntil } from '../helpers/sockets.js';

/** A whoson server that knows `known` (address → user) and says "not logged in" for the rest. */
async function whosonServer(known: Record<string, string>): Promise<{ server: Server; spec: string; asked: string[] }> {
  const asked: string[] = [];
  const server = createServer((c) => {
    let buf = '';
    c.on('data', (d) => {
      buf += d.toString('latin1');
      const m = /^QUERY (\S+)\r?\n\r?\n/.exec(buf);
      if (!m) return;
      const ip = m[1] as string;
      asked.push(ip);
      const user = known[ip];
      c.end(user !== undefined ? `+${user}\r\n\r\n` : '-Not Logged in\r\n\r\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, spec: `127.0.0.1:${(server.address() as { port: number }).port}`, asked };
}

async function rcptReply(port: number, from: string, rcpt: string): Promise<string> {
  const c = await RawClient.open(port, '127.0.0.1', from);
  await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<someone@client.example>\nS: 250');
  c.send(`RCPT TO:<${rcpt}>\r\n`);
  const r = await c.reply();
  c.close();
  return r.text;
}

test('-w: whoson is asked at accept; rcvd-whoson shows the user; policydb trust-whoson + lets a known client relay', async () => {
  const s = site('PARAM rcvd-whoson\n');
  // Only 127.0.0.1 relays by right; 127.0.0.2 and .3 are trusted when whoson knows them.
  writeFileSync(join(s.dir, 'db', 'smtp-policy.relay'), '[127.0.0.1]/32\n');
  appendFileSync(join(s.dir, 'db', 'smtp-policy.src'), '[127.0.0.2]\t\ttrust-whoson +\n[127.0.0.3]\t\ttrust-whoson +\n');
  const whoson = await whosonServer({ '127.0.0.1': 'alice', '127.0.0.2': 'bob' });
  const port = await freePort();
  const spool = join(s.dir, 'spool');
  const env = { ...s.env, WHOSON_SERVER: whoson.spec };
  try {
    const r = await run(['-C', s.conf, '-p', String(port), '-4', '-w', '-P', spool, '-l', join(s.dir, 'smtpserver.log')], { env });
    assert.equal(r.code, 0, r.stderr);
    const replies = await smtpSend(port, `${ME}@test.example`);
    assert.match(replies, /^250 2\.0\.0 \S+ Message accepted/m, replies);
    assert.match(await waitForMbox(s.dir, /over the wire/), /Received: from client\.example \(localhost \[127\.0\.0\.1\] whoson: alice\)/);

    assert.match(await rcptReply(port, '127.0.0.2', 'friend@elsewhere.example'), /^250 /, 'bob is logged in: 127.0.0.2 relays');
    assert.match(await rcptReply(port, '127.0.0.3', 'friend@elsewhere.example'), /^5\d\d /, 'nobody is logged in at 127.0.0.3: no relaying');
    // As root the SMTP side's lines reach the log through the privileged parent: wait for the last one.
    const logFile = join(s.dir, 'smtpserver.log');
    const log = await logWith(logFile, /smtp whoson .*address=127\.0\.0\.3 /);
    assert.match(log, /smtp whoson .*address=127\.0\.0\.2 user=bob/);
    assert.match(log, /smtp whoson .*address=127\.0\.0\.3 result=none/);
    assert.ok(whoson.asked.includes('127.0.0.3'));
  } finally {
    whoson.server.close();
    await stopSmtpserver(spool);
  }
});

test('-g (gullible): the client\'s PTR name is believed without the forward check; without -g it is not', async () => {
  const dns = await startNsd({ zones: { '0.0.127.in-addr.arpa': ['4 PTR liar.example.'], 'liar.example': ['@ A 192.0.2.1'] } });
  const s = site('', `resolver "${dns.server}"\n`);
  const spool = join(s.dir, 'spool');
  try {
    for (const gullible of [true, false]) {
      const port = await freePort();
      const r = await run(['-C', s.conf, '-p', String(port), '-4', ...(gullible ? ['-g'] : []), '-P', spool], { env: s.env });
      assert.equal(r.code, 0, r.stderr);
      const replies = await smtpSend(port, `${ME}@test.example`, { localAddress: '127.0.0.4' });
      assert.match(replies, /^250 2\.0\.0 /m, replies);
      const want = gullible ? /\(liar\.example \[127\.0\.0\.4\]\)/ : /\(unknown \[127\.0\.0\.4\]\)/;
      assert.match(await waitForMbox(s.dir, want), want);
      await stopSmtpserver(spool);
    }
  } finally {
    await stopSmtpserver(spool);
    await dns.close();
  }
});

/** EHLO, STARTTLS, the handshake with `tls`, then EHLO and MAIL: the replies after the handshake, or the handshake's error. */
async function starttls(port: number, tls: ConnectionOptions, from = '127.0.0.1'): Promise<{ replies?: string; error?: string }> {
  const c = await RawClient.open(port, '127.0.0.1', from);
  await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220');
  c.socket.removeAllListeners('data');
  return new Promise((resolve) => {
    const s = tlsConnect({ socket: c.socket, servername: 'mx.test.example', rejectUnauthorized: false, ...tls });
    let got = '';
    const script = ['EHLO client.example', 'MAIL FROM:<a@client.example>', 'QUIT'];
    let sent = 0;
    s.setEncoding('latin1');
    s.on('secureConnect', () => s.write(`${script[sent++] as string}\r\n`));
    s.on('data', (d: string) => {
      got += d;
      const n = got.split('\r\n').filter((l) => /^\d{3} /.test(l)).length;
      while (sent < n + 1 && sent < script.length) s.write(`${script[sent++] as string}\r\n`);
    });
    s.on('error', (e) => resolve({ error: e.message }));
    s.on('close', () => resolve({ replies: got }));
  });
}

/** Write `params` as smtpserver.conf and start the daemon with a session log; its port, spool and log file. */
async function startWith(s: { dir: string; env: NodeJS.ProcessEnv; conf: string }, params: string): Promise<{ port: number; spool: string; logFile: string }> {
  writeFileSync(s.conf, params);
  const port = await freePort();
  const spool = join(s.dir, 'spool');
  const logFile = join(s.dir, 'smtpserver.log');
  const r = await run(['-C', s.conf, '-p', String(port), '-4', '-P', spool, '-l', logFile], { env: s.env });
  assert.equal(r.code, 0, r.stderr);
  return { port, spool, logFile };
}

/** The log once every pattern matches it (as root, the SMTP side's lines reach the log through the privileged parent, a moment after the reply). */
async function logWith(logFile: string, ...patterns: RegExp[]): Promise<string> {
  await waitUntil(() => {
    const text = readFileSync(logFile, 'utf8');
    return patterns.every((re) => re.test(text));
  }, 5000);
  return readFileSync(logFile, 'utf8');
}

test('TLS PARAMs: tls-enforce-tls, tls-ask-cert with tls-CApath, tls-ccert-vd, tls-cipher-list, tlsloglevel', async () => {
  const s = site();
  const server = makeCert(s.dir, 'mx.test.example');
  const ca = makeCa(s.dir, 'Test Client CA');
  const client = makeClientCert(s.dir, 'client.example', ca);
  const capath = join(s.dir, 'capath');
  mkdirSync(capath);
  copyFileSync(ca.cert, join(capath, 'client-ca.pem'));
  writeFileSync(join(capath, 'README'), 'not a certificate\n');
  const { port, spool, logFile } = await startWith(s, `PARAM usetls\nPARAM tls-cert-file ${server.cert}\nPARAM tls-key-file ${server.key}\nPARAM tls-CApath ${capath}\nPARAM tls-ask-cert 1\nPARAM tls-ccert-vd 0\nPARAM tls-enforce-tls 1\nPARAM tls-cipher-list ECDHE-RSA-AES128-GCM-SHA256\nPARAM tlsloglevel 2\nPARAM rcvd-tls-mode\nPARAM rcvd-tls-peer\n`);
  try {

    // tls-enforce-tls: no mail before STARTTLS.
    const plain = await RawClient.open(port, '127.0.0.1');
    const p = await dialogue(plain, 'S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@client.example>\nS: 530\nC: QUIT\nS: 221');
    plain.close();
    assert.match(p[2]?.text ?? '', /^530 5\.7\.0 /);

    // tls-ask-cert: a certificate from the CA in tls-CApath verifies; none is fine too.
    const withCert = await starttls(port, { cert: readFileSync(client.cert), key: readFileSync(client.key), maxVersion: 'TLSv1.2' });
    assert.match(withCert.replies ?? withCert.error ?? '', /250 2\.1\.0/, JSON.stringify(withCert));
    const without = await starttls(port, { maxVersion: 'TLSv1.2' });
    assert.match(without.replies ?? without.error ?? '', /250 2\.1\.0/, JSON.stringify(without));

    // tls-cipher-list: TLS 1.2 with a cipher outside the list is refused.
    const other = await starttls(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' });
    assert.ok(other.error !== undefined || !/250 2\.1\.0/.test(other.replies ?? ''), JSON.stringify(other));

    const log = await logWith(logFile, /smtp tls .*verified=yes sni=/, /smtp tls .*peer=none sni=/);
    assert.match(log, /smtp tls .*cipher=ECDHE-RSA-AES128-GCM-SHA256 peer="?CN=client\.example"? issuer="?CN=Test Client CA"? verified=yes sni=mx\.test\.example/, log);
    assert.match(log, /smtp tls .*peer=none sni=mx\.test\.example/);
  } finally {
    await stopSmtpserver(spool);
  }
});

/** An intermediate CA signed by `ca` (CA:TRUE), for a chain of depth 1. */
function makeIntermediate(dir: string, name: string, ca: { cert: string; key: string }): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  for (const args of [
    ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr],
    ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', cert],
  ]) {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  return { cert, key };
}

test('tls-ccert-vd: a client chain longer than the depth is not counted as verified', async () => {
  const s = site();
  // Depth -1 is not a ZMailer value: 0 is the shortest (a certificate signed by the CA itself).
  writeFileSync(s.conf, 'PARAM tls-ccert-vd -1\n');
  const bad = await run(['-c', '-C', s.conf], { env: s.env });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /smtpserver\.conf:1/);

  const server = makeCert(s.dir, 'mx.test.example');
  const ca = makeCa(s.dir, 'RootCA');
  const direct = makeClientCert(s.dir, 'direct.example', ca);
  const inter = makeIntermediate(s.dir, 'IntermediateCA', ca);
  const chained = makeClientCert(s.dir, 'chained.example', inter);
  const { port, spool, logFile } = await startWith(s, `PARAM usetls\nPARAM tls-cert-file ${server.cert}\nPARAM tls-key-file ${server.key}\nPARAM tls-CAfile ${ca.cert}\nPARAM tls-ask-cert 1\nPARAM tls-ccert-vd 0\nPARAM tlsloglevel 1\n`);
  try {
    const one = await starttls(port, { cert: readFileSync(direct.cert), key: readFileSync(direct.key) });
    assert.match(one.replies ?? '', /250 2\.1\.0/, JSON.stringify(one));
    // The client sends its certificate and the intermediate: one intermediate is more than depth 0.
    const two = await starttls(port, { cert: Buffer.concat([readFileSync(chained.cert), readFileSync(inter.cert)]), key: readFileSync(chained.key) });
    assert.match(two.replies ?? '', /250 2\.1\.0/, 'asked for, not required: the session goes on');
    const log = await logWith(logFile, /peer="?CN=direct\.example/, /peer="?CN=chained\.example/);
    assert.match(log, /smtp tls .*peer="?CN=direct\.example"? .*verified=yes/, log);
    assert.match(log, /smtp tls .*peer="?CN=chained\.example"? .*verified=no/, log);
  } finally {
    await stopSmtpserver(spool);
  }
});

test('a bad tls-cipher-list: the daemon does not start, one line, exit status 1', async () => {
  const s = site();
  const server = makeCert(s.dir, 'mx.test.example');
  writeFileSync(s.conf, `PARAM usetls\nPARAM tls-cert-file ${server.cert}\nPARAM tls-key-file ${server.key}\nPARAM tls-cipher-list NO-SUCH-CIPHER\n`);
  const port = await freePort();
  const spool = join(s.dir, 'spool');
  try {
    const r = await run(['-C', s.conf, '-p', String(port), '-4', '-P', spool], { env: s.env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr.trim(), /cipher/i);
  } finally {
    await stopSmtpserver(spool);
  }
});

test('allowsourceroute: a source-routed recipient is delivered to its mailbox and the route is kept as its original recipient', async () => {
  const s = site('PARAM allowsourceroute\n');
  const batch = `EHLO bitnet.example\nMAIL FROM:<a@bitnet.example>\nRCPT TO:<@relay.one,@relay.two:${ME}@test.example>\nDATA\nSubject: routed\n\nrouted mail\n.\nQUIT\n`;
  const spool = join(s.dir, 'spool');
  const r = await run(['-C', s.conf, '-i', '-P', spool, '-l', join(s.dir, 'session.log')], { env: s.env, input: batch });
  assert.match(r.stdout, /250 2\.1\.5 /, r.stdout);
  assert.match(r.stdout, /250 2\.0\.0 /, r.stdout);
  assert.match(readFileSync(join(s.dir, 'session.log'), 'utf8'), new RegExp(`smtp source-route .*route="?@relay\\.one,@relay\\.two:${ME}@test\\.example"?`));
});

test('TcpRcvBufferSize / TcpXmitBufferSize: set on the listening socket, so every accepted connection has them (ss -tm shows them)', async () => {
  const s = site();
  const { port, spool, logFile } = await startWith(s, 'PARAM TcpRcvBufferSize 32768\nPARAM TcpXmitBufferSize 65536\n');
  try {
    assert.match(readFileSync(logFile, 'utf8'), /socket buffers receive 65536 send 131072 bytes/);
    const c = await RawClient.open(port, '127.0.0.1');
    await dialogue(c, 'S: 220');
    const ss = spawnSync('ss', ['-tmnH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
    c.close();
    assert.equal(ss.status, 0, ss.stderr);
    // skmem:(r…,rb<receive buffer>,t…,tb<send buffer>,…): the kernel doubles what was asked.
    assert.match(ss.stdout, /rb65536,/, ss.stdout);
    assert.match(ss.stdout, /tb131072,/, ss.stdout);
  } finally {
    await stopSmtpserver(spool);
  }
});
