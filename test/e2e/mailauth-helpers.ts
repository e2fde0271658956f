/*
 * test/e2e/mailauth-helpers.ts — what the inbound mail-authentication tests
 * share: a test message, one SMTP transaction from a chosen loopback
 * address (so that the client is not `local`), and a queued message found
 * by its subject.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { RawClient } from '../helpers/smtp-client.js';
import { spoolMessages } from '../helpers/inproc.js';

export function authMessage(from: string, subject: string, extraHeaders = '', to = 'root@test.example'): Buffer {
  return Buffer.from(`${extraHeaders}From: Sender <${from}>\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@t>\r\n\r\nHello,\r\nthis is ${subject}.\r\n`, 'latin1');
}

/** One SMTP transaction to 127.0.0.1:`port` from `ip`; the reply code to MAIL and the reply text at the end of data. */
export async function sendFrom(port: number, ip: string, sender: string, content: Buffer, rcpt = 'root@test.example'): Promise<{ mail: number; final: string }> {
  const c = await RawClient.open(port, '127.0.0.1', ip);
  try {
    await c.reply();
    c.send('EHLO client.good.test\r\n');
    await c.reply();
    c.send(`MAIL FROM:<${sender}>\r\n`);
    const mail = await c.reply();
    if (mail.code !== 250) return { mail: mail.code, final: mail.text };
    c.send(`RCPT TO:<${rcpt}>\r\n`);
    assert.equal((await c.reply()).code, 250);
    c.send('DATA\r\n');
    assert.equal((await c.reply()).code, 354);
    c.send(Buffer.concat([content, Buffer.from('.\r\n')]));
    const final = await c.reply(40_000);
    c.send('QUIT\r\n');
    return { mail: mail.code, final: final.text };
  } finally {
    c.close();
  }
}

/** The queued message whose Subject: is `subject` (its text, and whether it is held). */
export async function queued(daemonDir: string, subject: string): Promise<{ body: string; held: boolean }> {
  const all = await spoolMessages(join(daemonDir, 'spool'));
  const m = all.find((x) => x.body.includes(`Subject: ${subject}\r\n`));
  assert.ok(m, `message "${subject}" is in the queue`);
  return { body: m.body, held: JSON.stringify(m.stored).includes('"hold') };
}
