/*
 * test/unit/delivery-worker-protocol.test.ts — the delivery worker's input
 * (worker-protocol.ts): requests, framed messages, the "abandoned" marker
 * and broken streams, fed whole, byte by byte and split at every point.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerInputParser, type WorkerInput } from '../../src/delivery/local/worker-protocol.js';

/** Events with consecutive data merged (how the stream was cut must not matter). */
function run(pieces: readonly Buffer[], finish = false): string[] {
  const p = new WorkerInputParser();
  const evs: WorkerInput[] = [];
  for (const b of pieces) evs.push(...p.push(b));
  if (finish) {
    const e = p.finish();
    if (e) evs.push(e);
  }
  const out: string[] = [];
  for (const e of evs) {
    const s = e.kind === 'request' ? `request ${e.line}` : e.kind === 'data' ? `data ${e.bytes.toString('latin1')}` : e.kind === 'error' ? `error ${e.message}` : e.kind;
    const last = out[out.length - 1];
    if (e.kind === 'data' && last?.startsWith('data ')) out[out.length - 1] = last + e.bytes.toString('latin1');
    else out.push(s);
  }
  return out;
}

function splits(input: Buffer): Buffer[][] {
  const all: Buffer[][] = [[input], [...input].map((c) => Buffer.from([c]))];
  for (let i = 1; i < input.length; i++) all.push([input.subarray(0, i), input.subarray(i)]);
  return all;
}

describe('delivery worker input', () => {
  it('gives the same events however the stream is cut', () => {
    // "3\n\n0\n" is a 3-byte chunk holding LF 0 LF: lengths and data never mix.
    const clean = Buffer.concat([Buffer.from('{"v":1}\n'), Buffer.from('5\nHello'), Buffer.from('3\n\n0\n'), Buffer.from('0\n'), Buffer.from('{"n":2}\n4\nab\nc!\n{"n":3}\n0\n')]);
    const want = ['request {"v":1}', 'data Hello\n0\n', 'end', 'request {"n":2}', 'data ab\nc', 'abandoned', 'request {"n":3}', 'end'];
    for (const pieces of splits(clean)) assert.deepEqual(run(pieces), want, pieces.map((b) => JSON.stringify(b.toString())).join(' | '));
  });

  it('reads a request split anywhere, UTF-8 included', () => {
    const input = Buffer.from('{"a":"é"}\n0\n', 'utf8');
    for (const pieces of splits(input)) assert.deepEqual(run(pieces), ['request {"a":"é"}', 'end']);
  });

  it('reports a message cut short at its end, and nothing between messages', () => {
    const input = Buffer.from('{}\n5\nHello0\n{}\n3\nab');
    for (let i = 0; i <= input.length; i++) {
      const evs = run([input.subarray(0, i)], true);
      const between = i >= 12 && i < 15; // after "0\n", before the next request's LF
      if (i < 3 || between) assert.ok(!evs.some((e) => e.startsWith('error')), `${i}: ${evs.join(', ')}`);
      else assert.match(evs[evs.length - 1] ?? '', /^error message cut short/, `${i}`);
    }
  });

  it('breaks for good on a bad length, and reads nothing after it', () => {
    for (const bad of ['x\n', '-1\n', '\n', '123456789\n', 'A\n']) {
      const evs = run([Buffer.from(`{}\n${bad}0\n{}\n0\n`)]);
      assert.deepEqual(evs, ['request {}', 'error message frame: bad chunk length'], bad);
    }
  });

  it('refuses an over-long request line', () => {
    const evs = run([Buffer.alloc(1024 * 1024 + 1, 0x61)]);
    assert.deepEqual(evs, ['error request line too long']);
  });
});
