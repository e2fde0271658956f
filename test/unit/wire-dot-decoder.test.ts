/*
 * test/unit/wire-dot-decoder.test.ts — DotDecoder (src/wire/dot-decoder.ts):
 * a table of inputs -> (content, flags, consumed), each input fed whole, at
 * every two-chunk split point and byte by byte, in both policies; all runs
 * must agree with the table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DotDecoder, type BareNewlinePolicy } from '../../src/wire/dot-decoder.js';
import { bytes, cuts, show, strictCrlf } from './wire-harness.js';

interface Result {
  out: string;
  consumed: number;
  done: boolean;
  size: number;
  overflow: boolean;
  flags: string;
}

function flagsOf(d: { bareCr: boolean; bareLf: boolean; nul: boolean }): string {
  return [d.bareCr ? 'CR' : '', d.bareLf ? 'LF' : '', d.nul ? 'NUL' : ''].filter(Boolean).join(' ');
}

/** Decode chunks in order until done; check the per-call contract on the way. */
function decodeChunks(chunks: Buffer[], policy: BareNewlinePolicy, maxSize = Infinity): Result {
  const d = new DotDecoder({ policy, maxSize });
  const out: Buffer[] = [];
  let consumed = 0;
  let done = false;
  for (const c of chunks) {
    const r = d.decode(c, 0, out);
    consumed += r.consumed;
    if (r.done) {
      assert.ok(r.consumed <= c.length);
      done = true;
      break;
    }
    assert.equal(r.consumed, c.length, 'an unfinished decode consumes the whole chunk');
  }
  assert.equal(d.done, done);
  return { out: show(out), consumed, done, size: d.size, overflow: d.overflow, flags: flagsOf(d) };
}

interface Case {
  /** Consumed entirely (a finished case ends with its terminator). */
  input: string;
  /** Fed after input, left unconsumed (finished cases only). */
  after?: string;
  out: string;
  done: boolean;
  flags?: string;
  maxSize?: number;
  size?: number;
}

const T = '.\r\n'; // the line that ends the data (after a CR LF)

const CASES: Case[] = [
  // Termination and the initial line-start state.
  { input: T, out: '', done: true },
  { input: T, after: 'QUIT\r\n', out: '', done: true },
  { input: 'abc\r\n' + T, out: 'abc\r\n', done: true },
  { input: 'abc\r\n' + T, after: 'MAIL FROM:<x@y>\r\n' + T, out: 'abc\r\n', done: true },
  { input: 'a\r\n\r\n' + T, out: 'a\r\n\r\n', done: true },
  { input: '', out: '', done: false },
  { input: 'no terminator', out: 'no terminator', done: false },
  { input: 'a\r\n.', out: 'a\r\n', done: false },
  { input: 'a\r\n.\r', out: 'a\r\n', done: false },
  { input: 'a\r', out: 'a\r', done: false },
  { input: '.', out: '', done: false },
  // Dot-unstuffing.
  { input: '..\r\n' + T, out: '.\r\n', done: true },
  { input: '.foo\r\n..bar\r\n...\r\n' + T, out: 'foo\r\n.bar\r\n..\r\n', done: true },
  { input: 'a.b\r\n.c\r\n', out: 'a.b\r\nc\r\n', done: false },
  { input: 'x\r\n..\r\n\r\n' + T, out: 'x\r\n.\r\n\r\n', done: true },
  // Bare LF: completed to CR LF, and the next line is not a line start.
  { input: 'a\nb\r\n' + T, out: 'a\r\nb\r\n', done: true, flags: 'LF' },
  { input: '\n.\r\n', out: '\r\n.\r\n', done: false, flags: 'LF' },
  { input: 'a\n.\r\n' + T, out: 'a\r\n.\r\n', done: true, flags: 'LF' },
  { input: 'a\n\r\n' + T, out: 'a\r\n\r\n', done: true, flags: 'LF' },
  { input: '.\n', out: '\r\n', done: false, flags: 'LF' },
  { input: 'a\r\n.\n.\n', out: 'a\r\n\r\n.\r\n', done: false, flags: 'LF' },
  { input: '\n\n', out: '\r\n\r\n', done: false, flags: 'LF' },
  // Bare CR: completed to CR LF, the next line is not a line start.
  { input: 'a\rb\r\n' + T, out: 'a\r\nb\r\n', done: true, flags: 'CR' },
  { input: 'a\r\r\n' + T, out: 'a\r\n\r\n', done: true, flags: 'CR' },
  { input: '\r.\r\n', out: '\r\n.\r\n', done: false, flags: 'CR' },
  { input: 'a\r\n\r.\r\n' + T, out: 'a\r\n\r\n.\r\n', done: true, flags: 'CR' },
  { input: '.\rX', out: '\r\nX', done: false, flags: 'CR' },
  { input: '.\r.\r\n', out: '\r\n.\r\n', done: false, flags: 'CR' },
  { input: '.\r\r\n' + T, out: '\r\n\r\n', done: true, flags: 'CR' },
  { input: 'a\r\n.\r.\r', out: 'a\r\n\r\n.\r', done: false, flags: 'CR' },
  { input: '\r\r\r', out: '\r\n\r\n\r', done: false, flags: 'CR' },
  { input: 'a\r\nb\n\rc', out: 'a\r\nb\r\n\r\nc', done: false, flags: 'CR LF' },
  // NUL: kept, flagged, never part of a terminator.
  { input: 'a\0b\r\n' + T, out: 'a\0b\r\n', done: true, flags: 'NUL' },
  { input: '\0.\r\n', out: '\0.\r\n', done: false, flags: 'NUL' },
  { input: '.\0\r\n', out: '\0\r\n', done: false, flags: 'NUL' },
  { input: 'a\r\n\0.\r\n.\0\r\n' + T, out: 'a\r\n\0.\r\n\0\r\n', done: true, flags: 'NUL' },
  // Size limit: output cut at maxSize, decoding goes on to the terminator.
  { input: 'abcdef\r\n' + T, maxSize: 4, out: 'abcd', size: 8, done: true },
  { input: 'abcdef\r\n' + T, maxSize: 8, out: 'abcdef\r\n', size: 8, done: true },
  { input: 'abcdef\r\n' + T, maxSize: 7, out: 'abcdef\r', size: 8, done: true },
  { input: T, maxSize: 0, out: '', size: 0, done: true },
  { input: 'a\r\n' + T, maxSize: 0, out: '', size: 3, done: true },
  { input: 'ab\ncd\r\n' + T, maxSize: 3, out: 'ab\r', size: 8, done: true, flags: 'LF' },
  { input: 'ab\rcd\r\n' + T, maxSize: 3, out: 'ab\r', size: 8, done: true, flags: 'CR' },
  { input: 'x\r\n..y\r\n' + T, after: 'tail', maxSize: 4, out: 'x\r\n.', size: 7, done: true },
];

for (const policy of ['normalize', 'reject'] as const) {
  for (const c of CASES) {
    const label = JSON.stringify(c.input) + (c.maxSize !== undefined ? ` max=${c.maxSize}` : '');
    test(`DotDecoder ${policy} ${label}`, () => {
      const expected: Result = {
        out: c.out,
        consumed: c.input.length,
        done: c.done,
        size: c.size ?? c.out.length,
        overflow: (c.size ?? c.out.length) > (c.maxSize ?? Infinity),
        flags: c.flags ?? '',
      };
      assert.ok(c.after === undefined || c.done, 'table: only a finished case has bytes after it');
      const input = bytes(c.input + (c.after ?? ''));
      for (const cut of cuts(input)) {
        assert.deepEqual(decodeChunks(cut.chunks, policy, c.maxSize), expected, cut.name);
      }
      // A CR at the very end is still pending (its LF comes with the next chunk).
      if (c.maxSize === undefined) assert.ok(strictCrlf(c.out.replace(/\r$/, '\r\n')), 'table: output is strict CRLF');
    });
  }
}

test('DotDecoder starts at the given offset and reports bytes consumed from it', () => {
  const d = new DotDecoder({ policy: 'normalize', maxSize: 100 });
  const out: Buffer[] = [];
  const buf = bytes('DATA\r\n..hi\r\n.\r\nQUIT\r\n');
  assert.deepEqual(d.decode(buf, 6, out), { consumed: 9, done: true });
  assert.equal(show(out), '.hi\r\n');
  assert.deepEqual(d.decode(buf, 15, out), { consumed: 0, done: true }, 'nothing after done');
});

test('DotDecoder emits clean content as one slice per chunk, sharing memory with the input', () => {
  const line = 'x'.repeat(1000) + '\r\n';
  const chunk = bytes(line.repeat(60));
  const d = new DotDecoder({ policy: 'normalize', maxSize: Infinity });
  const out: Buffer[] = [];
  d.decode(chunk, 0, out);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.buffer, chunk.buffer, 'a view, not a copy');
  assert.equal(out[0]!.length, chunk.length);
});

test('DotDecoder keeps the slice count bounded under a flood of edits', () => {
  for (const unit of ['\n', '\r', '..x\r\n', 'a\n', '\r\n.\r']) {
    const chunk = bytes(unit.repeat(Math.ceil(65536 / unit.length)));
    const d = new DotDecoder({ policy: 'normalize', maxSize: Infinity });
    const out: Buffer[] = [];
    d.decode(chunk, 0, out);
    assert.ok(out.length <= 10, `${JSON.stringify(unit)}: ${out.length} slices`);
    const one: Buffer[] = [];
    const e = new DotDecoder({ policy: 'normalize', maxSize: Infinity });
    for (let k = 0; k < chunk.length; k++) e.decode(chunk.subarray(k, k + 1), 0, one);
    assert.equal(show(out), show(one), JSON.stringify(unit));
  }
});
