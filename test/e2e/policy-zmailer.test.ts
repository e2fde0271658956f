/*
 * ZMailer's smtpserver.conf wired into the running daemon (the real
 * `smtpd` binary): each PARAM whose effect a client can see, the HELO
 * patterns and style flags, the connection limits from several client
 * addresses, the tarpit, and the content filter's three answers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { basicConfig, startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { spoolMessages } from '../helpers/inproc.js';

/** Start smtpd with this smtpserver.conf (and a content filter script, if given) in a fresh folder. */
async function withZmailer(conf: string, opts: { filter?: string; extra?: string } = {}): Promise<{ d: DaemonHandle; dir: string }> {
  const dir = tempDir('postern-zm-');
  if (opts.filter !== undefined) {
    writeFileSync(join(dir, 'filter.sh'), `#!/bin/sh\n${opts.filter.replaceAll('$DIR', dir)}\n`);
    chmodSync(join(dir, 'filter.sh'), 0o755);
    // The filter runs as the SMTP side's user (_postern when smtpd starts as root): it writes what it saw in out/.
    mkdirSync(join(dir, 'out'), { mode: 0o1777 });
    chmodSync(join(dir, 'out'), 0o1777);
  }
  writeFileSync(join(dir, 'smtpserver.conf'), conf.replaceAll('$DIR', dir));
  const d = await startDaemon(basicConfig(`smtpserver-conf "$DIR/smtpserver.conf"\n${opts.extra ?? ''}`), { dir });
  return { d, dir };
}

function done(h: { d: DaemonHandle; dir: string }): void {
  h.d.cleanup();
  rmSync(h.dir, { recursive: true, force: true });
}

async function session(port: number, script: string, from = '127.0.0.2'): Promise<Awaited<ReturnType<typeof dialogue>>> {
  const c = await RawClient.open(port, '127.0.0.1', from);
  try {
    return await dialogue(c, script);
  } finally {
    c.close();
  }
}

/* ------------------------------------------------- one daemon, many PARAMs */

const MAIN_CONF = `# smtpserver.conf for the end-to-end tests
PARAM maxsize 20000
PARAM max-error-recipients 2
PARAM RcptLimitCount 100
PARAM max-unknown-commands 3
PARAM VRFYcmd
PARAM EXPNcmd
PARAM NoCHUNKING
PARAM NoDSN
PARAM NoETRN
PARAM hdr220 %H ZMailer-style ESMTP server %V at %i port %p
PARAM hdr220 %H (NO UCE)(NO UBE) local time %T
PARAM help This mailserver is at Yoyodyne Propulsion Inc.
PARAM help Questions to <postmaster@example.com>
#
*.spam.example      !Go away
noverify.example    -
sloppy.example      veS
*                   ve
`;

let main: { d: DaemonHandle; dir: string };
before(async () => {
  main = await withZmailer(MAIN_CONF);
});
after(() => done(main));

test('hdr220: the greeting has the file\'s lines with %H %V %i %p %T filled in', async () => {
  const [greet] = await session(main.d.port, 'S: 220\nC: QUIT\nS: 221');
  const lines = greet?.lines ?? [];
  assert.equal(lines.length, 2, greet?.text);
  assert.match(lines[0] ?? '', new RegExp(`^220-mx\\.test\\.example ZMailer-style ESMTP server \\d+\\.\\d+\\.\\d+ at \\[127\\.0\\.0\\.2\\] port ${main.d.port}$`));
  assert.match(lines[1] ?? '', /^220 mx\.test\.example \(NO UCE\)\(NO UBE\) local time \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/);
});

test('help: HELP answers with the PARAM help lines', async () => {
  const [, help] = await session(main.d.port, 'S: 220\nC: HELP\nS: 214\nC: QUIT\nS: 221');
  assert.deepEqual(help?.lines.map((l) => l.slice(4)), ['2.0.0 This mailserver is at Yoyodyne Propulsion Inc.', '2.0.0 Questions to <postmaster@example.com>']);
});

test('NoCHUNKING, NoDSN, NoETRN: gone from EHLO, and BDAT/ETRN are unknown commands', async () => {
  const [, ehlo] = await session(main.d.port, 'S: 220\nC: EHLO client.example\nS: 250\nC: ETRN test.example\nS: 500 5.5.1\nC: BDAT 10 LAST\nS: 500 5.5.1\nC: QUIT\nS: 221');
  const kw = (ehlo?.lines ?? []).slice(1).map((l) => l.slice(4));
  for (const k of ['CHUNKING', 'DSN', 'ETRN']) assert.ok(!kw.includes(k), `${k} in ${kw.join(',')}`);
  for (const k of ['PIPELINING', 'ENHANCEDSTATUSCODES', '8BITMIME']) assert.ok(kw.includes(k), `${k} missing from ${kw.join(',')}`);
});

test('maxsize: SIZE advertises it, a larger SIZE= and a larger message are refused', async () => {
  const c = await RawClient.open(main.d.port, '127.0.0.1', '127.0.0.2');
  const got = await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250');
  assert.ok(got[1]?.lines.some((l) => l.slice(4) === 'SIZE 20000'), got[1]?.text);
  await dialogue(c, 'C: MAIL FROM:<a@client.example> SIZE=20001\nS: 552\nC: MAIL FROM:<a@client.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: DATA\nS: 354');
  c.send(`Subject: big\r\n\r\n${'x'.repeat(998)}\r\n`.repeat(25));
  c.send('.\r\n');
  const r = await c.reply();
  assert.equal(r.code, 552, r.text);
  c.close();
});

test('RcptLimitCount: the 101st recipient of a transaction gets 452', async () => {
  const c = await RawClient.open(main.d.port, '127.0.0.1', '127.0.0.2');
  await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@client.example>\nS: 250');
  // Distinct recipients (a repeated one counts once): root's +extensions.
  c.send(Array.from({ length: 101 }, (_, i) => `RCPT TO:<root+${i}@test.example>\r\n`).join(''));
  const codes: number[] = [];
  for (let i = 0; i < 101; i++) codes.push((await c.reply()).code);
  assert.deepEqual(codes.slice(0, 100), Array(100).fill(250));
  assert.equal(codes[100], 452);
  c.close();
});

test('max-error-recipients: with MAIL FROM:<> only that many recipients', async () => {
  await session(
    main.d.port,
    `S: 220
C: EHLO client.example
S: 250
C: MAIL FROM:<>
S: 250
C: RCPT TO:<root+1@test.example>
S: 250
C: RCPT TO:<root+2@test.example>
S: 250
C: RCPT TO:<root+3@test.example>
S: 552 5.7.1 SPAM trap
C: QUIT
S: 221`,
  );
});

test('max-unknown-commands: the third unknown command ends the session with 421', async () => {
  await session(main.d.port, 'S: 220\nC: FOO\nS: 500 5.5.1\nC: BAR\nS: 500 5.5.1\nC: BAZ\nS: 421\nCLOSED');
});

test('HELO pattern "!message": refused with 501 5.7.1 Sorry <address>, <message>', async () => {
  const [, r] = await session(main.d.port, 'S: 220\nC: EHLO relay.spam.example\nS: 501 5.7.1\nC: QUIT\nS: 221', '127.0.0.3');
  assert.equal(r?.lines[0], '501 5.7.1 Sorry 127.0.0.3, Go away');
});

test('VRFYcmd with style v: VRFY looks the address up; without v: 252', async () => {
  await session(main.d.port, 'S: 220\nC: EHLO client.example\nS: 250\nC: VRFY <root@test.example>\nS: 250 2.1.5\nC: VRFY <no-such-user-here@test.example>\nS: 550\nC: QUIT\nS: 221');
  await session(main.d.port, 'S: 220\nC: EHLO noverify.example\nS: 250\nC: VRFY <root@test.example>\nS: 252\nC: QUIT\nS: 221');
});

test('EXPNcmd with style e: EXPN expands; without e: 252', async () => {
  const [, , expn] = await session(main.d.port, 'S: 220\nC: EHLO client.example\nS: 250\nC: EXPN <root@test.example>\nS: 250 2.1.5\nC: QUIT\nS: 221');
  assert.match(expn?.text ?? '', /<root@test\.example>/);
  await session(main.d.port, 'S: 220\nC: EHLO noverify.example\nS: 250\nC: EXPN <root@test.example>\nS: 252\nC: QUIT\nS: 221');
});

test('style S (sloppy): addresses without brackets and blanks after the colon; without S they are refused', async () => {
  await session(main.d.port, 'S: 220\nC: EHLO sloppy.example\nS: 250\nC: MAIL FROM: a@client.example\nS: 250\nC: RCPT TO:root@test.example\nS: 250\nC: QUIT\nS: 221');
  await session(main.d.port, 'S: 220\nC: EHLO strict.example\nS: 250\nC: MAIL FROM: <a@client.example>\nS: 501 5.5.4\nC: MAIL FROM:a@client.example\nS: 501 5.5.4\nC: MAIL FROM:<a@client.example>\nS: 250\nC: QUIT\nS: 221');
});

/* ------------------------------------------------------- other files */

test('NoEHLO and no-multiline-replies: EHLO refused, HELO works, replies on one line (the EHLO list excepted)', async () => {
  const h = await withZmailer('PARAM NoEHLO\nPARAM no-multiline-replies\nPARAM help line one\nPARAM help line two\nPARAM hdr220 %H first\nPARAM hdr220 second\n');
  try {
    const [greet, ehlo, , help] = await session(h.d.port, 'S: 220\nC: EHLO client.example\nS: 502 5.5.1\nC: HELO client.example\nS: 250\nC: HELP\nS: 214\nC: QUIT\nS: 221');
    assert.deepEqual(greet?.lines, ['220 mx.test.example first second']);
    assert.equal(ehlo?.lines.length, 1);
    assert.deepEqual(help?.lines, ['214 2.0.0 line one line two']);
  } finally {
    done(h);
  }
  const m = await withZmailer('PARAM no-multiline-replies\n');
  try {
    const [, ehlo] = await session(m.d.port, 'S: 220\nC: EHLO client.example\nS: 250\nC: QUIT\nS: 221');
    assert.ok((ehlo?.lines.length ?? 0) > 3, 'the EHLO list keeps its lines');
  } finally {
    done(m);
  }
});

test('NoENHANCEDSTATUSCODES, NoPIPELINING, No8BITMIME: gone from EHLO; replies carry no enhanced codes', async () => {
  const h = await withZmailer('PARAM NoENHANCEDSTATUSCODES\nPARAM NoPIPELINING\nPARAM No8BITMIME\n');
  try {
    const [, ehlo, mail] = await session(h.d.port, 'S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@client.example>\nS: 250\nC: QUIT\nS: 221');
    const kw = (ehlo?.lines ?? []).slice(1).map((l) => l.slice(4));
    for (const k of ['ENHANCEDSTATUSCODES', 'PIPELINING', '8BITMIME']) assert.ok(!kw.includes(k), `${k} in ${kw.join(',')}`);
    assert.equal(mail?.lines[0], '250 Ok');
  } finally {
    done(h);
  }
});

test('min-availspace: below that much free spool space MAIL gets 452 4.3.1', async () => {
  const h = await withZmailer('PARAM min-availspace 999999999999\n');
  try {
    await session(h.d.port, 'S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@client.example>\nS: 452 4.3.1\nC: QUIT\nS: 221');
  } finally {
    done(h);
  }
});

test('PARAMs without an effect in this mode (and those Postern does otherwise) are logged at start-up, with their line', async () => {
  const h = await withZmailer('PARAM BindPort 2525\nPARAM rcvd-ident\nPARAM TcpRcvBufferSize 65536\n');
  try {
    assert.ok(h.d.logs.some((l) => /smtpserver\.conf:1: PARAM BindPort has no effect here: smtpd takes its listeners from smtpd\.conf "listen on"/.test(l)), h.d.logs.join('\n'));
    assert.ok(h.d.logs.some((l) => /smtpserver\.conf:2: PARAM rcvd-ident has no effect here/.test(l)));
    assert.ok(h.d.logs.some((l) => /listener .*: socket buffers receive \d+ send \d+ bytes/.test(l)), 'TcpRcvBufferSize acts under smtpd too');
  } finally {
    done(h);
  }
});

test('a smtpserver.conf with errors stops the daemon from starting, with FILE:LINE', async () => {
  const dir = tempDir('postern-zm-');
  writeFileSync(join(dir, 'smtpserver.conf'), 'PARAM maxsise 10\nPARAM perl-hook /x\n');
  try {
    await assert.rejects(startDaemon(basicConfig('smtpserver-conf "$DIR/smtpserver.conf"'), { dir }), (e: Error) => {
      assert.match(e.message, /smtpserver\.conf:1: .*maxsise.*did you mean "maxsize"/);
      assert.match(e.message, /smtpserver\.conf:2: .*perl-hook/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/* ----------------------------------------------------------- limits */

/** A raw socket that keeps its side open after the server closes (so it stays counted). */
function rawSocket(port: number, localAddress: string): Promise<{ s: Socket; data: () => string; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let data = '';
    let closed = false;
    const s = connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true }, () => resolve({ s, data: () => data, closed: () => closed }));
    s.setEncoding('latin1');
    s.on('data', (d: string) => (data += d));
    s.on('end', () => (closed = true));
    s.on('close', () => (closed = true));
    s.once('error', reject);
    s.on('error', () => undefined);
  });
}

async function until(f: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!f() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return f();
}

test('MaxSameIpSource: per address; the limit refuses with 450, four times it closes silently; other addresses go on', async () => {
  const h = await withZmailer('PARAM MaxSameIpSource 1\n');
  const socks: Socket[] = [];
  try {
    const first = await rawSocket(h.d.port, '127.0.0.2');
    socks.push(first.s);
    assert.ok(await until(() => first.data().startsWith('220 ')), first.data());
    for (let i = 2; i <= 4; i++) {
      const r = await rawSocket(h.d.port, '127.0.0.2');
      socks.push(r.s);
      assert.ok(await until(() => r.closed()), `connection ${i} closed`);
      assert.match(r.data(), new RegExp(`^450-4\\.7\\.0 Too many simultaneous connections from same IP address \\(${i} max 1\\)\\r\\n450 4\\.7\\.0 Come again later\\r\\n$`));
    }
    const fifth = await rawSocket(h.d.port, '127.0.0.2');
    socks.push(fifth.s);
    assert.ok(await until(() => fifth.closed()), 'fifth closed');
    assert.equal(fifth.data(), '', 'beyond four times the limit: closed without a word');
    const other = await rawSocket(h.d.port, '127.0.0.3');
    socks.push(other.s);
    assert.ok(await until(() => other.data().startsWith('220 ')), `another address is served: ${other.data()}`);
    await h.d.waitForLog(/smtp refused address=127\.0\.0\.2 .*reply=450/);
  } finally {
    for (const s of socks) s.destroy();
    done(h);
  }
});

test('MaxParallelConnections: in total, over several addresses: 450 beyond it', async () => {
  const h = await withZmailer('PARAM MaxParallelConnections 2\n');
  const socks: Socket[] = [];
  try {
    for (const a of ['127.0.0.2', '127.0.0.3']) {
      const r = await rawSocket(h.d.port, a);
      socks.push(r.s);
      assert.ok(await until(() => r.data().startsWith('220 ')), r.data());
    }
    const third = await rawSocket(h.d.port, '127.0.0.4');
    socks.push(third.s);
    assert.ok(await until(() => third.closed()));
    assert.match(third.data(), /^450-4\.7\.0 Too many simultaneous connections to this server \(3 max 2\)/);
    // A refused client stays counted until it closes too; once it and one served client leave, the next is served.
    third.s.destroy();
    socks[0]?.destroy();
    await new Promise((r) => setTimeout(r, 200));
    const again = await rawSocket(h.d.port, '127.0.0.5');
    socks.push(again.s);
    assert.ok(await until(() => again.data().startsWith('220 ')), again.data());
  } finally {
    for (const s of socks) s.destroy();
    done(h);
  }
});

test('tarpit: each 4xx/5xx reply waits longer than the one before; positive replies are not delayed', async () => {
  const h = await withZmailer('PARAM tarpit 0.2 1\n');
  try {
    const c = await RawClient.open(h.d.port, '127.0.0.1', '127.0.0.2');
    await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250');
    const took: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      c.send('MAIL FROM:<broken\r\n');
      const r = await c.reply();
      took.push(Date.now() - t0);
      assert.equal(r.code, 501);
    }
    // 0.2 s, then 0.2 + 0.2×1 = 0.4 s, then 0.8 s.
    assert.ok((took[0] ?? 0) >= 190, `first wait ${took[0]} ms`);
    assert.ok((took[1] ?? 0) >= 390, `second wait ${took[1]} ms`);
    assert.ok((took[2] ?? 0) >= 790, `third wait ${took[2]} ms`);
    await dialogue(c, 'C: QUIT\nS: 221');
    c.close();
  } finally {
    done(h);
  }
});

/* ------------------------------------------------------ content filter */

const FILTER = `read path
echo "$path" >> "$DIR/out/paths"
cat "$path" > "$DIR/out/last-seen"
if grep -q SPAMSPAM "$path"; then echo "-1 550 5.7.1 That is spam"
elif grep -q FREEZEME "$path"; then echo "#hungry"; echo 1
elif grep -q CRASHME "$path"; then exit 3
else echo 0
fi`;

async function send(port: number, body: string): Promise<{ code: number; text: string }> {
  const c = await RawClient.open(port, '127.0.0.1', '127.0.0.2');
  try {
    await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@client.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: DATA\nS: 354');
    c.send(`Subject: filter test\r\n\r\n${body}\r\n.\r\n`);
    const r = await c.reply();
    await dialogue(c, 'C: QUIT\nS: 221');
    return { code: r.code, text: r.text };
  } finally {
    c.close();
  }
}

test('content filter: accept, reject, freeze (held), and 451 when it fails; it reads incoming/<msgid> relative to the spool', async () => {
  const h = await withZmailer('PARAM contentfilter $DIR/filter.sh\nPARAM debug-contentfilter\n', { filter: FILTER });
  try {
    const ok = await send(h.d.port, 'a perfectly good message');
    assert.equal(ok.code, 250, ok.text);
    const msgid = /250 2\.0\.0 ([0-9a-f]{8}) /.exec(ok.text)?.[1];
    assert.ok(msgid, ok.text);
    assert.equal(readFileSync(join(h.dir, 'out', 'paths'), 'utf8').trim(), `incoming/${msgid}`);
    const seen = readFileSync(join(h.dir, 'out', 'last-seen'), 'utf8');
    assert.match(seen, /^Received: from client\.example /);
    assert.match(seen, /\r\n\r\na perfectly good message\r\n$/, 'the whole message, with our Received: header, and nothing else');

    const spam = await send(h.d.port, 'buy SPAMSPAM now');
    assert.equal(spam.text, '550 5.7.1 That is spam');

    const frozen = await send(h.d.port, 'please FREEZEME');
    assert.equal(frozen.code, 250, frozen.text);
    const frozenId = /250 2\.0\.0 ([0-9a-f]{8}) /.exec(frozen.text)?.[1];

    const crash = await send(h.d.port, 'CRASHME');
    assert.match(crash.text, /^451 4\.3\.0 /);

    await h.d.waitForLog(/smtp held .*msgid=/);
    await h.d.waitForLog(/smtp content-filter .*disposition=reject/);
    await h.d.stop();
    const msgs = await spoolMessages(join(h.dir, 'spool'));
    assert.deepEqual(msgs.map((m) => m.stored.envelope.msgid).sort(), [msgid, frozenId].sort(), 'the rejected and failed messages are not kept');
    const held = msgs.find((m) => m.stored.envelope.msgid === frozenId);
    const outcomes = [...(held?.stored.outcomes.values() ?? [])].flat();
    assert.ok(outcomes.length > 0 && outcomes.every((o) => o.kind === 'held'), JSON.stringify(outcomes));
    const good = msgs.find((m) => m.stored.envelope.msgid === msgid);
    assert.equal([...(good?.stored.outcomes.values() ?? [])].flat().length, 0);
    assert.ok(!existsSync(join(h.dir, 'spool', 'incoming', msgid)));
  } finally {
    done(h);
  }
});

test('PARAM smtp-auth, AUTH-LOGIN-also-without-TLS, SMTP-auth-pipe and MSA-mode: outsiders must authenticate, this host need not', async () => {
  const dir = tempDir('postern-msa-');
  writeFileSync(join(dir, 'check-pw'), '#!/bin/sh\nread pw\n[ "$1" = "joe" ] && [ "$pw" = "joe-secret" ]\n');
  chmodSync(join(dir, 'check-pw'), 0o755);
  const h = await withZmailer(`PARAM smtp-auth\nPARAM AUTH-LOGIN-also-without-TLS\nPARAM SMTP-auth-pipe ${join(dir, 'check-pw')}\nPARAM MSA-mode\n`, { extra: 'smtp auth-fail-delay 0' });
  try {
    const plain = Buffer.from('\0joe\0joe-secret').toString('base64');
    const [, ehlo] = await session(h.d.port, `S: 220\nC: EHLO outside\nS: 250\nC: MAIL FROM:<joe@far.example>\nS: 530 5.7.0\nC: AUTH PLAIN ${plain}\nS: 235 2.7.0\nC: MAIL FROM:<joe@far.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: QUIT\nS: 221`);
    assert.ok(ehlo?.lines.some((l) => /AUTH PLAIN LOGIN/.test(l)), ehlo?.text);
    await session(h.d.port, 'S: 220\nC: EHLO inside\nS: 250\nC: MAIL FROM:<root@test.example>\nS: 250\nC: QUIT\nS: 221', '127.0.0.1');
  } finally {
    await h.d.stop();
    done(h);
    rmSync(dir, { recursive: true, force: true });
  }
});
