/*
 * CHUNKING / BDAT (RFC 3030) sequences against the whole server.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dialogue, type RawClient } from '../helpers/smtp-client.js';
import { startInProcess, type InProc } from '../helpers/inproc.js';
import { basicConfig } from '../helpers/daemon.js';

let srv: InProc;
before(async () => {
  srv = await startInProcess(basicConfig());
});
after(async () => srv.close());

const OPEN = 'S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250';

async function bodyOf(reply: string): Promise<string | undefined> {
  const id = /^250 2\.0\.0 ([0-9a-f]{8}) /.exec(reply)?.[1];
  const m = (await srv.messages()).find((x) => x.stored.envelope.msgid === id);
  return m?.body.replace(/^Received:[\s\S]*?\r\n(?=[^\t])/, '');
}

async function withClient<T>(f: (c: RawClient) => Promise<T>): Promise<T> {
  const c = await srv.client();
  try {
    return await f(c);
  } finally {
    c.close();
  }
}

test('BDAT chunks then BDAT 0 LAST; CRLF.CRLF inside a chunk is plain content', () =>
  withClient(async (c) => {
    await dialogue(c, OPEN);
    const a = 'Subject: chunks\r\n\r\nfirst\r\n.\r\n';
    const b = 'MAIL FROM:<x@y>\r\n';
    c.send(`BDAT ${a.length}\r\n${a}BDAT ${b.length}\r\n${b}BDAT 0 LAST\r\n`);
    const r = await dialogue(c, `S: 250 2.0.0 ${a.length} octets\nS: 250 2.0.0 ${b.length} octets\nS: 250 2.0.0`);
    assert.equal(await bodyOf(r[2]?.text ?? ''), a + b);
    await dialogue(c, 'C: QUIT\nS: 221');
  }));

test('BDAT LAST in one chunk, pipelined with MAIL and RCPT', () =>
  withClient(async (c) => {
    await dialogue(c, 'S: 220\nC: EHLO c\nS: 250');
    const m = 'Subject: one\r\n\r\nonly chunk\r\n';
    c.send(`MAIL FROM:<a@test.example>\r\nRCPT TO:<root@test.example>\r\nBDAT ${m.length} LAST\r\n${m}NOOP\r\n`);
    const r = await dialogue(c, 'S: 250 2.1.0\nS: 250 2.1.5\nS: 250 2.0.0\nS: 250 2.0.0 Ok');
    assert.equal(await bodyOf(r[2]?.text ?? ''), m);
  }));

test('BDAT after every RCPT failed: the chunk is read and refused, the session goes on', () =>
  withClient(async (c) => {
    await dialogue(c, 'S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<nobody-here@test.example>\nS: 550 5.1.1');
    const m = 'Subject: lost\r\n\r\nRSET\r\nQUIT\r\n';
    c.send(`BDAT ${m.length}\r\n${m}`);
    await dialogue(c, 'S: 554 5.5.1');
    c.send(`BDAT ${m.length} LAST\r\n${m}`);
    await dialogue(c, 'S: 554 5.5.1\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: BDAT 0 LAST\nS: 250 2.0.0\nC: QUIT\nS: 221');
  }));

test('BDAT without MAIL is read and refused with 503', () =>
  withClient(async (c) => {
    await dialogue(c, 'S: 220\nC: EHLO c\nS: 250');
    c.send('BDAT 6\r\nNOOP\r\n');
    await dialogue(c, 'S: 503 5.5.1\nC: NOOP\nS: 250 2.0.0 Ok');
  }));

test('DATA in the middle of a BDAT transaction is refused; RSET ends it', () =>
  withClient(async (c) => {
    await dialogue(c, OPEN);
    c.send('BDAT 3\r\nabc');
    await dialogue(c, 'S: 250 2.0.0\nC: DATA\nS: 503 5.5.1\nC: MAIL FROM:<a@test.example>\nS: 503 5.5.1\nC: RSET\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250');
  }));

test('BDAT with a size that cannot be read closes the session', () =>
  withClient(async (c) => {
    await dialogue(c, OPEN);
    await dialogue(c, 'C: BDAT lots\nS: 501 5.5.4\nCLOSED');
  }));

test('BDAT content with bare LF is normalized to CRLF', () =>
  withClient(async (c) => {
    await dialogue(c, OPEN);
    const m = 'Subject: lf\n\nline\nline2\r';
    c.send(`BDAT ${m.length} LAST\r\n${m}`);
    const r = await dialogue(c, 'S: 250 2.0.0');
    assert.equal(await bodyOf(r[0]?.text ?? ''), 'Subject: lf\r\n\r\nline\r\nline2\r\n');
  }));

test('BDAT over the size limit is read and refused with 552', async () => {
  const s2 = await startInProcess(basicConfig('smtp max-message-size 1K'));
  const c = await s2.client();
  await dialogue(c, OPEN);
  c.send(`BDAT 3000 LAST\r\n${'x'.repeat(2998)}\r\n`);
  await dialogue(c, 'S: 552 5.3.4\nC: NOOP\nS: 250');
  c.close();
  assert.equal((await s2.messages()).length, 0);
  await s2.close();
});
