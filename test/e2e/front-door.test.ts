/*
 * One way into the queue (queue/enqueue.ts): mail submitted with sendmail
 * passes the content filter and the Received: loop check exactly as SMTP
 * mail does — the same filter sees both through the same spool file, the
 * same answers refuse both, and what is accepted is logged and delivered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { basicConfig, startDaemon, tempDir, REPO, type DaemonHandle } from '../helpers/daemon.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { spoolMessages } from '../helpers/inproc.js';
import { run } from '../helpers/tools.js';

const FILTER = `#!/bin/sh
read path
echo "$path" >> "$DIR/paths"
if grep -q SPAMSPAM "$path"; then echo "-1 550 5.7.1 That is spam"; else echo 0; fi
`;

async function start(): Promise<{ d: DaemonHandle; dir: string; sendmail: string }> {
  const dir = tempDir('postern-door-');
  writeFileSync(join(dir, 'filter.sh'), FILTER.replaceAll('$DIR', dir));
  chmodSync(join(dir, 'filter.sh'), 0o755);
  writeFileSync(join(dir, 'smtpserver.conf'), `PARAM contentfilter ${dir}/filter.sh\n`);
  // The filter runs as the SMTP side's user (_postern when the test runs as root): it may write here.
  writeFileSync(join(dir, 'paths'), '');
  chmodSync(join(dir, 'paths'), 0o666);
  const d = await startDaemon(basicConfig('smtpserver-conf "$DIR/smtpserver.conf"\nsmtp max-received 5\n'), { dir });
  const sendmail = join(dir, 'sendmail');
  symlinkSync(join(REPO, 'bin/postern.js'), sendmail);
  return { d, dir, sendmail };
}

async function smtp(port: number, body: string): Promise<string> {
  const c = await RawClient.open(port, '127.0.0.1', '127.0.0.2');
  try {
    await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@client.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: DATA\nS: 354');
    c.send(`${body.replaceAll('\n', '\r\n')}\r\n.\r\n`);
    return (await c.reply()).text;
  } finally {
    c.close();
  }
}

const received = (n: number): string => Array.from({ length: n }, (_, i) => `Received: from hop${i}.example by hop${i + 1}.example; Mon, 7 Dec 2026 10:00:00 +0000\n`).join('');

test('sendmail mail passes the content filter and the loop check exactly like SMTP mail', async () => {
  const { d, dir, sendmail } = await start();
  try {
    const conf = join(dir, 'smtpd.conf');
    // Accepted by both ways in; the filter saw each through the spool, by the same kind of path.
    const viaSmtp = await smtp(d.port, 'Subject: smtp ok\n\nfine');
    assert.match(viaSmtp, /^250 2\.0\.0 [0-9a-f]{8} /);
    const ok = await run(sendmail, ['-C', conf, 'root@test.example'], { input: 'Subject: local ok\n\nfine\n' });
    assert.equal(ok.status, 0, ok.stderr);
    const paths = readFileSync(join(dir, 'paths'), 'utf8').trim().split('\n');
    assert.equal(paths.length, 2, 'the filter ran for the SMTP message and for the sendmail one');
    for (const p of paths) assert.match(p, /^incoming\/[0-9a-f]{8}$/);

    // Refused by the filter, both ways.
    assert.equal(await smtp(d.port, 'Subject: smtp spam\n\nSPAMSPAM'), '550 5.7.1 That is spam');
    const spam = await run(sendmail, ['-C', conf, 'root@test.example'], { input: 'Subject: local spam\n\nSPAMSPAM\n' });
    assert.notEqual(spam.status, 0);
    assert.match(spam.stderr, /550 That is spam/);

    // Refused as a loop, both ways (max-received 5), before the filter is asked.
    assert.equal(await smtp(d.port, `${received(6)}Subject: smtp loop\n\nround and round`), '554 5.4.6 Too many Received: headers: mail loop detected');
    const loop = await run(sendmail, ['-C', conf, 'root@test.example'], { input: `${received(6)}Subject: local loop\n\nround and round\n` });
    assert.notEqual(loop.status, 0);
    assert.match(loop.stderr, /554 Too many Received: headers: mail loop detected/);
    assert.equal(readFileSync(join(dir, 'paths'), 'utf8').trim().split('\n').length, 4, 'loops never reach the filter');

    // One envelope recipient per final destination, whichever way the mail came in.
    const twice = await run(sendmail, ['-C', conf, 'root@test.example', 'ROOT@test.example', 'root@localhost'], { input: 'Subject: local twice\n\nonce\n' });
    assert.equal(twice.status, 0, twice.stderr);
    const c = await RawClient.open(d.port, '127.0.0.1', '127.0.0.1');
    try {
      await dialogue(c, 'S: 220\nC: EHLO localhost\nS: 250\nC: MAIL FROM:<a@client.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: RCPT TO:<ROOT@test.example>\nS: 250\nC: RCPT TO:<root@localhost>\nS: 250\nC: DATA\nS: 354');
      c.send('Subject: smtp twice\r\n\r\nonce\r\n.\r\n');
      assert.equal((await c.reply()).code, 250);
    } finally {
      c.close();
    }

    // Both accepted messages are logged by the door, each in its own words.
    await d.waitForLog(/smtp message session=\S+ msgid=\S+ from=<a@client\.example>/);
    await d.waitForLog(/local message msgid=\S+ from=<\S+> size=\d+ nrcpt=1 uid=\d+ user=\S+/);
    await d.stop();
    const queued = await spoolMessages(join(dir, 'spool'));
    const subject = (m: (typeof queued)[number]): string | undefined => /Subject: (.*)\r\n/.exec(m.body)?.[1];
    assert.deepEqual(queued.map(subject).sort(), ['local ok', 'local twice', 'smtp ok', 'smtp twice'], 'only what was accepted is queued');
    for (const m of queued.filter((x) => subject(x)?.endsWith('twice'))) assert.deepEqual(m.stored.envelope.recipients.map((r) => r.address), ['root@test.example'], subject(m));
  } finally {
    d.cleanup();
  }
});
