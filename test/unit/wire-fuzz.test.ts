/*
 * test/unit/wire-fuzz.test.ts — seeded, bounded randomized tests of the wire
 * layer over the alphabet {CR, LF, ".", NUL, "a"}: DotDecoder and
 * LineEndingNormalizer against naive byte-at-a-time reference decoders
 * written from the spec, whole and cut at random points; normalize-mode
 * output never holds a bare CR or LF; the Framer agrees with itself however
 * its input is cut. Failures print the seed-determined input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DotDecoder } from '../../src/wire/dot-decoder.js';
import { LineEndingNormalizer } from '../../src/wire/line-endings.js';
import { Framer, type FrameEvent } from '../../src/wire/framer.js';
import { bytes, prng, randomCut, show, strictCrlf } from './wire-harness.js';

const ALPHABET = ['\r', '\n', '.', '\0', 'a'];
const ITERATIONS = 3000;

/** Random bytes from ALPHABET; with `plain` > 0, that share of them is "a" (long clean stretches). */
function randomInput(rnd: () => number, maxLen: number, plain = 0): string {
  let s = '';
  const n = Math.floor(rnd() * (maxLen + 1));
  for (let i = 0; i < n; i++) s += rnd() < plain ? 'a' : ALPHABET[Math.floor(rnd() * ALPHABET.length)];
  if (rnd() < 0.3) s += '\r\n.\r\n' + s.slice(0, Math.floor(rnd() * 8)); // sometimes a real end
  return s;
}

interface Decoded {
  out: string;
  consumed: number;
  done: boolean;
  bareCr: boolean;
  bareLf: boolean;
  nul: boolean;
}

/** The spec, one byte at a time (see the header of src/wire/dot-decoder.ts). */
function referenceDecode(s: string): Decoded {
  let out = '';
  let lineStart = true;
  let bareCr = false;
  let bareLf = false;
  let nul = false;
  let i = 0;
  const result = (done: boolean): Decoded => ({ out, consumed: i, done, bareCr, bareLf, nul });
  while (i < s.length) {
    const c = s[i];
    if (lineStart && c === '.') {
      if (i + 1 === s.length || (s[i + 1] === '\r' && i + 2 === s.length)) {
        i = s.length; // "." or ".\r" pending: consumed, nothing emitted yet
        return result(false);
      }
      if (s[i + 1] === '\r') {
        if (s[i + 2] === '\n') {
          i += 3;
          return result(true);
        }
        out += '\r\n'; // dot unstuffed, CR bare
        bareCr = true;
        i += 2;
        lineStart = false;
        continue;
      }
      i += 1; // dot unstuffed
      lineStart = false;
      continue;
    }
    lineStart = false;
    if (c === '\r') {
      if (i + 1 === s.length) {
        out += '\r'; // emitted; its LF (or not) comes later
        i++;
        break;
      }
      if (s[i + 1] === '\n') {
        out += '\r\n';
        i += 2;
        lineStart = true;
        continue;
      }
      out += '\r\n';
      bareCr = true;
      i++;
      continue;
    }
    if (c === '\n') {
      out += '\r\n';
      bareLf = true;
      i++;
      continue;
    }
    if (c === '\0') nul = true;
    out += c;
    i++;
  }
  return result(false);
}

function referenceNormalize(s: string): { out: string; bareCr: boolean; bareLf: boolean; nul: boolean } {
  const out = s.replace(/\r\n|\r|\n/g, '\r\n');
  return { out, bareCr: /\r(?!\n)/.test(s), bareLf: /(?<!\r)\n/.test(s), nul: s.includes('\0') };
}

function decode(chunks: Buffer[]): Decoded {
  const d = new DotDecoder({ policy: 'normalize', maxSize: Infinity });
  const out: Buffer[] = [];
  let consumed = 0;
  let done = false;
  for (const c of chunks) {
    const r = d.decode(c, 0, out);
    consumed += r.consumed;
    if ((done = r.done)) break;
  }
  return { out: show(out), consumed, done, bareCr: d.bareCr, bareLf: d.bareLf, nul: d.nul };
}

test('fuzz: DotDecoder whole and cut agree with the reference; output is strict CR LF', () => {
  const rnd = prng(0x5eed);
  for (let n = 0; n < ITERATIONS; n++) {
    // Mostly short dense inputs; some long ones with clean stretches, which
    // take the indexOf path and switch between it and the JS probe.
    const s = n % 10 === 0 ? randomInput(rnd, 3000, 0.97) : randomInput(rnd, 40);
    const expected = referenceDecode(s);
    const input = bytes(s);
    assert.deepEqual(decode([input]), expected, JSON.stringify(s));
    assert.deepEqual(decode(randomCut(input, 1 + Math.floor(rnd() * 6), rnd)), expected, JSON.stringify(s));
    const settled = expected.done ? expected.out : expected.out.replace(/\r$/, '\r\n');
    assert.ok(strictCrlf(settled), JSON.stringify(s));
  }
});

test('fuzz: LineEndingNormalizer whole and cut agree with the reference', () => {
  const rnd = prng(0xbda7);
  for (let n = 0; n < ITERATIONS; n++) {
    const s = n % 10 === 0 ? randomInput(rnd, 3000, 0.97) : randomInput(rnd, 40);
    const expected = referenceNormalize(s);
    for (const chunks of [[bytes(s)], randomCut(bytes(s), 1 + Math.floor(rnd() * 6), rnd)]) {
      const norm = new LineEndingNormalizer('normalize');
      const out: Buffer[] = [];
      for (const c of chunks) norm.push(c, out);
      norm.end(out);
      const got = { out: show(out), bareCr: norm.bareCr, bareLf: norm.bareLf, nul: norm.nul };
      assert.deepEqual(got, expected, JSON.stringify(s));
      assert.ok(strictCrlf(got.out));
    }
  }
});

/** Framer events as strings, DATA after every "a.a" line, content merged. */
function frame(chunks: Buffer[], maxLine: number): string[] {
  const f = new Framer({ maxLine, policy: 'reject' });
  const ev: string[] = [];
  const add = (e: FrameEvent): void => {
    if (e.type === 'data') {
      const last = ev[ev.length - 1];
      if (last?.startsWith('data:')) ev[ev.length - 1] = last + show(e.chunk);
      else ev.push('data:' + show(e.chunk));
    } else if (e.type === 'line') {
      ev.push(`line${e.bareLf ? '/lf' : ''}:${show(e.line)}`);
      if (show(e.line) === 'a.a') f.startData(20);
    } else if (e.type === 'data-end') {
      ev.push(`end ${e.size} ${e.overflow} ${e.bareCr} ${e.bareLf} ${e.nul}`);
    } else {
      ev.push(e.type);
    }
  };
  for (const c of chunks) {
    f.push(c);
    for (let e = f.next(); e !== null; e = f.next()) add(e);
    assert.ok(f.buffered < maxLine);
  }
  return ev;
}

test('fuzz: Framer gives the same events however the input is cut', () => {
  const rnd = prng(0xf4a3e);
  for (let n = 0; n < ITERATIONS; n++) {
    const s = randomInput(rnd, 20) + 'a.a\r\n' + randomInput(rnd, 60) + '\r\n.\r\n' + randomInput(rnd, 20);
    const input = bytes(s);
    const whole = frame([input], 8);
    assert.deepEqual(frame(randomCut(input, 1 + Math.floor(rnd() * 8), rnd), 8), whole, JSON.stringify(s));
  }
});
