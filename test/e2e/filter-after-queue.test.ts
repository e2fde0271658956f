/*
 * After-queue content filtering (Postfix's content_filter): mail received
 * on the public listener is queued and answered at once, then relayed by
 * the rules to a content filter over SMTP; the filter re-injects it through
 * a second, trusted listener (tagged), whose mail the rules deliver. While
 * the filter is down the message waits in the queue; once the filter is up
 * (and the queue run) it is delivered, marked by the filter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, startDaemon, tempDir } from '../helpers/daemon.js';
import { run } from '../helpers/tools.js';
import { FIXTURES, send, startHelper, waitFor } from './filter-helpers.js';

const CONFIG = `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
listen on 127.0.0.1 port 0 tag FILTERED
action "local" mbox
action "scan" relay host smtp://127.0.17.1:10025
match from any tag FILTERED for domain "test.example" action "local"
match from any for domain "test.example" action "scan"
`;

test('after-queue filter: queued while the filter is down, delivered through it once it is up', async () => {
  const dir = tempDir('postern-afterq-');
  const d = await startDaemon(CONFIG, { dir, deliver: true });
  const conf = join(dir, 'smtpd.conf');
  const ctl = (...args: string[]) => run(process.execPath, [join(REPO, 'bin/postern.js'), 'smtpctl', '-f', conf, ...args]);
  let filter: ReturnType<typeof startHelper> | undefined;
  try {
    const [pub, trusted] = d.ports;
    const r = await send(pub!, 'alice@client.test.example', ['root@test.example'], 'Subject: to be scanned\n\nhello\n');
    assert.match(r.end ?? '', /^250 /, 'queued and answered at once, before any filtering');
    // The filter is down: the relay to it fails, the message stays in the queue.
    await d.waitForLog(/127\.0\.17\.1.*(refused|ECONNREFUSED)|deferred|tempfail/i, 30_000);
    const q = await ctl('show', 'queue');
    assert.equal(q.status, 0, q.stderr);
    assert.match(q.stdout, /root@test\.example/);
    // The filter comes up; the queue is run: the message goes through it and back in.
    filter = startHelper('/usr/bin/python3', [join(FIXTURES, 'content-filter.py'), '127.0.17.1', '10025', String(trusted)]);
    await waitFor(() => filter!.output.join('').includes('ready'), 'the content filter');
    assert.equal((await ctl('schedule', 'all')).status, 0);
    const mbox = join(dir, 'mail', 'root');
    await waitFor(() => existsSync(mbox) && readFileSync(mbox, 'utf8').includes('X-Content-Filter: scanned'), `delivery through the filter: ${d.logs.slice(-10).join('\n')}`, 60_000);
    const text = readFileSync(mbox, 'utf8');
    assert.match(text, /X-Content-Filter: scanned\n(?:.*\n)*?Subject: to be scanned/);
    assert.equal((text.match(/^From /gm) ?? []).length, 1, 'delivered once');
  } finally {
    await filter?.stop();
    await d.stop();
    d.cleanup();
  }
});
