/*
 * test/unit/spool-whole-body.test.ts — a body the spool holds in memory:
 * an ordinary stream to any reader, its pieces to the relay client's
 * batches (spool/whole-body.ts), the same bytes either way.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { batches, nextBatch } from '../../src/mta/batches.js';
import { BodyEncoder } from '../../src/mta/encoder.js';
import { wholeBody, wholeBodyStream } from '../../src/spool/whole-body.js';

const pieces = [Buffer.from('Subject: x\r\n\r\n.a dot\r\n'), Buffer.from('.\r\nend\r\n')];

async function encoded(body: Readable): Promise<Buffer> {
  const b = await nextBatch(batches(body, new BodyEncoder({ stuff: true }), 64 * 1024));
  assert.equal(b.last, true);
  return b.data;
}

describe('whole bodies', () => {
  it('reads as an ordinary stream', async () => {
    const got: Buffer[] = [];
    for await (const c of wholeBodyStream(pieces)) got.push(c as Buffer);
    assert.ok(Buffer.concat(got).equals(Buffer.concat(pieces)));
  });

  it('gives its pieces until someone starts reading, and never for another stream', async () => {
    const s = wholeBodyStream(pieces);
    assert.equal(wholeBody(s), pieces);
    s.read();
    await new Promise((r) => setImmediate(r));
    assert.equal(wholeBody(s), undefined);
    assert.equal(wholeBody(Readable.from(pieces)), undefined);
  });

  it('encodes to the same bytes through batches as a plain stream does (dot-stuffed)', async () => {
    const fast = await encoded(wholeBodyStream(pieces));
    assert.ok(fast.equals(await encoded(Readable.from(pieces, { objectMode: false }))));
    assert.equal(fast.toString(), 'Subject: x\r\n\r\n..a dot\r\n..\r\nend\r\n');
  });
});
