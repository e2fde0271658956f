/*
 * SMTP smuggling against the whole server: each bare-CR/LF and NUL
 * end-of-data variant, followed by a smuggled MAIL/RCPT/DATA, must leave
 * exactly one message in the queue (normalize, the default) — containing
 * the smuggled text as content — or none (`smtp bare-newline reject`, NUL).
 * The smuggled commands must never get replies of their own.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dialogue } from '../helpers/smtp-client.js';
import { startInProcess, type InProc } from '../helpers/inproc.js';
import { basicConfig } from '../helpers/daemon.js';

const VARIANTS: readonly [string, string][] = [
  ['LF.LF', '\n.\n'],
  ['CR.CR', '\r.\r'],
  ['CRLF.LF', '\r\n.\n'],
  ['LF.CRLF', '\n.\r\n'],
  ['CRLF.CR', '\r\n.\r'],
  ['CR.CRLF', '\r.\r\n'],
  ['CR.LF', '\r.\n'],
  ['LF.CR', '\n.\r'],
  ['CRLF NUL.CRLF', '\r\n\0.\r\n'],
  ['CRLF.NUL CRLF', '\r\n.\0\r\n'],
];

const SMUGGLED = 'MAIL FROM:<smuggler@evil.example>\r\nRCPT TO:<root@test.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n';

async function attempt(srv: InProc, ending: string): Promise<{ replies: string[]; queued: { body: string }[] }> {
  const before = new Set((await srv.messages()).map((m) => m.stored.envelope.msgid));
  const c = await srv.client();
  await dialogue(c, 'S: 220\nC: EHLO c\nS: 250\nC: MAIL FROM:<honest@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: DATA\nS: 354');
  c.send(`Subject: honest\r\n\r\nhonest body${ending}${SMUGGLED}\r\n.\r\n`);
  const first = await c.reply();
  c.send('QUIT\r\n');
  const second = await c.reply();
  c.close();
  const queued = (await srv.messages()).filter((m) => !before.has(m.stored.envelope.msgid));
  return { replies: [first.text, second.text], queued };
}

let normal: InProc;
let strict: InProc;
before(async () => {
  normal = await startInProcess(basicConfig());
  strict = await startInProcess(basicConfig('smtp bare-newline reject'));
});
after(async () => {
  await normal.close();
  await strict.close();
});

for (const [name, ending] of VARIANTS) {
  const hasNul = ending.includes('\0');
  test(`smuggling with ${name}: one message at most, smuggled commands stay content (normalize)`, async () => {
    const { replies, queued } = await attempt(normal, ending);
    if (hasNul) {
      assert.match(replies[0] ?? '', /^550 5\.6\.0/);
      assert.equal(queued.length, 0);
    } else {
      assert.match(replies[0] ?? '', /^250 2\.0\.0 [0-9a-f]{8} /);
      assert.equal(queued.length, 1);
      const body = queued[0]?.body ?? '';
      assert.ok(body.includes('MAIL FROM:<smuggler@evil.example>\r\n'), JSON.stringify(body));
      assert.ok(!/[^\r]\n|\r[^\n]/.test(body), `no bare CR/LF stored: ${JSON.stringify(body)}`);
    }
    assert.match(replies[1] ?? '', /^221 /, 'the next reply is QUIT\'s: no reply to a smuggled command');
  });

  test(`smuggling with ${name}: refused whole with smtp bare-newline reject`, async () => {
    const { replies, queued } = await attempt(strict, ending);
    assert.match(replies[0] ?? '', hasNul ? /^550 5\.6\.0/ : /^550 5\.5\.2/);
    assert.equal(queued.length, 0);
    assert.match(replies[1] ?? '', /^221 /);
  });
}

test('a clean message passes in reject mode', async () => {
  const { replies, queued } = await attempt(strict, '\r\n');
  assert.match(replies[0] ?? '', /^250 /);
  assert.equal(queued.length, 1);
});
