/*
 * Filter processes (smtpd-filters(7)): a small filter of our own
 * (test/fixtures/proc-filter.py) decides at each phase — connect, helo,
 * ehlo, mail-from, rcpt-to, data, data-line, commit — with each decision
 * (proceed, junk, reject, disconnect, rewrite), runs as nobody (or its
 * `user`/`group`, started by smtpd's privileged parent when smtpd runs as
 * root, its stdio relayed to the SMTP side), and fails
 * in the two ways a process can: it exits, or it stops answering. The
 * session gets a temporary failure; the daemon lives on and starts the
 * process again for the next session.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tempDir } from '../helpers/daemon.js';
import { createUsers, removeUsers } from '../helpers/users.js';
import { spoolMessages } from '../helpers/inproc.js';
import { RawClient } from '../helpers/smtp-client.js';
import { FIXTURES, send, startFiltered } from './filter-helpers.js';

const FILTER = `filter "mine" proc-exec "/usr/bin/python3 ${join(FIXTURES, 'proc-filter.py')}" timeout 3s`;

async function open(port: number, from = '127.0.0.1'): Promise<RawClient> {
  const c = await RawClient.open(port, '127.0.0.1', from);
  return c;
}

test('a filter process decides at each phase: disconnect, reject, rewrite, junk, data lines, commit', async () => {
  const dir = tempDir('postern-proc-');
  const d = await startFiltered(FILTER, 'mine', dir);
  try {
    // connect: a disconnect decision for 127.0.17.66.
    const bad = await open(d.port, '127.0.17.66');
    assert.equal((await bad.reply()).text, '554 5.7.1 Your address is not welcome');
    bad.close();
    // helo/ehlo: reject and rewrite.
    const c = await open(d.port);
    await c.reply();
    c.send('EHLO bad.helo\r\n');
    assert.equal((await c.reply()).text, '550 5.7.1 Bad HELO');
    c.send('HELO rewrite.me\r\n');
    assert.match((await c.reply()).text, /^250 /);
    // mail-from: reject, rewrite, junk; rcpt-to: reject.
    assert.equal((await send(d.port, 'rej@client.test.example', ['b@test.example'], '', c)).mail, '550 5.7.1 Sender refused by the filter');
    const rw = await send(d.port, 'rw@client.test.example', ['nobody@test.example', 'b@test.example'], 'Subject: rewritten\n\nplease shout this\n', c);
    assert.equal(rw.rcpts[0], '550 5.1.1 No such user here');
    assert.match(rw.end ?? '', /^250 /);
    const junk = await send(d.port, 'junk@client.test.example', ['b@test.example'], 'Subject: junk\n\nbuy now\n', c);
    assert.match(junk.end ?? '', /^250 /);
    // commit: refused after the data lines.
    assert.equal((await send(d.port, 'a@client.test.example', ['b@test.example'], 'Subject: no\n\nREJECTCOMMIT\n', c)).end, '554 5.7.1 Content refused by the filter');
    c.close();
    await d.stop();
    const msgs = await spoolMessages(join(dir, 'spool'));
    assert.equal(msgs.length, 2);
    const r = msgs.find((m) => m.body.includes('Subject: rewritten'));
    assert.ok(r);
    assert.equal(r.stored.envelope.sender, 'rewritten@client.test.example', 'mail-from rewritten');
    assert.equal(r.stored.envelope.client.helo, 'rewritten.example', 'helo rewritten');
    assert.match(r.body, /^X-Proc-Filter: seen\r\nReceived: from rewritten\.example/, 'the data lines came back with a header added');
    assert.match(r.body, /PLEASE SHOUT THIS/, 'and a line changed');
    const j = msgs.find((m) => m.body.includes('buy now'));
    assert.ok(j);
    assert.match(j.body, /^X-Spam: yes\r\n/, 'junk: X-Spam header');
    // As root the filter runs as nobody (no `user`): under privilege separation the privileged parent starts it.
    const uid = process.getuid?.() === 0 ? Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim()) : process.getuid?.();
    assert.ok(d.logs.some((l) => new RegExp(`filter stderr.*running as uid ${uid}\\b`).test(l)), `the filter runs as nobody (uid ${uid})`);
  } finally {
    d.cleanup();
  }
});

test('under privilege separation the parent starts the filter as its `user` and `group`; the SMTP side relays', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async (t) => {
  const dir = tempDir('postern-proc-user-');
  const [u] = createUsers(dir, 'pfl', 1);
  assert.ok(u);
  t.after(() => removeUsers([u]));
  const mailGid = Number(spawnSync('getent', ['group', 'mail'], { encoding: 'utf8' }).stdout.split(':')[2]);
  const d = await startFiltered(`${FILTER} user ${u.name} group mail`, 'mine', dir);
  try {
    assert.match((await send(d.port, 'a@client.test.example', ['b@test.example'], 'Subject: as a user\n\nhello\n')).end ?? '', /^250 /);
    const line = await d.waitForLog(/filter stderr.*running as uid/);
    const m = /running as uid (\d+) gid (\d+) ppid (\d+)/.exec(line);
    assert.ok(m, line);
    assert.equal(Number(m[1]), u.uid, 'the filter runs as its configured user');
    assert.equal(Number(m[2]), mailGid, 'and its configured group');
    // Its ancestors (through /bin/sh -c): the privileged parent, not the SMTP side.
    const side = Number(/SMTP side pid=(\d+)/.exec(await d.waitForLog(/SMTP side pid=\d+ runs as _postern/))?.[1]);
    let pid = Number(m[3]);
    while (pid !== d.proc.pid && pid !== side && pid > 1) pid = Number(/^PPid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    assert.equal(pid, d.proc.pid, 'started by the privileged parent, not the SMTP side');
  } finally {
    d.cleanup();
  }
});

test('a filter process that exits or hangs: the session gets 451, the daemon lives on and starts it again', async () => {
  const dir = tempDir('postern-proc-fail-');
  const d = await startFiltered(FILTER, 'mine', dir);
  try {
    const crash = await send(d.port, 'crash@client.test.example', ['b@test.example'], '');
    assert.equal(crash.mail, '451 4.7.0 Temporary failure in a mail filter, try again later');
    await d.waitForLog(/proc-session-failed.*filter process exited/);
    await new Promise((r) => setTimeout(r, 1100)); // restarts are at most once a second
    assert.match((await send(d.port, 'a@client.test.example', ['b@test.example'], 'Subject: after the crash\n\nok\n')).end ?? '', /^250 /);
    const hang = await send(d.port, 'hang@client.test.example', ['b@test.example'], '');
    assert.equal(hang.mail, '451 4.7.0 Temporary failure in a mail filter, try again later');
    await d.waitForLog(/proc-failed.*no answer to mail-from in 3000 ms/);
    await new Promise((r) => setTimeout(r, 1100));
    assert.match((await send(d.port, 'a@client.test.example', ['b@test.example'], 'Subject: after the hang\n\nok\n')).end ?? '', /^250 /);
  } finally {
    d.cleanup();
  }
});
