/*
 * Slow sessions against the real daemon (issue 14, defect 2): a client that
 * sends NOOP once in a while meets the session's lifetime, and one that
 * keeps a transaction open meets the transaction's, each with 421 4.4.2;
 * neither is helped by every single command arriving in time.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { basicConfig, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';

let d: DaemonHandle;

before(async () => {
  d = await startDaemon(basicConfig('smtp timeout session 4s\nsmtp timeout transaction 2s\nsmtp limit max-unknown-commands 1000\n'));
});
after(async () => {
  await d.stop();
  d.cleanup();
});

/** Send NOOP every 250 ms until the server says something other than 250; return that reply and the time it took. */
async function drip(c: RawClient): Promise<{ text: string; ms: number }> {
  const t0 = Date.now();
  for (let i = 0; i < 200; i++) {
    c.send('NOOP\r\n');
    const r = await c.reply(3000);
    if (r.code !== 250) return { text: r.text, ms: Date.now() - t0 };
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error('never closed');
}

test('a NOOP a second does not keep a session past its lifetime: 421 4.4.2', async () => {
  const c = await RawClient.open(d.port);
  await dialogue(c, 'S: 220\nC: EHLO slow.test\nS: 250');
  const { text, ms } = await drip(c);
  assert.match(text, /^421 4\.4\.2 .*Session time limit exceeded/);
  assert.ok(ms > 2500 && ms < 7000, `closed after ${ms} ms`);
  assert.ok(await c.waitClosed(3000));
  await d.waitForLog(/smtp lifetime-exceeded .*limit=session/);
});

test('an open transaction is bounded by its own lifetime: 421 4.4.2', async () => {
  const c = await RawClient.open(d.port);
  await dialogue(c, 'S: 220\nC: EHLO slow.test\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250');
  const { text, ms } = await drip(c);
  assert.match(text, /^421 4\.4\.2 .*Transaction time limit exceeded/);
  assert.ok(ms > 1200 && ms < 4000, `closed after ${ms} ms`);
  assert.ok(await c.waitClosed(3000));
});

test('RSET ends the transaction and its clock; the session is still bounded', async () => {
  const c = await RawClient.open(d.port);
  await dialogue(c, 'S: 220\nC: EHLO slow.test\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250');
  await new Promise((r) => setTimeout(r, 1200));
  await dialogue(c, 'C: RSET\nS: 250');
  await new Promise((r) => setTimeout(r, 1200));
  await dialogue(c, 'C: MAIL FROM:<a@test.example>\nS: 250\nC: NOOP\nS: 250');
  const { text } = await drip(c);
  assert.match(text, /^421 4\.4\.2 /);
});
