/*
 * OpenSMTPD's built-in filters (`filter NAME phase … match … DECISION`)
 * in a chain on one listener, from real clients: disconnect at connect by
 * source, reject at HELO by a regular-expression table, junk and rewrite at
 * MAIL FROM, bypass and reject at RCPT TO, reject at commit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { RawClient } from '../helpers/smtp-client.js';
import { send, startFiltered } from './filter-helpers.js';

const FILTERS = `table bad { 127.0.17.66 }
table badhelo { "^spam[.]" }
table junkers { "junk@client.test.example" }
table rw { "rw@client.test.example" }
table vip { "vip@test.example" }
table known { "b@test.example" }
table late { "late@client.test.example" }
filter "f-src" phase connect match src <bad> disconnect "554 5.7.1 Not from there"
filter "f-helo" phase ehlo match helo regex <badhelo> reject "550 5.7.1 That HELO is spam"
filter "f-junk" phase mail-from match mail-from <junkers> junk
filter "f-rw" phase mail-from match mail-from <rw> rewrite "rewritten@client.test.example"
filter "f-vip" phase rcpt-to match rcpt-to <vip> bypass
filter "f-rcpt" phase rcpt-to match !rcpt-to <known> reject "550 5.1.1 Unknown here"
filter "f-commit" phase commit match mail-from <late> reject "554 5.7.1 Not now"
filter "all" chain { f-src, f-helo, f-junk, f-rw, f-vip, f-rcpt, f-commit }`;

test('built-in filters in a chain: each phase and decision', async () => {
  const dir = tempDir('postern-builtin-');
  const d = await startFiltered(FILTERS, 'all', dir);
  try {
    const bad = await RawClient.open(d.port, '127.0.0.1', '127.0.17.66');
    assert.equal((await bad.reply()).text, '554 5.7.1 Not from there');
    bad.close();
    const c = await RawClient.open(d.port, '127.0.0.1');
    await c.reply();
    c.send('EHLO spam.example\r\n');
    assert.equal((await c.reply()).text, '550 5.7.1 That HELO is spam');
    c.send('EHLO client.test.example\r\n');
    assert.match((await c.reply()).text, /^250/);
    const r = await send(d.port, 'rw@client.test.example', ['x@test.example', 'vip@test.example', 'b@test.example'], 'Subject: rewritten\n\nhello\n', c);
    assert.equal(r.rcpts[0], '550 5.1.1 Unknown here');
    assert.match(r.rcpts[1] ?? '', /^250 /, 'bypass: f-rcpt is not asked for the vip');
    assert.match(r.end ?? '', /^250 /);
    assert.match((await send(d.port, 'junk@client.test.example', ['b@test.example'], 'Subject: junk\n\nbuy\n', c)).end ?? '', /^250 /);
    assert.equal((await send(d.port, 'late@client.test.example', ['b@test.example'], 'Subject: late\n\nlate\n', c)).end, '554 5.7.1 Not now');
    c.close();
    await d.stop();
    const msgs = await spoolMessages(join(dir, 'spool'));
    assert.equal(msgs.length, 2);
    const rw = msgs.find((m) => m.body.includes('rewritten'));
    assert.equal(rw?.stored.envelope.sender, 'rewritten@client.test.example');
    assert.deepEqual(rw?.stored.envelope.recipients.map((x) => x.address).sort(), ['b@test.example', 'vip@test.example']);
    const junk = msgs.find((m) => m.body.includes('buy'));
    assert.match(junk?.body ?? '', /^X-Spam: yes\r\n/);
  } finally {
    d.cleanup();
  }
});
