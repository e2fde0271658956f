/*
 * test/e2e/large-queue.test.ts — a queue written straight into the spool by
 * bench/spool-fill.ts (the spool's own writer, no SMTP) is read by smtpd as
 * its own, and a large one loads while the daemon already serves.
 *
 *  - A few hundred messages for a relay destination that is down (nothing
 *    listens on its port), the spool given to the privsep user as root
 *    (spool-fill --owner): smtpd starts, tries them, defers them; then
 *    Postfix's smtp-sink starts on that port, `smtpctl schedule all`, and
 *    every message arrives there once; the spool ends empty.
 *  - Twelve thousand messages, deliveries paused: a connection is greeted
 *    with 220 while the control socket's `show status` still says the
 *    queue is loading (the order of events, not their timing), and later
 *    the scheduler holds every message, each loaded once.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fillSpool } from '../../bench/spool-fill.js';
import { HEAD, smtpctl, startSite, testDir, waitFor } from './deliver-helpers.js';
import { freePort, startSmtpSink } from '../helpers/mta-peers.js';
import { PRIVSEP_USER, startDaemon } from '../helpers/daemon.js';
import { ControlClient } from '../../src/control/client.js';

/** The destination that is down, then up (this test file's loopback range). */
const DEST = '127.0.13.7';

/** Message files left in the spool's queue/ (outcome logs left out). */
function spoolMessages(spool: string): number {
  let n = 0;
  for (const b of readdirSync(join(spool, 'queue'))) n += readdirSync(join(spool, 'queue', b)).filter((f) => !f.endsWith('.log')).length;
  return n;
}

/** The first line a new connection to 127.0.0.1:port is sent. */
function greeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        s.end('QUIT\r\n');
        resolve(text.slice(0, nl).trim());
      }
    });
    s.once('error', reject);
  });
}

describe('a queue written by bench/spool-fill.ts', () => {
  it('is read by smtpd as its own: deferred while the destination is down, every message delivered once it is back', async (t) => {
    const dir = testDir(t, 'postern-large-queue-');
    const port = await freePort([DEST]);
    const count = 300;
    // As root, the spool is given to the privsep user, as smtpd's parent gives it (what the daemon's SMTP side would have written).
    const owner = process.getuid?.() === 0 ? { owner: PRIVSEP_USER } : {};
    assert.equal(await fillSpool({ spool: join(dir, 'spool'), count, to: 'someone@down.test', action: 'relay', concurrency: 64, ...owner }), count);
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync('id', ['-u', PRIVSEP_USER], { encoding: 'utf8' }));
      const queue = join(dir, 'spool', 'queue');
      const files = readdirSync(queue).flatMap((b) => [join(queue, b), ...readdirSync(join(queue, b)).map((f) => join(queue, b, f))]);
      assert.ok(files.length > count);
      assert.deepEqual(files.filter((f) => statSync(f).uid !== uid), [], `every bucket and message file is ${PRIVSEP_USER}'s`);
    }
    const d = await startSite(dir, `${HEAD}action "relay" relay host smtp+notls://${DEST}:${port}\nmatch from any for domain "down.test" action "relay"\n`);
    await d.waitForLog(/^scheduler: 300 envelope\(s\) in 300 message\(s\) loaded from the queue$/, 30_000);
    await waitFor('the first deferrals', () => d.logs.find((l) => l.startsWith('mta delivery tempfail') && l.includes('ECONNREFUSED')), { daemon: d, timeoutMs: 30_000 });
    const sink = await startSmtpSink(DEST, port);
    try {
      await smtpctl(dir, 'schedule', 'all');
      await waitFor('every message at the sink', () => (sink.messages().length >= count ? true : undefined), { daemon: d, timeoutMs: 120_000 });
      await waitFor('an empty spool', () => (spoolMessages(join(dir, 'spool')) === 0 ? true : undefined), { daemon: d, timeoutMs: 30_000 });
      const got = sink.messages();
      assert.equal(got.length, count, 'each message once');
      const ids = new Set(got.map((m) => /^Message-ID: (.*)$/im.exec(m)?.[1]));
      assert.ok(ids.size >= 16, 'the messages spool-fill wrote');
      assert.ok(got.every((m) => /^Subject: large queue \d+$/m.test(m)));
      assert.equal(d.logs.filter((l) => l.includes('moved queue/')).length, 0, 'nothing found corrupt');
    } finally {
      await sink.close();
    }
  });

  it('a large queue loads while smtpd already answers 220 and says it is loading', async (t) => {
    const dir = testDir(t, 'postern-large-queue-');
    const count = 12_000;
    await fillSpool({ spool: join(dir, 'spool'), count, to: 'someone@down.test', action: 'relay' });
    // Deliveries paused (receive-side daemon); every message may be held in memory.
    const d = await startDaemon(`${HEAD}queue active-limit 100000\naction "relay" relay host smtp+notls://${DEST}:9\nmatch from any for domain "down.test" action "relay"\n`, { dir });
    const control = await ControlClient.connect(join(dir, 'spool', 'smtpd.sock'));
    try {
      const loadedLine = /^scheduler: \d+ envelope\(s\) in \d+ message\(s\) loaded from the queue/;
      // Right after "smtpd ready": a session is greeted, and the control socket says the load goes on.
      const hello = await greeting(d.port);
      const status = (await control.request('show status')) as { queue?: string; messages?: number };
      assert.match(hello, /^220 /);
      assert.equal(status.queue, 'loading', 'the 220 came while the queue was still loading');
      assert.ok((status.messages ?? count) < count);
      const loaded = await d.waitForLog(loadedLine, 300_000);
      const order = [d.logs.findIndex((l) => l.startsWith('smtpd ready')), d.logs.findIndex((l) => l.startsWith('smtp connected')), d.logs.indexOf(loaded)];
      assert.deepEqual([...order].sort((a, b) => a - b), order, 'ready, then the session, then the end of the load');
      assert.equal(loaded, `scheduler: ${count} envelope(s) in ${count} message(s) loaded from the queue`, 'every message, each once');
      assert.equal(((await control.request('show status')) as { queue?: string }).queue, undefined);
      const entries = (await control.request('show queue')) as { evpid: string }[];
      assert.equal(new Set(entries.map((e) => e.evpid)).size, count);
    } finally {
      control.close();
      await d.stop();
      d.cleanup();
    }
  });
});
