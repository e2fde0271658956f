/*
 * test/unit/spool-format.test.ts — pure parts of the fs spool format: envelope
 * schema, outcome records, ids.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkEnvelope, checkOutcome } from '../../src/spool/fs/envelope-check.js';
import { BUCKET_RUN, MsgidAllocator, isMsgid } from '../../src/spool/fs/ids.js';
import { encodeRecord, parseLog } from '../../src/spool/fs/outcome-log.js';
import { envelopeFor } from '../helpers/spool-fixtures.js';

const MSGID = '0a1b2c3d';

function full(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { version: 1, msgid: MSGID, ...envelopeFor(MSGID, 2), size: 10, ...over };
}

describe('checkEnvelope', () => {
  it('accepts a valid envelope, with unknown extra fields kept as data', () => {
    assert.equal(checkEnvelope(full(), MSGID), null);
    assert.equal(checkEnvelope(full({ futureField: { a: 1 } }), MSGID), null);
    assert.equal(checkEnvelope(full({ sender: '' }), MSGID), null);
  });

  const base = full();
  const rcpt0 = (base['recipients'] as Record<string, unknown>[])[0] as Record<string, unknown>;
  const client = base['client'] as Record<string, unknown>;
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['version', { version: 2 }, /version 2/],
    ['msgid of another file', { msgid: 'ffffffff' }, /does not match/],
    ['bad msgid', { msgid: 'XYZ' }, /8 hex/],
    ['size', { size: -1 }, /size/],
    ['size not integer', { size: 1.5 }, /size/],
    ['no recipients', { recipients: [] }, /non-empty/],
    ['recipient evpid of another msgid', { recipients: [{ ...rcpt0, evpid: 'ffffffff00000000' }] }, /evpid/],
    ['duplicate evpid', { recipients: [rcpt0, rcpt0] }, /duplicate/],
    ['notify', { recipients: [{ ...rcpt0, notify: ['SOMETIMES'] }] }, /notify/],
    ['notify empty', { recipients: [{ ...rcpt0, notify: [] }] }, /notify/],
    ['address', { recipients: [{ ...rcpt0, address: 5 }] }, /address/],
    ['action', { recipients: [{ ...rcpt0, action: undefined }] }, /action/],
    ['sender', { sender: null }, /sender/],
    ['ret', { ret: 'SOME' }, /ret/],
    ['body', { body: '9BIT' }, /body/],
    ['smtputf8', { smtputf8: 'yes' }, /smtputf8/],
    ['arrival', { arrival: -5 }, /arrival/],
    ['client missing', { client: undefined }, /client/],
    ['client port', { client: { ...client, port: 70000 } }, /port/],
    ['client tls', { client: { ...client, tls: { version: 1 } } }, /tls/],
    ['client listener', { client: { ...client, listener: undefined } }, /listener/],
  ];
  for (const [name, over, reason] of cases) {
    it(`refuses: ${name}`, () => {
      assert.match(checkEnvelope(full(over), MSGID) ?? 'accepted', reason);
    });
  }
  it('refuses non-objects', () => {
    for (const v of [null, 1, 'x', [], undefined]) assert.notEqual(checkEnvelope(v, MSGID), null);
  });
});

describe('checkOutcome', () => {
  it('accepts each kind and refuses malformed ones', () => {
    assert.equal(checkOutcome({ kind: 'delivered', at: 1, detail: '250' }), null);
    assert.equal(checkOutcome({ kind: 'failed', at: 1, detail: '550' }), null);
    assert.equal(checkOutcome({ kind: 'deferred', at: 1, detail: '451', attempts: 2, nextTry: 9 }), null);
    assert.equal(checkOutcome({ kind: 'held', at: 1 }), null);
    assert.equal(checkOutcome({ kind: 'released', at: 1 }), null);
    assert.notEqual(checkOutcome({ kind: 'deferred', at: 1, detail: '451', attempts: 2 }), null);
    assert.notEqual(checkOutcome({ kind: 'delivered', at: 1 }), null);
    assert.notEqual(checkOutcome({ kind: 'lost', at: 1 }), null);
    assert.notEqual(checkOutcome({ kind: 'held' }), null);
  });
});

describe('outcome records', () => {
  const a = encodeRecord(`${MSGID}00000001`, { kind: 'held', at: 1 });
  const b = encodeRecord(`${MSGID}00000002`, { kind: 'failed', at: 2, detail: 'x\ny' });

  it('are one line each, even with LF in the detail', () => {
    assert.equal(a.split('\n').length, 2);
    assert.equal(b.split('\n').length, 2);
    assert.match(a, /^[0-9a-f]{16} \{"v":1,/);
  });

  it('parse back in order', () => {
    const p = parseLog(Buffer.from(a + b));
    assert.deepEqual(p, {
      records: [
        { evpid: `${MSGID}00000001`, outcome: { kind: 'held', at: 1 } },
        { evpid: `${MSGID}00000002`, outcome: { kind: 'failed', at: 2, detail: 'x\ny' } },
      ],
      bad: 0,
      torn: false,
    });
  });

  it('ignore a torn last line at every cut point', () => {
    for (let cut = 0; cut < b.length; cut++) {
      const p = parseLog(Buffer.from(a + b.slice(0, cut)));
      assert.equal(p.records.length, 1, `cut ${cut}`);
      assert.equal(p.bad, 0, `cut ${cut}`);
      assert.equal(p.torn, cut > 0, `cut ${cut}`);
    }
  });

  it('skip and count damaged lines, including zero-filled ones', () => {
    const flipped = a.replace('"at":1', '"at":2');
    const p = parseLog(Buffer.concat([Buffer.from(flipped + '\n' + b), Buffer.alloc(16), Buffer.from('\n')]));
    assert.equal(p.records.length, 1);
    assert.equal(p.bad, 2);
  });

  it('refuse to encode what could not be read back', () => {
    assert.throws(() => encodeRecord('xyz', { kind: 'held', at: 1 }));
    assert.throws(() => encodeRecord(`${MSGID}00000001`, { kind: 'held', at: Number.POSITIVE_INFINITY }));
  });
});

describe('MsgidAllocator', () => {
  it('draws 8 hex digits, sharing a bucket for a run of allocations, then moving on', () => {
    const a = new MsgidAllocator();
    const ids = Array.from({ length: BUCKET_RUN * 8 }, () => a.next());
    assert.ok(ids.every(isMsgid));
    for (let run = 0; run < 8; run++) {
      const prefixes = new Set(ids.slice(run * BUCKET_RUN, (run + 1) * BUCKET_RUN).map((id) => id.slice(0, 2)));
      assert.equal(prefixes.size, 1);
    }
    assert.ok(new Set(ids.map((id) => id.slice(0, 2))).size > 1);
    assert.ok(new Set(ids).size > ids.length - 10, 'low 24 bits are random');
  });
});
