/*
 * Scripted SMTP dialogues against a whole daemon in this process (real
 * sockets, real spool): each command in each state, replies and enhanced
 * status codes, limits.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dialogue } from '../helpers/smtp-client.js';
import { startInProcess, type InProc } from '../helpers/inproc.js';
import { basicConfig } from '../helpers/daemon.js';

let srv: InProc;
before(async () => {
  srv = await startInProcess(basicConfig('smtp help "Postern test server"\nsmtp help "Second line"'));
});
after(async () => srv.close());

async function run(script: string, localAddress?: string): Promise<void> {
  const c = await srv.client(localAddress);
  try {
    await dialogue(c, script);
  } finally {
    c.close();
  }
}

test('greeting, EHLO advertises the extensions', async () => {
  const c = await srv.client();
  const [greet, ehlo] = await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250');
  assert.match(greet?.text ?? '', /^220 mx\.test\.example ESMTP Postern/);
  const kw = (ehlo?.lines ?? []).slice(1).map((l) => l.slice(4));
  for (const k of ['PIPELINING', 'SIZE 36700160', '8BITMIME', 'SMTPUTF8', 'DSN', 'ENHANCEDSTATUSCODES', 'CHUNKING', 'HELP']) assert.ok(kw.includes(k), `${k} in ${kw.join(',')}`);
  assert.match(ehlo?.lines[0] ?? '', /^250-mx\.test\.example Hello client\.example \[127\.0\.0\.1\]/);
  c.close();
});

test('HELO/EHLO need an argument', () => run('S: 220\nC: HELO\nS: 501 5.5.4\nC: EHLO\nS: 501 5.5.4\nC: HELO a b\nS: 501 5.5.2'));

test('commands out of order get 503 5.5.1', () =>
  run(`S: 220
C: MAIL FROM:<a@test.example>
S: 503 5.5.1
C: RCPT TO:<root@test.example>
S: 503 5.5.1
C: DATA
S: 503 5.5.1
C: ETRN test.example
S: 503 5.5.1
C: EHLO c
S: 250
C: RCPT TO:<root@test.example>
S: 503 5.5.1
C: DATA
S: 503 5.5.1
C: MAIL FROM:<a@test.example>
S: 250 2.1.0
C: MAIL FROM:<a@test.example>
S: 503 5.5.1
C: DATA
S: 503 5.5.1
C: ETRN test.example
S: 503 5.5.1
C: RCPT TO:<nobody-here@test.example>
S: 550 5.1.1
C: DATA
S: 554 5.5.1
C: QUIT
S: 221 2.0.0
CLOSED`));

test('RSET, NOOP, HELP, VRFY, EXPN, ETRN, QUIT', () =>
  run(`S: 220
C: NOOP
S: 250 2.0.0
C: HELP
S: 214 2.0.0 Second line
C: EHLO c
S: 250
C: MAIL FROM:<a@test.example>
S: 250
C: RSET
S: 250 2.0.0
C: MAIL FROM:<a@test.example>
S: 250 2.1.0
C: RSET extra
S: 501 5.5.4
C: VRFY root
S: 252 2.1.5
C: EXPN list
S: 502 5.5.1
C: RSET
S: 250
C: ETRN
S: 501 5.5.4
C: ETRN test.example
S: 25
C: ETRN #queue
S: 458
C: QUIT
S: 221
CLOSED`));

test('unknown commands: 500 5.5.1, then 421 after ten', async () => {
  let script = 'S: 220\n';
  for (let i = 0; i < 9; i++) script += 'C: FOO\nS: 500 5.5.1\n';
  script += 'C: BAR\nS: 421 4.7.0\nCLOSED';
  await run(script);
});

test('bad MAIL/RCPT syntax and addresses', () =>
  run(`S: 220
C: EHLO c
S: 250
C: MAIL TO:<a@b.example>
S: 501 5.5.4
C: MAIL FROM:<a@@b.example>
S: 553
C: MAIL FROM:<a@test.example> FOO=BAR
S: 555 5.5.4
C: MAIL FROM:<a@test.example> SIZE=999999999999
S: 552 5.3.4
C: MAIL FROM:<üser@test.example>
S: 553 5.6.7
C: MAIL FROM:<üser@test.example> SMTPUTF8
S: 250 2.1.0
C: RCPT TO:<>
S: 553
C: RCPT TO:<root@test.example> NOTIFY=BOGUS
S: 501
C: RCPT TO:<root@test.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;root+2Bx@test.example
S: 250 2.1.5
C: QUIT
S: 221`));

test('a command line over 512 octets gets 500 5.5.2 and the session goes on', () =>
  run(`S: 220\nC: NOOP ${'x'.repeat(520)}\nS: 500 5.5.2\nC: NOOP\nS: 250`));

test('NUL or bare CR in a command line is refused', () => run('S: 220\nR: NOOP\\0x\\r\\n\nS: 500 5.5.2\nR: NOOP\\rx\\r\\n\nS: 500 5.5.2\nC: NOOP\nS: 250'));

test('relaying: refused from an untrusted address, allowed from local', async () => {
  await run('S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@elsewhere.example>\nS: 250\nC: RCPT TO:<x@elsewhere.example>\nS: 550 5.7.1\nC: RCPT TO:<root@test.example>\nS: 250 2.1.5\nC: RCPT TO:<root@localhost>\nS: 550 5.1.1', '127.0.0.2');
  await run('S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<x@elsewhere.example>\nS: 250 2.1.5\nC: RCPT TO:<root@localhost>\nS: 250\nC: RCPT TO:<postmaster>\nS: 250', '127.0.0.1');
});

test('a message is queued with its Received: header and envelope', async () => {
  const c = await srv.client();
  const replies = await dialogue(
    c,
    `S: 220
C: EHLO client.example
S: 250
C: MAIL FROM:<sender@test.example> RET=HDRS ENVID=abc+2Bdef BODY=8BITMIME
S: 250
C: RCPT TO:<root@test.example> NOTIFY=SUCCESS ORCPT=rfc822;Root@test.example
S: 250
C: DATA
S: 354
C: Subject: hello
C:
C: ..leading dot
C: body
C: .
S: 250 2.0.0
C: QUIT
S: 221`,
  );
  c.close();
  const id = /250 2\.0\.0 ([0-9a-f]{8}) Message accepted for delivery/.exec(replies[5]?.text ?? '')?.[1];
  assert.ok(id, replies[5]?.text);
  const m = (await srv.messages()).find((x) => x.stored.envelope.msgid === id);
  assert.ok(m);
  const env = m.stored.envelope;
  assert.equal(env.sender, 'sender@test.example');
  assert.equal(env.ret, 'HDRS');
  assert.equal(env.envid, 'abc+def');
  assert.equal(env.body, '8BITMIME');
  assert.equal(env.recipients.length, 1);
  assert.equal(env.recipients[0]?.address, 'root@test.example');
  assert.deepEqual(env.recipients[0]?.notify, ['SUCCESS']);
  assert.equal(env.recipients[0]?.orcpt, 'rfc822;Root@test.example');
  assert.equal(env.recipients[0]?.action, 'local');
  assert.match(env.recipients[0]?.evpid ?? '', new RegExp(`^${id}[0-9a-f]{8}$`));
  assert.equal(env.client.helo, 'client.example');
  assert.equal(env.client.proto, 'ESMTP');
  assert.match(m.body, new RegExp(`^Received: from client\\.example \\(localhost \\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby mx\\.test\\.example \\(Postern\\) with ESMTP id ${id}\\r\\n\\tfor <root@test\\.example>;\\r\\n\\t\\w{3}, `));
  assert.ok(m.body.endsWith('Subject: hello\r\n\r\n.leading dot\r\nbody\r\n'), JSON.stringify(m.body));
  assert.equal(env.size, Buffer.byteLength(m.body, 'latin1'));
  assert.ok(srv.logs.some((l) => l.includes(`smtp message`) && l.includes(`msgid=${id}`) && l.includes('nrcpt=1')));
  assert.ok(srv.logs.some((l) => l.includes('smtp envelope') && l.includes('to=<root@test.example>')));
});

test('PIPELINING: a whole group in one write, replies in order', async () => {
  const c = await srv.client();
  await dialogue(c, 'S: 220\nC: EHLO c\nS: 250');
  c.send('MAIL FROM:<a@test.example>\r\nRCPT TO:<root@test.example>\r\nRCPT TO:<nobody-here@test.example>\r\nRCPT TO:<postmaster@test.example>\r\nDATA\r\n');
  await dialogue(c, 'S: 250 2.1.0\nS: 250 2.1.5\nS: 550 5.1.1\nS: 250 2.1.5\nS: 354');
  c.send('Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<b@test.example>\r\nRCPT TO:<root@test.example>\r\nDATA\r\n');
  await dialogue(c, 'S: 250 2.0.0\nS: 250 2.1.0\nS: 250 2.1.5\nS: 354\nC: .\nS: 250 2.0.0\nC: QUIT\nS: 221');
  c.close();
});

test('pipelining after HELO (no PIPELINING offered) is refused and the session closed', () =>
  run('S: 220\nC: HELO c\nS: 250\nR: MAIL FROM:<a@test.example>\\r\\nRCPT TO:<root@test.example>\\r\\n\nS: 550 5.7.1\nCLOSED'));

test('limits: recipients per transaction', async () => {
  const s2 = await startInProcess(basicConfig('smtp limit max-rcpt 2'));
  const c = await s2.client();
  await dialogue(c, 'S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: RCPT TO:<postmaster@test.example>\nS: 250\nC: RCPT TO:<root@localhost>\nS: 452 4.5.3');
  c.close();
  await s2.close();
});

test('limits: message size is enforced while streaming, not only from SIZE=', async () => {
  const s2 = await startInProcess(basicConfig('smtp max-message-size 2K'));
  const c = await s2.client();
  const [, ehlo] = await dialogue(c, 'S: 220\nC: EHLO c\nS: 250');
  assert.ok(ehlo?.lines.includes('250-SIZE 2048'), ehlo?.text);
  await dialogue(c, 'C: MAIL FROM:<a@test.example> SIZE=4096\nS: 552 5.3.4\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: DATA\nS: 354');
  c.send(`Subject: big\r\n\r\n${'0123456789abcdef0123456789abcdef0123456789abcdef\r\n'.repeat(100)}.\r\n`);
  await dialogue(c, 'S: 552 5.3.4\nC: NOOP\nS: 250');
  c.close();
  assert.equal((await s2.messages()).length, 0);
  await s2.close();
});

test('a mail loop (more than 100 Received: headers) is refused with 554 5.4.6', async () => {
  const c = await srv.client();
  const before = (await srv.messages()).length;
  await dialogue(c, 'S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: DATA\nS: 354');
  c.send(`${'Received: from a by b; Sun, 1 Jan 2026 00:00:00 +0000\r\n'.repeat(101)}Subject: loop\r\n\r\nx\r\n.\r\n`);
  await dialogue(c, 'S: 554 5.4.6\nC: QUIT\nS: 221');
  c.close();
  assert.equal((await srv.messages()).length, before);
});

test('a client that disconnects during DATA leaves nothing queued', async () => {
  const before = (await srv.messages()).length;
  const c = await srv.client();
  await dialogue(c, 'S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: DATA\nS: 354');
  c.send('Subject: cut\r\n\r\nhalf a message\r\n');
  await new Promise((r) => setTimeout(r, 100));
  c.close();
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await srv.messages()).length, before);
});

test('the command timeout closes an idle session with 421 4.4.2', async () => {
  const s2 = await startInProcess(basicConfig('smtp timeout command 1s'));
  const c = await s2.client();
  await dialogue(c, 'S: 220\nS: 421 4.4.2\nCLOSED');
  c.close();
  assert.ok(s2.logs.some((l) => /smtp disconnected .*reason=timeout/.test(l)));
  await s2.close();
});

test('a client that talks before the greeting is refused', async () => {
  const s2 = await startInProcess(basicConfig('smtp greeting-delay 300ms'));
  const c = await s2.client();
  c.send('EHLO eager\r\n');
  await dialogue(c, 'S: 550 5.7.1\nCLOSED');
  c.close();
  await s2.close();
});

test('the log records connections, failed commands and disconnections', () => {
  assert.ok(srv.logs.some((l) => /^smtp connected session=[0-9a-f]{16} address=127\.0\.0\.1 host=localhost/.test(l)));
  assert.ok(srv.logs.some((l) => /^smtp failed-command session=\S+ address=127\.0\.0\.\d+ command="RCPT TO:<x@elsewhere.example>" result="550 5\.7\.1 Relaying denied"/.test(l)));
  assert.ok(srv.logs.some((l) => /^smtp disconnected session=\S+ address=\S+ reason=quit/.test(l)));
});

test('below the spool free-space minimum, MAIL gets 452 4.3.1', async () => {
  const s2 = await startInProcess(basicConfig('queue min-free-space 1000000G'));
  const c = await s2.client();
  await dialogue(c, 'S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 452 4.3.1\nC: QUIT\nS: 221');
  c.close();
  assert.ok(s2.logs.some((l) => /below the minimum/.test(l)));
  await s2.close();
});
