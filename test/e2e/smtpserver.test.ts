/*
 * ZMailer's `smtpserver` command (seed 000) run as an administrator moving
 * from ZMailer runs it: the seed's command lines (ports and paths adapted),
 * the manual's sample smtpserver.conf, a BSMTP batch with a broken
 * transaction, inetd mode under socat and systemd-socket-activate, the
 * daemon that replaces its predecessor, the -R router, -a ident, and the
 * one-line errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startDaemon, tempDir, basicConfig } from '../helpers/daemon.js';
import { ME, SMTPSERVER, run, site, mbox, smtpSend, freePort } from '../helpers/smtpserver.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { makeCert } from '../helpers/certs.js';

const BATCH = `HELO bitnet.example
MAIL FROM:<a@bitnet.example>
RCPT TO:<${ME}@test.example>
DATA
Subject: one

first message
.
MAIL FROM:<broken
RCPT TO:<${ME}@test.example>
DATA
Subject: broken
HELO these lines are the broken message's text, not commands
.
MAIL FROM:<c@bitnet.example>
RCPT TO:<${ME}@test.example>
DATA
Subject: three

third
.
QUIT
`;

test('an unknown option, a missing value, an unbracketed -T: one line and exit status 1', async () => {
  for (const args of [['-x'], ['-p'], ['-i', '-T', '1.2.3.4'], ['-p', 'seventy'], ['-s', 'q']]) {
    const r = await run(args);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^smtpserver: /);
  }
  const v = await run(['-V']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^smtpserver \(Postern \d+\.\d+\.\d+\)/);
});

test('-c: the manual\'s sample smtpserver.conf (with PARAM policydb) loads; every start-up warning is printed', async () => {
  const s = site('PARAM TcpRcvBufferSize 32000\nPARAM DEBUGcmd\nPARAM rcvd-whoson\n');
  const r = await run(['-c', '-C', s.conf, '-g'], { env: s.env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'configuration OK\n');
  assert.doesNotMatch(r.stderr, /TcpRcvBufferSize/, 'the buffer sizes act (net/socket-buffers.ts)');
  assert.match(r.stderr, /PARAM DEBUGcmd: .*502/);
  assert.match(r.stderr, /PARAM rcvd-whoson without -w: nobody is asked/);
  assert.match(r.stderr, /-g: the client's name is what its PTR record says, not checked forward/);
});

test('a bad PARAM value: FILE:LINE: message, exit status 1', async () => {
  const s = site('PARAM maxsize lots\n');
  const r = await run(['-c', '-C', s.conf], { env: s.env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^\/.*smtpserver\.conf:\d+: PARAM maxsize: "lots" is not a whole number\n$/);
});

test('-i: a BSMTP batch is processed and queued; a broken transaction is refused and the batch goes on; -v echoes it', async () => {
  const s = site();
  const r = await run(['-C', s.conf, '-i', '-v', '-T', '[192.0.2.7]', '-P', join(s.dir, 'spool')], { env: s.env, input: BATCH });
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout.split('\r\n');
  assert.ok(out.includes('HELO bitnet.example'), 'echoed');
  assert.equal(out.filter((l) => /^250 2\.0\.0 \S+ Message accepted/.test(l)).length, 2, r.stdout);
  assert.ok(out.some((l) => /^501 /.test(l)), 'the broken MAIL is refused');
  assert.ok(!out.some((l) => /these lines are/.test(l) && !l.startsWith('HELO')), 'the broken text is never a command');
  assert.ok(!out.some((l) => /HELO these lines/.test(l)), 'the broken text is skipped, not echoed');
  assert.ok(out.includes('221 2.0.0 mx.test.example Bye'));
  // No daemon ran: the messages wait in offline/; the daemon queues and delivers them when it starts.
  assert.equal(readdirSync(join(s.dir, 'spool/offline')).length, 2);
  const d = await startDaemon(readFileSync(join(s.dir, 'smtpd.conf'), 'utf8') + 'listen on 127.0.0.1 port 0\n', { dir: s.dir, deliver: true });
  try {
    await d.waitForLog(/enqueued 2 message\(s\) left in offline/);
    for (let i = 0; i < 100 && !(/third/.test(mbox(s.dir)) && /first message/.test(mbox(s.dir))); i++) await new Promise((res) => setTimeout(res, 100));
    const box = mbox(s.dir);
    assert.match(box, /first message/);
    assert.match(box, /third/);
    assert.doesNotMatch(box, /broken/);
    assert.match(box, /Received: from bitnet\.example \(unknown \[192\.0\.2\.7\]\)/);
  } finally {
    await d.stop();
  }
});

test('-R router with PARAM enable-router: the router is asked with an argument vector, and its refusal is the reply', async () => {
  const s = site('PARAM enable-router\n');
  const router = join(s.dir, 'router.sh');
  // Started as root, -i gives up root for the spool's user (_postern) before it reads the batch: the router runs as that user.
  writeFileSync(join(s.dir, 'router.log'), '');
  chmodSync(join(s.dir, 'router.log'), 0o666);
  writeFileSync(router, `#!/bin/sh\necho "$1 $2 uid=$(id -u)" >> ${s.dir}/router.log\ncase "$2" in nobody@*) echo "550 5.1.1 No such user, says the router"; exit 1;; esac\nexit 0\n`);
  chmodSync(router, 0o755);
  const batch = `HELO x\nMAIL FROM:<a@b.example>\nRCPT TO:<nobody@test.example>\nRCPT TO:<"; touch ${s.dir}/pwned"@test.example>\nRCPT TO:<${ME}@test.example>\nQUIT\n`;
  const r = await run(['-C', s.conf, '-i', '-R', router, '-P', join(s.dir, 'spool')], { env: s.env, input: batch });
  assert.match(r.stdout, /550 5\.1\.1 No such user, says the router/);
  assert.match(r.stdout, /250 2\.1\.5 /);
  assert.equal(existsSync(join(s.dir, 'pwned')), false, 'no shell ever sees the address');
  const uid = process.getuid?.() === 0 ? Number(spawnSync('id', ['-u', '_postern'], { encoding: 'utf8' }).stdout.trim()) : process.getuid?.();
  assert.match(readFileSync(join(s.dir, 'router.log'), 'utf8'), new RegExp(`^rcpt nobody@test\\.example uid=${uid}$`, 'm'));
});

test('-n under socat (inetd style): the connection is stdin/stdout, the peer comes from the launcher', async () => {
  const s = site();
  const port = await freePort();
  const wrapper = join(s.dir, 'inetd.sh');
  // A small identd: under systemd-socket-activate fd 0 is the TCP socket, so -a can ask about it.
  const identd = createServer((c) => c.once('data', (d) => c.end(`${d.toString().trim().replace(/\s+/g, ' ')} : USERID : UNIX : bob\r\n`)));
  await new Promise<void>((r) => identd.listen(0, '127.0.0.1', () => r()));
  const identPort = (identd.address() as { port: number }).port;
  writeFileSync(wrapper, `#!/bin/sh\nPOSTERN_IDENT_PORT=${identPort} POSTERN_CONFIG=${s.dir}/smtpd.conf exec ${process.execPath} ${SMTPSERVER} -n -a -C ${s.conf} -P ${s.dir}/spool -l ${s.dir}/session.log\n`);
  chmodSync(wrapper, 0o755);
  const launchers: [string, string[]][] = [['socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `EXEC:${wrapper}`]]];
  if (existsSync('/usr/bin/systemd-socket-activate')) launchers.push(['systemd-socket-activate', ['-a', '--inetd', '-l', `127.0.0.1:${port}`, wrapper]]);
  for (const [cmd, args] of launchers) {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    try {
      let replies = '';
      for (let i = 0; i < 50 && !/^220 /m.test(replies); i++) {
        await new Promise((res) => setTimeout(res, 100));
        replies = await smtpSend(port, `${ME}@test.example`).catch(() => '');
      }
      assert.match(replies, /^220 mx\.test\.example/m, cmd);
      assert.match(replies, /^250 2\.0\.0 \S+ Message accepted/m, `${cmd}: ${replies}`);
      assert.match(replies, /^221 /m);
    } finally {
      p.kill();
    }
  }
  identd.close();
  const log = readFileSync(join(s.dir, 'session.log'), 'utf8');
  if (launchers.length > 1) assert.match(log, /smtp ident .*user=bob/, 'ident under systemd-socket-activate');
  assert.match(log, /trace io: session stdio-\d+: <<< MAIL FROM:<a@b\.example>/, 'the session log records the conversation');
  assert.match(log, /smtp connected .*address=127\.0\.0\.1/);
  assert.ok(readdirSync(join(s.dir, 'spool/offline')).length >= launchers.length);
});

test('the daemon: detaches and listens; a second start stops the first (pid file); -a asks identd and rcvd-ident shows it', async () => {
  const s = site('PARAM rcvd-ident\n');
  const port = await freePort();
  // A small identd: whoever asks is "alice".
  const identd = createServer((c) => c.once('data', (d) => c.end(`${d.toString().trim().replace(/\s+/g, ' ')} : USERID : UNIX : alice\r\n`)));
  await new Promise<void>((r) => identd.listen(0, '127.0.0.1', () => r()));
  const identPort = (identd.address() as { port: number }).port;
  const spool = join(s.dir, 'spool');
  const args = ['-C', s.conf, '-p', String(port), '-4', '-a', '-P', spool, '-l', join(s.dir, 'smtpserver.log')];
  const env = { ...s.env, POSTERN_IDENT_PORT: String(identPort) };
  try {
    const first = await run(args, { env });
    assert.equal(first.code, 0, first.stderr);
    const pid1 = Number(readFileSync(join(spool, '.pid.smtpserver'), 'utf8'));
    const second = await run(args, { env });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, new RegExp(`stopped the previous smtpserver \\(pid ${pid1}\\)`));
    assert.throws(() => process.kill(pid1, 0), 'the first daemon is gone');
    const replies = await smtpSend(port, `${ME}@test.example`);
    assert.match(replies, /^250 2\.0\.0 \S+ Message accepted/m, replies);
    for (let i = 0; i < 100 && !/over the wire/.test(mbox(s.dir)); i++) await new Promise((res) => setTimeout(res, 100));
    assert.match(mbox(s.dir), /Received: from client\.example \(localhost \[127\.0\.0\.1\] ident: alice\)/);
    assert.match(readFileSync(join(s.dir, 'smtpserver.log'), 'utf8'), /smtp ident .*user=alice/);
  } finally {
    identd.close();
    const pid = existsSync(join(spool, '.pid.smtpserver')) ? Number(readFileSync(join(spool, '.pid.smtpserver'), 'utf8')) : 0;
    if (pid > 0) process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && existsSync(join(spool, '.pid.smtpserver')); i++) await new Promise((res) => setTimeout(res, 50));
  }
});


test('etrn-cluster: an ETRN is passed on to the listed nodes over SMTP (and not back from them)', async () => {
  const b = await startDaemon(basicConfig());
  const dirA = tempDir('postern-etrn-');
  writeFileSync(join(dirA, 'smtpserver.conf'), `PARAM etrn-cluster [127.0.0.1]:${b.port} mq-user mq-pw\n`);
  const a = await startDaemon(basicConfig(`smtpserver-conf "$DIR/smtpserver.conf"`), { dir: dirA });
  try {
    // From 127.0.0.2: an ETRN from 127.0.0.1, a listed node's address, would not be passed on.
    const c = await RawClient.open(a.port, '127.0.0.1', '127.0.0.2');
    await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250\nC: ETRN example.org\nS: 2\nC: QUIT\nS: 221');
    c.close();
    const line = await a.waitForLog(/smtp etrn-cluster /);
    assert.match(line, new RegExp(`node=\\[127\\.0\\.0\\.1\\]:${b.port} domain=example\\.org result="?[24]\\d\\d `));
    // B got it from 127.0.0.1, which is not one of its (zero) cluster nodes; A's relayed ETRN came from B's view of A.
    assert.ok(!a.logs.some((l) => /etrn-cluster .*result="?(timed out|closed)/.test(l)));
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test('ZENV: $MAILVAR and $DBTYPE in smtpserver.conf come from /etc/zmailer.conf ($ZCONFIG), as in ZMailer\'s installed sample', async () => {
  const s = site();
  writeFileSync(join(s.dir, 'zmailer.conf'), `# ZMailer's configuration\nMAILVAR=${s.dir}\nDBTYPE=btree\n`);
  writeFileSync(s.conf, 'PARAM  enable-router\nPARAM  enable-router-maxpar 2\nPARAM  no-multiline-replies\nPARAM  policydb        $DBTYPE  $MAILVAR/db/smtp-policy\n*                    * ftveR\n');
  const r = await run(['-c', '-C', s.conf], { env: { ...s.env, ZCONFIG: join(s.dir, 'zmailer.conf') } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'configuration OK\n');
  assert.match(r.stderr, /PARAM enable-router without -R/);
  const missing = await run(['-c', '-C', s.conf], { env: { ...s.env, ZCONFIG: join(s.dir, 'none.conf') } });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /smtpserver\.conf:4: undefined variable "\$DBTYPE"/);
});

test('usetls with tls-cert-file/tls-key-file: the daemon offers STARTTLS with that certificate', async () => {
  const s = site();
  const c = makeCert(s.dir, 'mx.test.example');
  writeFileSync(s.conf, `PARAM usetls\nPARAM tls-cert-file ${c.cert}\nPARAM tls-key-file ${c.key}\nPARAM tlsloglevel 0\n`);
  const port = await freePort();
  const spool = join(s.dir, 'spool');
  try {
    const r = await run(['-C', s.conf, '-p', String(port), '-4', '-P', spool], { env: s.env });
    assert.equal(r.code, 0, r.stderr);
    const client = await RawClient.open(port, '127.0.0.1');
    const replies = await dialogue(client, 'S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220');
    client.close();
    assert.ok(replies[1]?.lines.some((l) => /STARTTLS/.test(l)), replies[1]?.text);
  } finally {
    const pidFile = join(spool, '.pid.smtpserver');
    if (existsSync(pidFile)) process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
    for (let i = 0; i < 100 && existsSync(pidFile); i++) await new Promise((res) => setTimeout(res, 50));
  }
});
