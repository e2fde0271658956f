/*
 * test/unit/bounce-dsn.test.ts — the report message (RFC 3464/3462/6533),
 * parsed back with Python's email package.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildDsn, type DsnInput, type DsnRecipient } from '../../src/bounce/dsn.js';
import { field, parseDsn } from './bounce-parse.js';

const ARRIVAL = Date.UTC(2026, 0, 5, 10, 0, 0);
const NOW = ARRIVAL + 3_600_000;

const original = Buffer.from(
  [
    'Received: from mx.example.net (mx.example.net [192.0.2.7])',
    '\tby mail.example.org (Postern) with ESMTPS id 1a2b3c4d;',
    '\tMon, 5 Jan 2026 10:00:00 +0000',
    'From: Alice <alice@example.net>',
    'To: bob@example.org, carol@example.com',
    'Subject: lunch?',
    'Message-ID: <abc@example.net>',
    '',
    'Shall we?',
    '',
  ].join('\r\n'),
);

const bob: DsnRecipient = {
  address: 'bob@example.org',
  orcpt: 'rfc822;Bob@Example.org',
  action: 'failed',
  status: '5.1.1',
  remoteMta: 'dns; mx.example.org',
  diagnostic: 'smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown',
  detail: 'mx.example.org said: 550 5.1.1 user unknown',
  lastAttempt: NOW,
};
const carol: DsnRecipient = { address: 'carol@example.com', original: 'team@example.com', action: 'failed', status: '5.2.2', detail: 'mbox: /var/mail/carol: quota exceeded', lastAttempt: NOW - 1000 };

function input(over: Partial<DsnInput> = {}): DsnInput {
  return {
    hostname: 'mail.example.org',
    kind: 'failure',
    original: { msgid: '1a2b3c4d', sender: 'alice@example.net', envid: 'QQ314159', arrival: ARRIVAL, smtputf8: false },
    recipients: [bob, carol],
    returned: { bytes: original, whole: true },
    date: NOW,
    messageId: 'dsn1.9f8e7d6c@mail.example.org',
    ...over,
  };
}

describe('buildDsn', () => {
  it('failure report: headers, three parts, every field', async () => {
    const dsn = buildDsn(input());
    assert.equal(dsn.utf8, false);
    assert.equal(dsn.eightBit, false);
    const text = dsn.bytes.toString('latin1');
    assert.doesNotMatch(text.replace(/\r\n/g, ''), /[\r\n]/, 'CRLF line ends only');
    const p = await parseDsn(dsn.bytes);
    assert.deepEqual(p.defects, []);
    assert.equal(field(p.headers, 'From'), 'Mail Delivery System <MAILER-DAEMON@mail.example.org>');
    assert.equal(field(p.headers, 'To'), '<alice@example.net>');
    assert.equal(field(p.headers, 'Subject'), 'Undelivered Mail Returned to Sender');
    assert.equal(field(p.headers, 'Auto-Submitted'), 'auto-replied');
    assert.equal(field(p.headers, 'MIME-Version'), '1.0');
    assert.equal(field(p.headers, 'Message-ID'), '<dsn1.9f8e7d6c@mail.example.org>');
    assert.equal(new Date(field(p.headers, 'Date') ?? '').getTime(), NOW);
    assert.equal(p.contentType, 'multipart/report');
    assert.equal(p.params['report-type'], 'delivery-status');
    assert.deepEqual(p.parts.map((x) => x.type), ['text/plain', 'message/delivery-status', 'message/rfc822']);

    const human = p.parts[0]?.text ?? '';
    assert.match(human, /mail system at mail\.example\.org/);
    assert.match(human, /<bob@example\.org>: failed, 5\.1\.1: mx\.example\.org said: 550 5\.1\.1 user unknown/);
    assert.match(human, /<carol@example\.com> \(expanded from <team@example\.com>\): failed, 5\.2\.2: mbox: .*quota exceeded/);

    const [msgFields, b1, b2, ...rest] = p.parts[1]?.blocks ?? [];
    assert.equal(rest.length, 0);
    assert.equal(field(msgFields, 'Reporting-MTA'), 'dns; mail.example.org');
    assert.equal(field(msgFields, 'Original-Envelope-Id'), 'QQ314159');
    assert.equal(new Date(field(msgFields, 'Arrival-Date') ?? '').getTime(), ARRIVAL);
    assert.equal(field(b1, 'Original-Recipient'), 'rfc822;Bob@Example.org');
    assert.equal(field(b1, 'Final-Recipient'), 'rfc822;bob@example.org');
    assert.equal(field(b1, 'Action'), 'failed');
    assert.equal(field(b1, 'Status'), '5.1.1');
    assert.equal(field(b1, 'Remote-MTA'), 'dns; mx.example.org');
    assert.equal(field(b1, 'Diagnostic-Code'), bob.diagnostic, 'folded and unfolded back');
    assert.equal(new Date(field(b1, 'Last-Attempt-Date') ?? '').getTime(), NOW);
    assert.equal(field(b1, 'Will-Retry-Until'), undefined);
    assert.equal(field(b2, 'Original-Recipient'), undefined);
    assert.equal(field(b2, 'Final-Recipient'), 'rfc822;carol@example.com');
    assert.equal(field(b2, 'Status'), '5.2.2');
    assert.equal(field(b2, 'Diagnostic-Code'), 'X-Postern; mbox: /var/mail/carol: quota exceeded');
    assert.equal(field(b2, 'Remote-MTA'), undefined);

    const ret = p.parts[2]?.message;
    assert.equal(field(ret?.headers, 'Subject'), 'lunch?');
    assert.equal(field(ret?.headers, 'Message-ID'), '<abc@example.net>');
    assert.equal(ret?.body.replace(/\r\n/g, '\n'), 'Shall we?\n');
    assert.ok(dsn.bytes.includes(original), 'the original is returned byte for byte');
  });

  it('no ENVID, no ORCPT: the fields are left out', async () => {
    const p = await parseDsn(buildDsn(input({ original: { ...input().original, envid: undefined }, recipients: [{ ...bob, orcpt: undefined }] })).bytes);
    const [m, r] = p.parts[1]?.blocks ?? [];
    assert.equal(field(m, 'Original-Envelope-Id'), undefined);
    assert.equal(field(r, 'Original-Recipient'), undefined);
  });

  it('RET=HDRS: text/rfc822-headers with the header section only', async () => {
    const headers = original.subarray(0, original.indexOf('\r\n\r\n') + 2);
    const p = await parseDsn(buildDsn(input({ returned: { bytes: headers, whole: false } })).bytes);
    assert.deepEqual(p.parts.map((x) => x.type), ['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    assert.equal(p.parts[2]?.text, headers.toString());
    assert.match(p.parts[0]?.text ?? '', /header section is attached/);
  });

  it('nothing returned: two parts', async () => {
    const p = await parseDsn(buildDsn(input({ returned: undefined })).bytes);
    assert.deepEqual(p.parts.map((x) => x.type), ['text/plain', 'message/delivery-status']);
  });

  it('delay warning', async () => {
    const until = ARRIVAL + 4 * 86_400_000;
    const rcpt: DsnRecipient = { address: 'bob@example.org', action: 'delayed', status: '4.4.1', detail: 'connection refused', remoteMta: 'dns; mx.example.org', lastAttempt: NOW, willRetryUntil: until };
    const headers = original.subarray(0, original.indexOf('\r\n\r\n') + 2);
    const p = await parseDsn(buildDsn(input({ kind: 'delay', recipients: [rcpt], returned: { bytes: headers, whole: false } })).bytes);
    assert.equal(field(p.headers, 'Subject'), 'Delivery Status Notification (Delay)');
    const r = p.parts[1]?.blocks?.[1];
    assert.equal(field(r, 'Action'), 'delayed');
    assert.equal(field(r, 'Status'), '4.4.1');
    assert.equal(field(r, 'Diagnostic-Code'), 'X-Postern; connection refused');
    assert.equal(new Date(field(r, 'Will-Retry-Until') ?? '').getTime(), until);
    assert.match(p.parts[0]?.text ?? '', /not been delivered yet[\s\S]*no need to send it again/);
  });

  it('success: delivered and relayed', async () => {
    const p = await parseDsn(
      buildDsn(
        input({
          kind: 'success',
          recipients: [
            { address: 'bob@example.org', action: 'delivered', status: '2.0.0', detail: 'delivered to mailbox' },
            { address: 'carol@example.com', action: 'relayed', status: '2.0.0', remoteMta: 'dns; mx.example.com', diagnostic: 'smtp; 250 2.0.0 ok' },
          ],
          returned: { bytes: original.subarray(0, original.indexOf('\r\n\r\n') + 2), whole: false },
        }),
      ).bytes,
    );
    assert.equal(field(p.headers, 'Subject'), 'Delivery Status Notification (Success)');
    const [, b1, b2] = p.parts[1]?.blocks ?? [];
    assert.deepEqual([field(b1, 'Action'), field(b1, 'Status'), field(b1, 'Diagnostic-Code')], ['delivered', '2.0.0', undefined]);
    assert.deepEqual([field(b2, 'Action'), field(b2, 'Remote-MTA'), field(b2, 'Diagnostic-Code')], ['relayed', 'dns; mx.example.com', 'smtp; 250 2.0.0 ok']);
  });

  it("a status that does not fit the action is replaced by the class's generic one", async () => {
    const p = await parseDsn(
      buildDsn(
        input({
          recipients: [
            { ...bob, status: '2.0.0' },
            { ...carol, status: 'bogus' },
            { ...carol, status: '4.2.2' },
          ],
        }),
      ).bytes,
    );
    assert.deepEqual(p.parts[1]?.blocks?.slice(1).map((b) => field(b, 'Status')), ['5.0.0', '5.0.0', '4.2.2']);
  });

  it('no value can inject a field or a line', async () => {
    const evil = 'x\r\nAction: delivered\r\n\r\nInjected: yes';
    const dsn = buildDsn(input({ original: { ...input().original, envid: evil }, recipients: [{ ...bob, detail: evil, diagnostic: `smtp; ${evil}`, remoteMta: evil }] }));
    const p = await parseDsn(dsn.bytes);
    const blocks = p.parts[1]?.blocks ?? [];
    assert.equal(blocks.length, 2);
    assert.deepEqual(blocks[1]?.filter(([k]) => k === 'Action').length, 1);
    assert.equal(field(blocks[1], 'Action'), 'failed');
    assert.ok(blocks.every((b) => field(b, 'Injected') === undefined));
  });

  it('8-bit body in an 8BITMIME original: message/rfc822, 8bit, 8BITMIME report', async () => {
    const eight = Buffer.from('Subject: hello\r\n\r\nGrüße\r\n', 'utf8');
    const dsn = buildDsn(input({ returned: { bytes: eight, whole: true } }));
    assert.equal(dsn.eightBit, true);
    assert.equal(dsn.utf8, false);
    const p = await parseDsn(dsn.bytes);
    assert.equal(p.parts[2]?.type, 'message/rfc822');
    assert.equal(field(p.parts[2]?.headers, 'Content-Transfer-Encoding'), '8bit');
  });

  describe('SMTPUTF8 (RFC 6533)', () => {
    const utf8Msg = Buffer.from('From: Jörg <jörg@bücher.example>\r\nTo: 用户@例子.广告\r\nSubject: Grüße\r\n\r\nHallo\r\n', 'utf8');
    const rcpt: DsnRecipient = { address: '用户@例子.广告', orcpt: 'utf-8;用户@例子.广告', action: 'failed', status: '5.1.1', detail: 'no such user' };
    const orig = { msgid: '1a2b3c4d', sender: 'jörg@bücher.example', arrival: ARRIVAL, smtputf8: true };

    it('whole message: message/global and message/global-delivery-status, utf-8 addresses', async () => {
      const dsn = buildDsn(input({ original: orig, recipients: [rcpt], returned: { bytes: utf8Msg, whole: true } }));
      assert.equal(dsn.utf8, true);
      assert.equal(dsn.eightBit, true);
      const p = await parseDsn(dsn.bytes);
      assert.deepEqual(p.defects, []);
      assert.deepEqual(p.parts.map((x) => x.type), ['text/plain', 'message/global-delivery-status', 'message/global']);
      assert.equal(field(p.headers, 'To'), '<jörg@bücher.example>');
      assert.match(field(p.parts[0]?.headers, 'Content-Type') ?? '', /charset="?utf-8/);
      const r = p.parts[1]?.blocks?.[1];
      assert.equal(field(r, 'Final-Recipient'), 'utf-8;用户@例子.广告');
      assert.equal(field(r, 'Original-Recipient'), 'utf-8;用户@例子.广告');
      assert.equal(field(p.parts[2]?.message?.headers, 'Subject'), 'Grüße');
    });

    it('headers: message/global-headers', async () => {
      const headers = utf8Msg.subarray(0, utf8Msg.indexOf('\r\n\r\n') + 2);
      const p = await parseDsn(buildDsn(input({ original: orig, recipients: [rcpt], returned: { bytes: headers, whole: false } })).bytes);
      assert.equal(p.parts[2]?.type, 'message/global-headers');
      assert.match(p.parts[2]?.text ?? '', /Subject: Grüße/);
    });

    it('an SMTPUTF8 message that is all ASCII gets the classic types', async () => {
      const dsn = buildDsn(input({ original: { ...orig, sender: 'alice@example.net' } }));
      assert.equal(dsn.utf8, false);
      const p = await parseDsn(dsn.bytes);
      assert.deepEqual(p.parts.map((x) => x.type), ['text/plain', 'message/delivery-status', 'message/rfc822']);
    });
  });
});
