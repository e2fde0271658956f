/*
 * The sendmail interface: -t with Bcc, headers added for local mail, the
 * daemon stopped (offline queue, exit 75) then started, mailq, and the
 * commands invoked through a symlink under their own names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { symlinkSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, basicConfig, tempDir, REPO } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { run } from '../helpers/tools.js';

const POSTERN = join(REPO, 'bin/postern.js');

function linkAs(dir: string, name: string): string {
  const p = join(dir, name);
  symlinkSync(POSTERN, p);
  return p;
}

test('sendmail -t: recipients from To/Cc/Bcc, Bcc removed, Date/Message-ID/From added', async () => {
  const d = await startDaemon(basicConfig());
  const sendmail = linkAs(d.dir, 'sendmail');
  // Three destinations (two of them relayed): the same local mailbox reached twice would be kept once (front-door.test.ts).
  const msg = 'To: root@test.example\nCc: "Post, Master" <postmaster@far.example>\nBcc: other@far.example\nSubject: from sendmail -t\n\nline one\n.\nline after a dot\n';
  const r = await run(sendmail, ['-C', join(d.dir, 'smtpd.conf'), '-t', '-i', '-F', 'Test User'], { input: msg });
  assert.equal(r.status, 0, r.stderr);
  const ms = (await spoolMessages(`${d.dir}/spool`)).filter((m) => m.body.includes('Subject: from sendmail -t'));
  assert.equal(ms.length, 1);
  const m = ms[0]!;
  assert.deepEqual(m.stored.envelope.recipients.map((x) => x.address).sort(), ['other@far.example', 'postmaster@far.example', 'root@test.example']);
  assert.ok(!/^Bcc:/m.test(m.body), 'Bcc removed');
  assert.match(m.body, /^Received: by mx\.test\.example \(Postern, from userid \d+\)\r\n\tid [0-9a-f]{8}; /);
  assert.match(m.body, /\r\nFrom: "?Test User"? <[^@>]+@mx\.test\.example>\r\n/);
  assert.match(m.body, /\r\nDate: \w{3}, /);
  assert.match(m.body, /\r\nMessage-ID: <[^>]+@mx\.test\.example>\r\n/);
  assert.ok(m.body.endsWith('\r\nline one\r\n.\r\nline after a dot\r\n'), JSON.stringify(m.body));
  assert.equal(m.stored.envelope.client.proto, 'LOCAL');
  await d.stop();
  d.cleanup();
});

test('without -i a line with a single dot ends the message; unknown recipients fail with 67', async () => {
  const d = await startDaemon(basicConfig());
  const sendmail = linkAs(d.dir, 'send-mail');
  const conf = join(d.dir, 'smtpd.conf');
  const r = await run(sendmail, ['-C', conf, '-f', 'sender@test.example', 'root@test.example'], { input: 'Subject: dot\n\nbefore\n.\nafter\n' });
  assert.equal(r.status, 0, r.stderr);
  const m = (await spoolMessages(`${d.dir}/spool`)).find((x) => x.body.includes('Subject: dot'));
  assert.ok(m);
  assert.ok(m.body.endsWith('\r\nbefore\r\n'), JSON.stringify(m.body));
  assert.equal(m.stored.envelope.sender, 'sender@test.example');
  const bad = await run(sendmail, ['-C', conf, 'nosuchuser@test.example'], { input: 'Subject: x\n\nx\n' });
  assert.equal(bad.status, 67, bad.stderr);
  assert.match(bad.stderr, /^sendmail: 550 no valid recipients: nosuchuser@test\.example/);
  await d.stop();
  d.cleanup();
});

test('daemon stopped: sendmail exits 75, the message waits in offline/ and is queued at the next start', async () => {
  const dir = tempDir();
  const d = await startDaemon(basicConfig(), { dir });
  await d.stop();
  const sendmail = linkAs(dir, 'sendmail');
  const conf = join(dir, 'smtpd.conf');
  const r = await run(sendmail, ['-C', conf, 'root@test.example'], { input: 'Subject: while down\n\nhello\n' });
  assert.equal(r.status, 75, r.stderr);
  assert.match(r.stderr, /smtpd is not running/);
  assert.equal(readdirSync(join(dir, 'spool/offline')).length, 1);
  const mailq = linkAs(dir, 'mailq');
  const q = await run(mailq, ['-C', conf]);
  assert.match(q.stdout, /1 message waiting in offline\/ for smtpd to start/);
  const d2 = await startDaemon(basicConfig(), { dir });
  await d2.waitForLog(/enqueued 1 message\(s\) left in offline\//);
  assert.equal(readdirSync(join(dir, 'spool/offline')).length, 0);
  const q2 = await run(mailq, ['-C', conf]);
  assert.match(q2.stdout, /^-Queue ID-  --Size-- ----Arrival Time---- -Sender\/Recipient-------\n[0-9a-f]{8}\s+\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d  \S+@mx\.test\.example\n {41}root@test\.example\n\n-- \d+ Kbytes in 1 Request\.\n$/);
  await d2.stop();
  d2.cleanup();
});

test('an empty queue', async () => {
  const d = await startDaemon(basicConfig());
  const r = await run(process.execPath, [POSTERN, 'mailq', '-C', join(d.dir, 'smtpd.conf')]);
  assert.equal(r.stdout, 'Mail queue is empty\n');
  const bad = await run(process.execPath, [POSTERN, 'sendmail', '-Z']);
  assert.equal(bad.status, 64);
  assert.match(bad.stderr, /^sendmail: unknown option -- Z/);
  await d.stop();
  d.cleanup();
});

test('sendmail -t: unqualified names in To: (To: root) are recipients, qualified as on the command line', async () => {
  const d = await startDaemon(basicConfig());
  const sendmail = linkAs(d.dir, 'sendmail');
  const r = await run(sendmail, ['-C', join(d.dir, 'smtpd.conf'), '-t', '-i'], { input: 'To: root\nCc: other@far.example\nSubject: to root\n\nhello\n' });
  assert.equal(r.status, 0, r.stderr);
  const ms = (await spoolMessages(`${d.dir}/spool`)).filter((m) => m.body.includes('Subject: to root'));
  assert.equal(ms.length, 1);
  const rcpts = ms[0]!.stored.envelope.recipients.map((x) => x.address).sort();
  assert.deepEqual(rcpts, ['other@far.example', 'root@mx.test.example']);
  await d.stop();
  d.cleanup();
});
