/*
 * test/e2e/deliver-mbox.test.ts — mail sent over SMTP by third-party
 * clients (swaks, Python's smtplib) to the running smtpd ends up in
 * `<mbox path>/<user>`, and a real mail reader (Python's mailbox.mbox)
 * finds each message with its From_ line, headers and body: lines that
 * start with "From " are quoted (mboxrd), so a body that looks like the
 * start of another message never splits the mailbox.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { requireTool, run } from '../helpers/tools.js';
import { HEAD, message, readMbox, sendOk, startSite, testDir, usersTable, waitFor, waitForMbox, writeFiles } from './deliver-helpers.js';

const CONFIG = `${HEAD}
table users file:$DIR/users
action "local" mbox userbase <users>
match from any for domain "test.example" action "local"
`;

/** asctime(3): "Thu Nov 24 18:22:48 1986". */
const ASCTIME = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \d{4}$/;

describe('mbox delivery through the daemon', () => {
  it('two messages to one user in a row: a mail reader finds both, headers, bodies and From_ quoting intact', async (t) => {
    const swaks = requireTool('swaks');
    const dir = testDir(t);
    writeFiles(dir, { users: usersTable(dir, ['alice', 'bob']) });
    const d = await startSite(dir, CONFIG);

    // 1. swaks. Its --body is sent as given (LF → CRLF on the wire).
    const first = ['From the start of a line', '>From already quoted', 'Fromage is not From', ' From after a blank', '.', '..two dots', 'last line of the first'].join('\n');
    const sw = await run(swaks, ['--server', '127.0.0.1', '--port', String(d.port), '--helo', 'swaks.test', '--from', 'carol@remote.example', '--to', 'alice@test.example', '--header', 'Subject: first, by swaks', '--body', first]);
    assert.equal(sw.status, 0, sw.stdout + sw.stderr);
    assert.match(sw.stdout, /<- {2}250 2\.0\.0 [0-9a-f]{8} Message accepted for delivery/);
    await waitForMbox(join(dir, 'mail', 'alice'), 1, { daemon: d });

    // 2. smtplib, a body holding what would be a second message to a reader that does not quote.
    const forged = 'one\n\nFrom mallory@evil.example Mon Jan  1 00:00:00 2024\nSubject: forged\n\nnot a message\n';
    const id2 = await sendOk(d.port, { from: 'dave@remote.example', to: ['alice@test.example'], data: message({ From: 'Dave <dave@remote.example>', To: 'alice@test.example', Subject: 'second, by smtplib', 'Message-ID': '<second@remote.example>' }, forged) });

    const path = join(dir, 'mail', 'alice');
    const ms = await waitForMbox(path, 2, { daemon: d });
    assert.equal(ms.length, 2, 'the forged From_ line did not start a third message');
    const [m1, m2] = ms as [(typeof ms)[0], (typeof ms)[0]];

    // The From_ lines: envelope sender and asctime.
    assert.match(m1.from, /^carol@remote\.example /);
    assert.match(m1.from.replace(/^\S+ /, ''), ASCTIME);
    assert.match(m2.from, /^dave@remote\.example /);
    assert.match(m2.from.replace(/^\S+ /, ''), ASCTIME);

    // Headers: Return-Path and Delivered-To first, then our Received:, then the client's.
    assert.deepEqual(m1.headers.slice(0, 2), [['Return-Path', '<carol@remote.example>'], ['Delivered-To', 'alice@test.example']]);
    assert.equal(m1.headers[2]?.[0], 'Received');
    assert.match(m1.headers[2]?.[1] ?? '', /^from swaks\.test \(localhost \[127\.0\.0\.1\]\)\s+by mx\.test\.example \(Postern\) with ESMTP id [0-9a-f]{8}\s+for <alice@test\.example>;/);
    assert.equal(m1.header('Subject'), 'first, by swaks');
    assert.equal(m1.header('To'), 'alice@test.example');
    assert.deepEqual(m2.headers.slice(0, 2), [['Return-Path', '<dave@remote.example>'], ['Delivered-To', 'alice@test.example']]);
    assert.match(m2.header('Received') ?? '', new RegExp(`with ESMTP id ${id2}\\s+for <alice@test\\.example>;`));
    assert.equal(m2.header('Subject'), 'second, by smtplib');
    assert.equal(m2.header('Message-ID'), '<second@remote.example>');

    // Bodies: mboxrd quoting (one more ">" before /^>*From /), dot-stuffing undone, nothing else touched.
    assert.equal(
      m1.text,
      ['>From the start of a line', '>>From already quoted', 'Fromage is not From', ' From after a blank', '.', '..two dots', 'last line of the first', ''].join('\n'),
    );
    assert.equal(m2.text, 'one\n\n>From mallory@evil.example Mon Jan  1 00:00:00 2024\nSubject: forged\n\nnot a message\n');

    // The file itself: LF line ends, a blank line after each message, 0600, no lock left behind.
    const raw = readFileSync(path, 'latin1');
    assert.ok(!raw.includes('\r'), 'LF line ends');
    assert.ok(raw.startsWith('From carol@remote.example '));
    assert.match(raw, /\n\nFrom dave@remote\.example /);
    assert.ok(raw.endsWith('not a message\n\n'));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    await waitFor('the delivery log lines', () => (d.logs.filter((l) => /^mda delivery ok .*to=<alice@test\.example>.*stat="2\.0\.0 delivered to mbox /.test(l)).length === 2 ? true : undefined));
  });

  it('one message to two users: each mailbox gets its own copy with its own Delivered-To', async (t) => {
    const dir = testDir(t);
    writeFiles(dir, { users: usersTable(dir, ['alice', 'bob']) });
    const d = await startSite(dir, CONFIG);
    await sendOk(d.port, { from: '', to: ['alice@test.example', 'Bob@Test.Example'], data: message({ Subject: 'to both' }, 'hello both\n') });
    const [a] = await waitForMbox(join(dir, 'mail', 'alice'), 1, { daemon: d });
    const [b] = await waitForMbox(join(dir, 'mail', 'bob'), 1, { daemon: d });
    // The null sender: MAILER-DAEMON on the From_ line, no Return-Path.
    assert.match(a?.from ?? '', /^MAILER-DAEMON /);
    assert.equal(a?.header('Return-Path'), undefined);
    assert.equal(a?.header('Delivered-To'), 'alice@test.example');
    assert.equal(b?.header('Delivered-To'), 'Bob@test.example'); // the domain lowercased, the local part kept
    assert.equal(a?.text, 'hello both\n');
    assert.equal(b?.text, 'hello both\n');
    assert.deepEqual(await readMbox(join(dir, 'mail', 'carol')), []);
  });
});
