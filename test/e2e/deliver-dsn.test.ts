/*
 * test/e2e/deliver-dsn.test.ts — delivery status notifications through the
 * running smtpd. An mda that exits 1 fails its recipients; the report goes
 * back to the sender, a local mbox user, and is read with Python's email
 * package and checked field by field (RFC 3461–3464): multipart/report,
 * Reporting-MTA, Original-Envelope-Id (ENVID), Arrival-Date,
 * Original-Recipient (ORCPT), Final-Recipient, Action, Status,
 * Diagnostic-Code, Last-Attempt-Date, and what is returned per RET.
 * NOTIFY=NEVER gives no report, NOTIFY=SUCCESS a "delivered" one; mail
 * from <> is never bounced, and a report that cannot be delivered is
 * dropped, not bounced again.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DaemonHandle } from '../helpers/daemon.js';
import { HEAD, field, fileLines, message, readMbox, readReports, sendOk, startSite, testDir, usersTable, waitFor, writeFiles, type Cleanup, type Report } from './deliver-helpers.js';

/** Every call is logged to $DIR/fail.log: "<RECIPIENT> <SENDER>". */
const FAIL_SH = `#!/bin/sh
echo "$RECIPIENT <$SENDER>" >> "$DIR/fail.log"
cat > /dev/null
echo "mailbox of $USER is on fire" >&2
exit 1
`;

const CONFIG = `${HEAD}
table users file:$DIR/users
action "local" mbox userbase <users>
action "fail" mda "$DIR/bin/fail.sh" userbase <users>
match from any for domain "test.example" action "local"
match from any for domain "fail.example" action "fail"
`;

async function site(t: Cleanup): Promise<{ dir: string; d: DaemonHandle }> {
  const dir = testDir(t);
  writeFiles(dir, { users: usersTable(dir, ['alice', 'bob', 'carol', 'dave', 'ghost']), 'bin/fail.sh': [FAIL_SH, 0o755] });
  return { dir, d: await startSite(dir, CONFIG) };
}

async function reports(dir: string, user: string, n: number, d: DaemonHandle): Promise<Report[]> {
  return waitFor(`${n} report(s) in ${user}'s mbox`, async () => {
    const rs = await readReports(join(dir, 'mail', user));
    return rs.length >= n ? rs : undefined;
  }, { daemon: d });
}

/** RFC 5322 date, as Python would accept it. */
const DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/;

describe('delivery status notifications through the daemon', () => {
  it('an mda that exits 1: one failure report for both recipients, checked field by field, the whole message returned', async (t) => {
    const { dir, d } = await site(t);
    const before = Date.now() - 1000;
    const original = message({ From: 'Alice <alice@test.example>', To: 'bob@fail.example, carol@fail.example', Subject: 'doomed', 'Message-ID': '<doomed@test.example>' }, 'From the sender:\nplease read\n');
    const msgid = await sendOk(d.port, {
      from: 'alice@test.example',
      to: ['bob@fail.example', 'carol@fail.example', 'dave@test.example'],
      mailOptions: ['RET=FULL', 'ENVID=env+2Did-42'],
      rcptOptions: [['ORCPT=rfc822;Bob.Original@fail.example'], [], []],
      data: original,
    });
    const [r] = await reports(dir, 'alice', 1, d);
    assert.ok(r);
    // The envelope of the report: from <>, delivered like any local mail.
    assert.match(r.from, /^MAILER-DAEMON /);
    assert.equal(field(r.headers, 'Return-Path'), undefined);
    assert.equal(field(r.headers, 'Delivered-To'), 'alice@test.example');
    // The header section.
    assert.equal(field(r.headers, 'From'), 'Mail Delivery System <MAILER-DAEMON@mx.test.example>');
    assert.equal(field(r.headers, 'To'), '<alice@test.example>');
    assert.equal(field(r.headers, 'Subject'), 'Undelivered Mail Returned to Sender');
    assert.equal(field(r.headers, 'Auto-Submitted'), 'auto-replied');
    assert.equal(field(r.headers, 'MIME-Version'), '1.0');
    assert.match(field(r.headers, 'Date') ?? '', DATE);
    assert.match(field(r.headers, 'Message-ID') ?? '', /^<[^<>@\s]+@mx\.test\.example>$/);
    assert.equal(r.type, 'multipart/report');
    assert.equal(r.params['report-type'], 'delivery-status');
    assert.deepEqual(r.parts.map((p) => p.type), ['text/plain', 'message/delivery-status', 'message/rfc822']);

    // 1. For people.
    const human = r.parts[0]?.text ?? '';
    assert.match(human, /This is the mail system at mx\.test\.example\./);
    assert.match(human, /<bob@fail\.example>: failed, 5\.3\.0: mda: exited 1: mailbox of bob is on fire/);
    assert.match(human, /<carol@fail\.example>: failed, 5\.3\.0: mda: exited 1: mailbox of carol is on fire/);
    assert.doesNotMatch(human, /dave/, 'the delivered recipient is not in a failure report');

    // 2. message/delivery-status: per-message fields, then one block per failed recipient.
    const [perMessage, ...perRcpt] = r.parts[1]?.blocks ?? [];
    assert.equal(field(perMessage, 'Reporting-MTA'), 'dns; mx.test.example');
    assert.equal(field(perMessage, 'X-Postern-Queue-ID'), msgid);
    assert.equal(field(perMessage, 'Original-Envelope-Id'), 'env-id-42', 'ENVID is xtext: +2D is "-"');
    const arrival = field(perMessage, 'Arrival-Date') ?? '';
    assert.match(arrival, DATE);
    assert.ok(Date.parse(arrival) >= before - 1000 && Date.parse(arrival) <= Date.now());
    assert.equal(perRcpt.length, 2);
    const byFinal = new Map(perRcpt.map((b) => [field(b, 'Final-Recipient'), b]));
    const bob = byFinal.get('rfc822;bob@fail.example');
    const carol = byFinal.get('rfc822;carol@fail.example');
    assert.ok(bob && carol, [...byFinal.keys()].join(' '));
    assert.equal(field(bob, 'Original-Recipient'), 'rfc822;Bob.Original@fail.example');
    assert.equal(field(carol, 'Original-Recipient'), undefined, 'no ORCPT, no Original-Recipient');
    for (const [b, who] of [[bob, 'bob'], [carol, 'carol']] as const) {
      assert.equal(field(b, 'Action'), 'failed');
      assert.equal(field(b, 'Status'), '5.3.0');
      assert.equal(field(b, 'Diagnostic-Code'), `X-Postern; mda: exited 1: mailbox of ${who} is on fire`);
      assert.match(field(b, 'Last-Attempt-Date') ?? '', DATE);
      assert.equal(field(b, 'Remote-MTA'), undefined, 'a local delivery has no remote MTA');
      assert.equal(field(b, 'Will-Retry-Until'), undefined);
    }

    // 3. RET=FULL: the whole message, with our Received: on top.
    const returned = r.parts[2]?.message;
    assert.equal(field(returned?.headers, 'Subject'), 'doomed');
    assert.equal(field(returned?.headers, 'Message-ID'), '<doomed@test.example>');
    assert.match(field(returned?.headers, 'Received') ?? '', new RegExp(`by mx\\.test\\.example \\(Postern\\) with ESMTP id ${msgid};`));
    // (Python's mbox does not undo mboxrd quoting: the body's From_ line reads ">From".)
    assert.equal(returned?.body.replace(/\n+$/, '\n'), '>From the sender:\nplease read\n');

    // dave got the message; the mda was run once per failed recipient, and never for the report.
    assert.equal((await readMbox(join(dir, 'mail', 'dave'))).length, 1);
    assert.deepEqual(fileLines(join(dir, 'fail.log')).sort(), ['bob@fail.example <alice@test.example>', 'carol@fail.example <alice@test.example>']);
    const sentLine = await waitFor('the log line', () => d.logs.find((l) => l.startsWith('bounce sent') && l.includes(`for=${msgid} kind=failure`)), { daemon: d });
    assert.match(sentLine, /to=<alice@test\.example> .*rcpts=(<bob@fail\.example>,<carol@fail\.example>|<carol@fail\.example>,<bob@fail\.example>)$/);
  });

  it('RET=HDRS returns the header section only', async (t) => {
    const { dir, d } = await site(t);
    await sendOk(d.port, { from: 'alice@test.example', to: ['bob@fail.example'], mailOptions: ['RET=HDRS'], data: message({ Subject: 'headers only', 'X-Marker': 'kept' }, 'secret body\n') });
    const [r] = await reports(dir, 'alice', 1, d);
    assert.deepEqual(r?.parts.map((p) => p.type), ['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    const headers = r?.parts[2]?.text ?? '';
    assert.match(headers, /^Received: from client\.test /);
    assert.match(headers, /\r?\nSubject: headers only\r?\nX-Marker: kept\r?\n/);
    assert.doesNotMatch(headers, /secret body/);
    assert.doesNotMatch(readFileSync(join(dir, 'mail', 'alice'), 'latin1'), /secret body/);
    assert.match(r?.parts[0]?.text ?? '', /Its header section is attached to this report\./);
  });

  it('NOTIFY=NEVER: no report; NOTIFY=SUCCESS: a "delivered" report', async (t) => {
    const { dir, d } = await site(t);
    await sendOk(d.port, { from: 'alice@test.example', to: ['bob@fail.example'], rcptOptions: ['NOTIFY=NEVER'], data: message({ Subject: 'never tell' }, 'x\n') });
    await waitFor('the failure', () => d.logs.find((l) => l.startsWith('mda delivery permfail') && l.includes('to=<bob@fail.example>')), { daemon: d });
    // Then a success report, which also shows that nothing else was queued for alice before it.
    const msgid = await sendOk(d.port, { from: 'alice@test.example', to: ['dave@test.example'], mailOptions: ['ENVID=ok-1'], rcptOptions: ['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;dave@test.example'], data: message({ Subject: 'tell me', 'X-Marker': 'success' }, 'body of the success\n') });
    const rs = await reports(dir, 'alice', 1, d);
    await new Promise((r) => setTimeout(r, 500)); // a report for the NEVER message would have come first; allow a straggler to show up
    const all = await readReports(join(dir, 'mail', 'alice'));
    assert.equal(all.length, 1, all.map((r) => field(r.headers, 'Subject')).join(', '));
    const [r] = rs;
    assert.equal(field(r?.headers, 'Subject'), 'Delivery Status Notification (Success)');
    assert.equal(r?.type, 'multipart/report');
    assert.deepEqual(r?.parts.map((p) => p.type), ['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    const [perMessage, rcpt, ...more] = r?.parts[1]?.blocks ?? [];
    assert.equal(more.length, 0);
    assert.equal(field(perMessage, 'Reporting-MTA'), 'dns; mx.test.example');
    assert.equal(field(perMessage, 'X-Postern-Queue-ID'), msgid);
    assert.equal(field(perMessage, 'Original-Envelope-Id'), 'ok-1');
    assert.equal(field(rcpt, 'Original-Recipient'), 'rfc822;dave@test.example');
    assert.equal(field(rcpt, 'Final-Recipient'), 'rfc822;dave@test.example');
    assert.equal(field(rcpt, 'Action'), 'delivered');
    assert.equal(field(rcpt, 'Status'), '2.0.0');
    assert.equal(field(rcpt, 'Diagnostic-Code'), undefined);
    assert.match(r?.parts[0]?.text ?? '', /<dave@test\.example>: delivered, 2\.0\.0/);
    assert.match(r?.parts[2]?.text ?? '', /X-Marker: success/);
    assert.doesNotMatch(r?.parts[2]?.text ?? '', /body of the success/);
    assert.equal((await readMbox(join(dir, 'mail', 'dave'))).length, 1);
    assert.ok(d.logs.some((l) => /^bounce sent .*kind=success rcpts=<dave@test\.example>/.test(l)));
  });

  it('mail from <> is never bounced, and a report that fails is dropped, not bounced again', async (t) => {
    const { dir, d } = await site(t);
    // 1. A failing delivery of a message from <>: no report (to nobody).
    const id1 = await sendOk(d.port, { from: '', to: ['bob@fail.example'], data: message({ Subject: 'from the null sender' }, 'x\n') });
    await waitFor('the report to be dropped', () => d.logs.find((l) => l.startsWith('bounce dropped') && l.includes(`for=${id1}`) && l.includes('reason="null sender"')), { daemon: d });
    // 2. A sender whose own mailbox fails: its report (from <>) fails in turn, and that is the end of it.
    const id2 = await sendOk(d.port, { from: 'ghost@fail.example', to: ['carol@fail.example'], data: message({ Subject: 'from a broken mailbox' }, 'x\n') });
    await waitFor('the report to ghost', () => d.logs.find((l) => l.startsWith('bounce sent') && l.includes(`for=${id2}`) && l.includes('to=<ghost@fail.example>')), { daemon: d });
    const reportFailed = await waitFor('the report\'s own failure', () => d.logs.find((l) => l.startsWith('mda delivery permfail') && l.includes('from=<>') && l.includes('to=<ghost@fail.example>')), { daemon: d });
    const reportId = /evpid=([0-9a-f]{8})/.exec(reportFailed)?.[1];
    await waitFor('the second-order report to be dropped', () => d.logs.find((l) => l.startsWith('bounce dropped') && l.includes(`for=${reportId}`) && l.includes('reason="null sender"')), { daemon: d });
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(fileLines(join(dir, 'fail.log')), ['bob@fail.example <>', 'carol@fail.example <ghost@fail.example>', 'ghost@fail.example <>']);
    assert.equal(d.logs.filter((l) => l.startsWith('bounce sent')).length, 1);
    // The queue is empty: nothing waits to be retried.
    await waitFor('the queue to empty', () => (d.logs.filter((l) => l.startsWith('mda delivery')).length === 3 ? true : undefined), { daemon: d });
  });
});
