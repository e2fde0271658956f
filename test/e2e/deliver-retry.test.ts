/*
 * test/e2e/deliver-retry.test.ts — temporary failures through the running
 * smtpd: an mda that exits 75 (EX_TEMPFAIL) is deferred, its next try is
 * planned on the local schedule (docs/scheduler.md: first retry after
 * 1 min ± 20 %, read back with `smtpctl show queue --json`), and it is
 * delivered on a later attempt. The test does not wait a minute: `smtpctl
 * schedule <msgid>` (the control socket) makes the next try happen now,
 * as an administrator would. With `bounce warn-interval 1s`, the second
 * failed try sends one delay warning (Action: delayed, Will-Retry-Until).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HEAD, field, fileLines, message, queued, readMbox, readReports, sendOk, smtpctl, startSite, testDir, usersTable, waitFor, writeFiles } from './deliver-helpers.js';

/** Fails (75) while $DIR/fail-count holds a number above the calls so far; then records the message. */
const FLAKY_SH = `#!/bin/sh
n=$(cat "$DIR/calls" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$DIR/calls"
if [ "$n" -le "$(cat "$DIR/fail-count")" ]; then
  cat > /dev/null
  echo "try $n: mailbox busy" >&2
  exit 75
fi
cat > "$DIR/delivered.$n"
exit 0
`;

interface QueueEntry {
  readonly evpid: string;
  readonly msgid: string;
  readonly state: string;
  readonly lastTry: number;
  readonly retry: number;
  readonly nextTry: number | null;
  readonly error: string;
}

describe('retries through the daemon', () => {
  it('an mda that exits 75 is deferred on the local schedule, warned about, and delivered on a later try', async (t) => {
    const dir = testDir(t);
    writeFiles(dir, { users: usersTable(dir, ['alice', 'bob']), 'bin/flaky.sh': [FLAKY_SH, 0o755], 'fail-count': '2\n' });
    const d = await startSite(
      dir,
      `${HEAD}
bounce warn-interval 1s
table users file:$DIR/users
action "local" mbox userbase <users>
action "flaky" mda "$DIR/bin/flaky.sh" userbase <users>
match from any for domain "test.example" action "local"
match from any for domain "flaky.example" action "flaky"
`,
    );
    const sent = Date.now();
    const msgid = await sendOk(d.port, { from: 'alice@test.example', to: ['bob@flaky.example'], mailOptions: ['ENVID=retry-1'], data: message({ Subject: 'try, try again' }, 'persistence\n') });

    // First try: deferred, nothing delivered, no report yet (the warn interval had not passed).
    const first = await waitFor('the first deferral', () => d.logs.find((l) => l.startsWith('mda delivery tempfail') && l.includes(`evpid=${msgid}`)), { daemon: d });
    assert.match(first, /attempts=1 stat="4\.3\.0 mda: exited 75 \(EX_TEMPFAIL\): try 1: mailbox busy"/);
    const [e1] = await waitFor('the deferral in the queue', async () => {
      const q = JSON.parse(await smtpctl(dir, '--json', 'show', 'queue', msgid)) as QueueEntry[];
      return q[0]?.state === 'deferred' ? q : undefined;
    }, { daemon: d });
    assert.ok(e1);
    assert.equal(e1.retry, 1);
    assert.match(e1.error, /mailbox busy/);
    // docs/scheduler.md: the first local retry 1 min ± 20 % after the try.
    const wait = (e1.nextTry ?? 0) - e1.lastTry;
    assert.ok(wait >= 47 && wait <= 73, `next try ${wait} s after the first`);
    assert.ok(e1.lastTry * 1000 >= sent - 1000);
    assert.deepEqual(await readReports(join(dir, 'mail', 'alice')), []);

    // Second try, forced now (after the 1 s warn interval): deferred again, and one delay warning.
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal((await smtpctl(dir, 'schedule', msgid)).trim(), '1 envelope scheduled');
    await waitFor('the second deferral', () => d.logs.find((l) => l.startsWith('mda delivery tempfail') && l.includes(`evpid=${msgid}`) && l.includes('attempts=2')), { daemon: d });
    const [warning] = await waitFor('the delay warning', async () => {
      const rs = await readReports(join(dir, 'mail', 'alice'));
      return rs.length > 0 ? rs : undefined;
    }, { daemon: d });
    assert.equal(field(warning?.headers, 'Subject'), 'Delivery Status Notification (Delay)');
    assert.deepEqual(warning?.parts.map((p) => p.type), ['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    const [perMessage, rcpt] = warning?.parts[1]?.blocks ?? [];
    assert.equal(field(perMessage, 'Original-Envelope-Id'), 'retry-1');
    assert.equal(field(rcpt, 'Final-Recipient'), 'rfc822;bob@flaky.example');
    assert.equal(field(rcpt, 'Action'), 'delayed');
    assert.equal(field(rcpt, 'Status'), '4.3.0');
    assert.equal(field(rcpt, 'Diagnostic-Code'), 'X-Postern; mda: exited 75 (EX_TEMPFAIL): try 2: mailbox busy');
    // Will retry until the end of the queue lifetime: 4 days (the default) after arrival.
    const until = Date.parse(field(rcpt, 'Will-Retry-Until') ?? '');
    assert.ok(Math.abs(until - (sent + 4 * 86400_000)) < 60_000, field(rcpt, 'Will-Retry-Until'));
    assert.match(warning?.parts[0]?.text ?? '', /There is no need to send it again\./);
    const [e2] = JSON.parse(await smtpctl(dir, '--json', 'show', 'queue', msgid)) as QueueEntry[];
    assert.equal(e2?.retry, 2);
    const wait2 = (e2?.nextTry ?? 0) - (e2?.lastTry ?? 0);
    assert.ok(wait2 >= 95 && wait2 <= 145, `second retry ${wait2} s after the second try (2 min ± 20 %)`);

    // Third try: delivered; the queue is empty; still only the one warning.
    assert.equal((await smtpctl(dir, 'schedule', 'all')).trim(), '1 envelope scheduled');
    const ok = await waitFor('the delivery', () => d.logs.find((l) => l.startsWith('mda delivery ok') && l.includes(`evpid=${msgid}`)), { daemon: d });
    assert.match(ok, /attempts=3 stat="2\.0\.0 mda: delivered"/);
    assert.match(readFileSync(join(dir, 'delivered.3'), 'utf8'), /^Return-Path: <alice@test\.example>\nDelivered-To: bob@flaky\.example\n[^]*\nSubject: try, try again\n\npersistence\n$/);
    assert.deepEqual(fileLines(join(dir, 'calls')), ['3']);
    await waitFor('the queue to empty', async () => ((await queued(dir)).length === 0 ? true : undefined), { daemon: d });
    assert.equal((await readMbox(join(dir, 'mail', 'alice'))).length, 1);
  });
});
