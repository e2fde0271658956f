/*
 * rspamd, the real one from Debian, in front of Postern two ways: its
 * proxy as a milter, and OpenSMTPD's filter-rspamd (a filter process
 * speaking smtpd-filters(7), which asks rspamd's normal worker over HTTP),
 * run unchanged. rspamd starts once for both (it is slow to start), with a
 * throwaway configuration on 127.0.17.1 (filter-helpers.ts). A plain message
 * is accepted; GTUBE is refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { GTUBE, send, startFiltered, startRspamd, type Helper } from './filter-helpers.js';

let rspamd: Helper | undefined;
before(async () => {
  rspamd = await startRspamd(tempDir('postern-rspamd-'));
});
after(async () => {
  await rspamd?.stop();
});

const PLAIN = 'From: Alice <alice@client.test.example>\nTo: bob@test.example\nSubject: lunch\nDate: Mon, 7 Dec 2026 10:00:00 +0000\nMessage-ID: <lunch-1@client.test.example>\n\nShall we have lunch at noon?\n';
const SPAM = `From: Spammer <s@client.test.example>\nTo: bob@test.example\nSubject: offer\nDate: Mon, 7 Dec 2026 10:00:00 +0000\nMessage-ID: <gtube-1@client.test.example>\n\n${GTUBE}\n`;

test('rspamd as a milter: a plain message is accepted, GTUBE refused with rspamd\'s reply', async () => {
  const dir = tempDir('postern-rspamd-milter-');
  const d = await startFiltered('filter "rspamd" milter "inet:127.0.17.1:11332" content-timeout 60s', 'rspamd', dir);
  try {
    const ok = await send(d.port, 'alice@client.test.example', ['bob@test.example'], PLAIN);
    assert.match(ok.end ?? '', /^250 /);
    const spam = await send(d.port, 's@client.test.example', ['bob@test.example'], SPAM);
    assert.match(spam.end ?? '', /^554 5\.7\.1 Gtube pattern/, 'rspamd refuses GTUBE through the milter, with its own reply');
    await d.stop();
    const msgs = await spoolMessages(join(dir, 'spool'));
    assert.equal(msgs.length, 1);
    assert.ok(!msgs[0]!.body.includes('GTUBE'));
  } finally {
    d.cleanup();
  }
});

test('OpenSMTPD\'s filter-rspamd, unchanged, as a filter process: plain accepted, GTUBE refused', async () => {
  const dir = tempDir('postern-rspamd-proc-');
  const d = await startFiltered('filter "rspamd" proc-exec "/usr/libexec/opensmtpd/filter-rspamd -url http://127.0.17.1:11333"', 'rspamd', dir);
  try {
    const ok = await send(d.port, 'alice@client.test.example', ['bob@test.example'], PLAIN);
    assert.match(ok.end ?? '', /^250 /);
    const spam = await send(d.port, 's@client.test.example', ['bob@test.example'], SPAM);
    assert.match(spam.end ?? '', /^5\d\d /);
    await d.stop();
    const msgs = await spoolMessages(join(dir, 'spool'));
    assert.equal(msgs.length, 1);
    assert.match(msgs[0]!.body, /Shall we have lunch at noon\?\r\n/, 'the message came back whole through filter-dataline');
  } finally {
    d.cleanup();
  }
});
