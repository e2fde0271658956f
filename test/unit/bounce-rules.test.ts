/*
 * test/unit/bounce-rules.test.ts — who gets which report (NOTIFY), what is
 * returned (RET), and reading the returned part of the original.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { dsnOwed, notifyAllows, returnMode, successAction, type DsnKind } from '../../src/bounce/rules.js';
import { readReturned } from '../../src/bounce/original.js';
import type { EnvelopeRecipient } from '../../src/mail/envelope.js';

describe('NOTIFY', () => {
  type N = EnvelopeRecipient['notify'];
  const table: { notify: N; sender?: string; failure: boolean; delay: boolean; success: boolean }[] = [
    { notify: undefined, failure: true, delay: true, success: false },
    { notify: 'NEVER', failure: false, delay: false, success: false },
    { notify: ['FAILURE'], failure: true, delay: false, success: false },
    { notify: ['DELAY'], failure: false, delay: true, success: false },
    { notify: ['SUCCESS'], failure: false, delay: false, success: true },
    { notify: ['SUCCESS', 'FAILURE'], failure: true, delay: false, success: true },
    { notify: ['SUCCESS', 'FAILURE', 'DELAY'], failure: true, delay: true, success: true },
    { notify: undefined, sender: '', failure: false, delay: false, success: false },
    { notify: ['SUCCESS', 'FAILURE', 'DELAY'], sender: '', failure: false, delay: false, success: false },
  ];
  for (const row of table) {
    const name = `${JSON.stringify(row.notify) ?? 'absent'} from <${row.sender ?? 'alice@example.net'}>`;
    it(name, () => {
      const env = { sender: row.sender ?? 'alice@example.net' };
      for (const kind of ['failure', 'delay', 'success'] as DsnKind[]) assert.equal(dsnOwed(env, { notify: row.notify }, kind), row[kind], kind);
    });
  }

  it('notifyAllows follows RFC 3461 defaults', () => {
    assert.equal(notifyAllows({}, 'FAILURE'), true);
    assert.equal(notifyAllows({}, 'DELAY'), true);
    assert.equal(notifyAllows({}, 'SUCCESS'), false);
  });

  it('success: delivered locally; relayed only when the next hop does not do DSN', () => {
    const r = { evpid: 'x', status: 'ok' as const, enhanced: '2.0.0', detail: '' };
    assert.equal(successAction('mda', r), 'delivered');
    assert.equal(successAction('mta', r), undefined, 'the next hop got NOTIFY along');
    assert.equal(successAction('mta', { ...r, relayed: true }), 'relayed');
  });
});

describe('RET', () => {
  const table: { ret?: 'FULL' | 'HDRS'; body?: '7BIT' | '8BITMIME' | 'BINARYMIME'; kind: DsnKind; want: 'full' | 'headers' }[] = [
    { kind: 'failure', want: 'full' },
    { ret: 'FULL', kind: 'failure', want: 'full' },
    { ret: 'HDRS', kind: 'failure', want: 'headers' },
    { ret: 'FULL', body: 'BINARYMIME', kind: 'failure', want: 'headers' },
    { ret: 'FULL', kind: 'delay', want: 'headers' },
    { ret: 'FULL', kind: 'success', want: 'headers' },
    { kind: 'delay', want: 'headers' },
  ];
  for (const row of table) {
    it(`${row.kind} RET=${row.ret ?? 'absent'} BODY=${row.body ?? '8BITMIME'} → ${row.want}`, () => {
      assert.equal(returnMode({ ret: row.ret, body: row.body ?? '8BITMIME' }, row.kind), row.want);
    });
  }
});

describe('readReturned', () => {
  const msg = Buffer.from('Subject: hi\r\nFrom: a@b\r\n\r\nbody line\r\n\r\nmore\r\n');
  const stream = (b: Buffer, chunk = 3): Readable => {
    const parts: Buffer[] = [];
    for (let i = 0; i < b.length; i += chunk) parts.push(b.subarray(i, i + chunk));
    return Readable.from(parts);
  };
  const headers = 'Subject: hi\r\nFrom: a@b\r\n';

  it('whole when allowed and small enough', async () => {
    const r = await readReturned(stream(msg), { mode: 'full', size: msg.length, maxWhole: msg.length });
    assert.deepEqual(r, { bytes: msg, whole: true });
  });

  for (const chunk of [1, 2, 3, 7, 1000]) {
    it(`header section when over the cap (chunks of ${chunk})`, async () => {
      const r = await readReturned(stream(msg, chunk), { mode: 'full', size: msg.length, maxWhole: msg.length - 1 });
      assert.equal(r.whole, false);
      assert.equal(r.bytes.toString(), headers);
    });
  }

  it('header section for RET=HDRS', async () => {
    const r = await readReturned(stream(msg), { mode: 'headers', size: msg.length });
    assert.equal(r.bytes.toString(), headers);
  });

  it('a message with no body, and one with no header', async () => {
    const noBody = Buffer.from('Subject: x\r\nTo: y\r\n');
    assert.equal((await readReturned(stream(noBody), { mode: 'headers', size: noBody.length })).bytes.toString(), noBody.toString());
    const noHeader = Buffer.from('\r\nbody\r\n');
    assert.equal((await readReturned(stream(noHeader), { mode: 'headers', size: noHeader.length })).bytes.length, 0);
  });

  it('a header section longer than its cap is cut after a complete line', async () => {
    const long = Buffer.from(`${'X-Long: aaaaaaaaaa\r\n'.repeat(100)}\r\nbody\r\n`);
    const r = await readReturned(stream(long, 64), { mode: 'headers', size: long.length, maxHeader: 105 });
    assert.equal(r.bytes.toString(), 'X-Long: aaaaaaaaaa\r\n'.repeat(5));
  });

  it('a stale size cannot make it read past the cap', async () => {
    const big = Buffer.concat([Buffer.from('Subject: x\r\n\r\n'), Buffer.alloc(10_000, 0x61)]);
    const r = await readReturned(stream(big, 1000), { mode: 'full', size: 10, maxWhole: 100 });
    assert.deepEqual(r, { bytes: Buffer.from('Subject: x\r\n'), whole: false });
  });
});
