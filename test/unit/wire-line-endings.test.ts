/*
 * test/unit/wire-line-endings.test.ts — LineEndingNormalizer (BDAT content,
 * src/wire/line-endings.ts): a table fed whole, at every split point and
 * byte by byte, then end().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineEndingNormalizer, type BareNewlinePolicy } from '../../src/wire/line-endings.js';
import { bytes, cuts, show, strictCrlf } from './wire-harness.js';

function normalizeChunks(chunks: Buffer[], policy: BareNewlinePolicy): { out: string; flags: string; size: number } {
  const n = new LineEndingNormalizer(policy);
  const out: Buffer[] = [];
  for (const c of chunks) n.push(c, out);
  n.end(out);
  const flags = [n.bareCr ? 'CR' : '', n.bareLf ? 'LF' : '', n.nul ? 'NUL' : ''].filter(Boolean).join(' ');
  return { out: show(out), flags, size: n.size };
}

const CASES: { input: string; out: string; flags?: string }[] = [
  { input: '', out: '' },
  { input: 'abc', out: 'abc' },
  { input: 'a\r\nb\r\n', out: 'a\r\nb\r\n' },
  { input: 'a\r\n.\r\nQUIT\r\n', out: 'a\r\n.\r\nQUIT\r\n' }, // nothing special in BDAT
  { input: '..\r\n', out: '..\r\n' }, // no dot-stuffing either
  { input: 'a\nb', out: 'a\r\nb', flags: 'LF' },
  { input: '\n\n', out: '\r\n\r\n', flags: 'LF' },
  { input: 'a\rb', out: 'a\r\nb', flags: 'CR' },
  { input: 'a\r', out: 'a\r\n', flags: 'CR' },
  { input: '\r', out: '\r\n', flags: 'CR' },
  { input: 'a\r\r\n', out: 'a\r\n\r\n', flags: 'CR' },
  { input: '\r\r\r', out: '\r\n\r\n\r\n', flags: 'CR' },
  { input: 'a\n\rb', out: 'a\r\n\r\nb', flags: 'CR LF' },
  { input: 'a\0b\r\n', out: 'a\0b\r\n', flags: 'NUL' },
  { input: '\0\r\0\n\0', out: '\0\r\n\0\r\n\0', flags: 'CR LF NUL' },
];

for (const policy of ['normalize', 'reject'] as const) {
  for (const c of CASES) {
    test(`LineEndingNormalizer ${policy} ${JSON.stringify(c.input)}`, () => {
      const expected = { out: c.out, flags: c.flags ?? '', size: c.out.length };
      assert.ok(strictCrlf(c.out), 'table: output is strict CRLF');
      for (const cut of cuts(bytes(c.input))) {
        assert.deepEqual(normalizeChunks(cut.chunks, policy), expected, cut.name);
      }
    });
  }
}

test('LineEndingNormalizer holds a chunk-final CR until the next chunk decides', () => {
  const n = new LineEndingNormalizer('normalize');
  const out: Buffer[] = [];
  n.push(bytes('ab\r'), out);
  assert.equal(show(out), 'ab\r');
  assert.equal(n.bareCr, false);
  n.push(bytes('\ncd'), out);
  assert.equal(show(out), 'ab\r\ncd');
  assert.equal(n.bareCr, false);
  n.push(bytes('\r'), out);
  n.push(bytes('x'), out);
  assert.equal(n.bareCr, true);
  assert.equal(show(out), 'ab\r\ncd\r\nx');
});

test('LineEndingNormalizer emits a clean chunk as one view', () => {
  const chunk = bytes('line\r\n'.repeat(1000));
  const out: Buffer[] = [];
  new LineEndingNormalizer('normalize').push(chunk, out);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.buffer, chunk.buffer);
});
