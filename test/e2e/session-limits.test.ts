/*
 * End to end: the built smtpd, as its own process, against a raw socket —
 * the two session defects of issue 14: a client that sends NOOP after NOOP
 * (the junk-command limit), and a BDAT chunk over the size limit, which
 * must be answered at once instead of being waited for.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, basicConfig, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient, dialogue, type ParsedReply } from '../helpers/smtp-client.js';

let d: DaemonHandle;
before(async () => {
  d = await startDaemon(basicConfig('smtp max-message-size 1K'));
});
after(async () => {
  await d.stop();
  d.cleanup();
});

/** Every reply until the server closes (or `max`). */
async function repliesUntilClosed(c: RawClient, max: number): Promise<ParsedReply[]> {
  const out: ParsedReply[] = [];
  while (out.length < max) {
    try {
      out.push(await c.reply(10_000));
    } catch {
      break;
    }
  }
  return out;
}

test('3,000 NOOPs in a row: 100 are answered 250, then 421 4.7.0 and the connection is closed', async () => {
  const c = await RawClient.open(d.port);
  try {
    await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250');
    c.send('NOOP\r\n'.repeat(3000));
    const got = await repliesUntilClosed(c, 3000);
    assert.equal(got.filter((r) => r.code === 250).length, 100);
    assert.match(got.at(-1)?.text ?? '', /^421 4\.7\.0 mx\.test\.example Too many junk commands/);
    assert.ok(await c.waitClosed(), 'closed by the server');
    await d.waitForLog(/smtp failed-command .*command=NOOP result="421 4\.7\.0/);
  } finally {
    c.close();
  }
});

test('BDAT 99999999999 LAST: 552 5.3.4 at once, and the session ends (its chunk cannot be read)', async () => {
  const c = await RawClient.open(d.port);
  try {
    await dialogue(c, 'S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250');
    c.send('BDAT 99999999999 LAST\r\n');
    const r = await c.reply(3000);
    assert.match(r.text, /^552 5\.3\.4 /);
    assert.ok(await c.waitClosed(3000));
  } finally {
    c.close();
  }
});

test('a BDAT chunk over the size limit is refused before it is sent; its bytes are then read and thrown away', async () => {
  const c = await RawClient.open(d.port);
  try {
    await dialogue(c, 'S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250');
    c.send('BDAT 3000 LAST\r\n');
    const r = await c.reply(3000);
    assert.match(r.text, /^552 5\.3\.4 /, 'answered while the chunk has not been sent');
    c.send(`${'x'.repeat(2998)}\r\n`);
    await dialogue(c, 'C: NOOP\nS: 250 2.0.0 Ok\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: BDAT 4 LAST\nR: hi\\r\\n\nS: 250 2.0.0\nC: QUIT\nS: 221');
  } finally {
    c.close();
  }
});
