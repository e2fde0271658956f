/*
 * Nothing lost, ever: kill -9 the daemon right after a 250 (the message
 * survives a restart) and during DATA (nothing is queued); SIGTERM stops it
 * cleanly; a second daemon on the same spool is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, basicConfig, tempDir } from '../helpers/daemon.js';
import { spoolMessages } from '../helpers/inproc.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';

const SEND = (subject: string) => `S: 220
C: EHLO crash.test
S: 250
C: MAIL FROM:<a@test.example>
S: 250
C: RCPT TO:<root@test.example>
S: 250
C: DATA
S: 354
C: Subject: ${subject}
C:
C: body of ${subject}
C: .
S: 250 2.0.0`;

test('kill -9 right after the 250: the message is there after a restart', async () => {
  const dir = tempDir();
  const d = await startDaemon(basicConfig(), { dir });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const c = await RawClient.open(d.port);
    const r = await dialogue(c, SEND(`crash ${i}`));
    ids.push(/2\.0\.0 ([0-9a-f]{8})/.exec(r[r.length - 1]?.text ?? '')?.[1] ?? '');
    if (i === 4) await d.kill(); // no QUIT, no goodbye: SIGKILL straight after the last 250
    c.close();
  }
  const d2 = await startDaemon(basicConfig(), { dir });
  await d2.waitForLog(/spool .*: 5 message\(s\) queued/);
  await d2.stop();
  const ms = await spoolMessages(`${dir}/spool`);
  assert.deepEqual(ms.map((m) => m.stored.envelope.msgid).sort(), [...ids].sort());
  for (const m of ms) assert.match(m.body, /\r\nbody of crash \d\r\n$/);
  d2.cleanup();
});

test('kill -9 during DATA: nothing is queued after a restart', async () => {
  const dir = tempDir();
  const d = await startDaemon(basicConfig(), { dir });
  const c = await RawClient.open(d.port);
  await dialogue(c, SEND('first').replace(/C: Subject[\s\S]*$/, ''));
  c.send(`Subject: half\r\n\r\n${'some data\r\n'.repeat(20000)}`);
  await new Promise((r) => setTimeout(r, 300));
  await d.kill();
  c.close();
  const d2 = await startDaemon(basicConfig(), { dir });
  await d2.stop();
  assert.equal((await spoolMessages(`${dir}/spool`)).length, 0);
  d2.cleanup();
});

test('SIGTERM: a session in DATA is aborted, an idle one gets 421, exit status 0', async () => {
  const d = await startDaemon(basicConfig());
  const idle = await RawClient.open(d.port);
  await dialogue(idle, 'S: 220\nC: EHLO idle\nS: 250');
  const busy = await RawClient.open(d.port);
  await dialogue(busy, SEND('x').replace(/C: Subject[\s\S]*$/, ''));
  busy.send('Subject: unfinished\r\n\r\npartial\r\n');
  await new Promise((r) => setTimeout(r, 100));
  const code = await d.stop('SIGTERM');
  assert.equal(code, 0);
  await dialogue(idle, 'S: 421 4.3.2\nCLOSED');
  assert.ok(await busy.waitClosed());
  assert.equal((await spoolMessages(`${d.dir}/spool`)).length, 0);
  assert.ok(d.logs.some((l) => /smtpd exiting/.test(l)));
  d.cleanup();
});

test('a second daemon on the same spool is refused, naming the pid', async () => {
  const dir = tempDir();
  const d = await startDaemon(basicConfig(), { dir });
  await assert.rejects(startDaemon(basicConfig(), { dir }), new RegExp(`already running.*pid ${d.proc.pid}`));
  await d.stop();
  d.cleanup();
});
