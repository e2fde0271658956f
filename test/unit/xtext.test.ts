/*
 * xtext.test.ts — RFC 3461 xtext and RFC 6533 utf-8-addr-xtext (smtp/xtext.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeUtf8AddrXtext, decodeXtext, encodeUtf8AddrXtext, encodeXtext } from '../../src/mail/xtext.js';

test('decodeXtext: well-formed', () => {
  const cases: [string, string][] = [
    ['', ''],
    ['abc', 'abc'],
    ['a+2Bb', 'a+b'],
    ['+3D', '='],
    ['+2B+3D', '+='],
    ['a+20b', 'a b'],
    ['<>', '<>'],
    ['user@example.org', 'user@example.org'],
    ['!"#$%&\'()*,-./:;<>?@[\\]^_`{|}~', '!"#$%&\'()*,-./:;<>?@[\\]^_`{|}~'],
    ['+41+42', 'AB'],
    ['+C3+A9', 'é'],
    // Decoding is faithful; callers refuse control characters (see params.test.ts).
    ['a+0D+0Ab', 'a\r\nb'],
    ['+00', '\0'],
  ];
  for (const [input, want] of cases) assert.equal(decodeXtext(input), want, JSON.stringify(input));
});

test('decodeXtext: malformed -> null', () => {
  const cases = [
    '+', // no hex digits
    '+2', // one hex digit
    'a+', // at the end
    '+2b', // lower case hex
    '+ab',
    '+G0',
    '+-1',
    '+ 20',
    'a=b', // "=" is not an xchar
    '=',
    'a b', // space
    'a\tb',
    'a\r\nb',
    '\0',
    '\x7f',
    'é', // outside 33-126
    '+FF', // not UTF-8
    '+C3', // truncated UTF-8
    '+C0+80', // overlong UTF-8
  ];
  for (const input of cases) assert.equal(decodeXtext(input), null, JSON.stringify(input));
});

test('encodeXtext', () => {
  const cases: [string, string][] = [
    ['', ''],
    ['abc', 'abc'],
    ['a+b=c d', 'a+2Bb+3Dc+20d'],
    ['\r\n', '+0D+0A'],
    ['\x7f', '+7F'],
    ['é', '+C3+A9'],
    ['<>', '<>'],
  ];
  for (const [input, want] of cases) assert.equal(encodeXtext(input), want, JSON.stringify(input));
});

test('encodeXtext and decodeXtext are inverses', () => {
  let all = '';
  for (let c = 0; c < 128; c++) all += String.fromCharCode(c);
  for (const s of [all, 'jö@münchen.de', '用户', '😀 x+y=z']) {
    const enc = encodeXtext(s);
    assert.match(enc, /^([\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*$/);
    assert.equal(decodeXtext(enc), s);
  }
});

test('decodeUtf8AddrXtext (RFC 6533)', () => {
  const ok: [string, boolean, string][] = [
    ['a@b', false, 'a@b'],
    ['j\\x{F6}@example.org', false, 'jö@example.org'],
    ['\\x{7528}\\x{6237}@b', false, '用户@b'],
    ['\\x{1F600}@b', false, '😀@b'],
    ['a\\x{2B}b', false, 'a+b'],
    ['a\\x{3D}b', false, 'a=b'],
    ['a\\x{5C}b', false, 'a\\b'],
    ['a\\x{20}b', false, 'a b'],
    ['jö@example.org', true, 'jö@example.org'],
    ['j\\x{F6}ö@b', true, 'jöö@b'],
  ];
  for (const [input, unitext, want] of ok) assert.equal(decodeUtf8AddrXtext(input, unitext), want, JSON.stringify(input));
  const bad: [string, boolean][] = [
    ['', false],
    ['jö@b', false], // raw UTF-8 only in unitext
    ['\\x{61}', false], // "a" must not be escaped
    ['\\x{f6}', false], // lower case hex
    ['\\x{0F6}', false], // leading zero
    ['\\x{}', false],
    ['\\x{F6', false],
    ['\\xF6', false],
    ['\\', false],
    ['a\\b', false],
    ['\\x{D800}', false], // surrogate
    ['\\x{110000}', false], // beyond Unicode
    ['\\x{1234567}', false],
    ['a+b', false], // "+" is not a QCHAR
    ['a=b', false],
    ['a b', true],
    ['a\r\nb', true],
    ['\ud800', true], // lone surrogate
  ];
  for (const [input, unitext] of bad) assert.equal(decodeUtf8AddrXtext(input, unitext), null, JSON.stringify(input));
});

test('encodeUtf8AddrXtext round-trips', () => {
  assert.equal(encodeUtf8AddrXtext('jö+x@b'), 'j\\x{F6}\\x{2B}x@b');
  assert.equal(encodeUtf8AddrXtext('a b=\\'), 'a\\x{20}b\\x{3D}\\x{5C}');
  for (const s of ['jö@münchen.de', '用户@例子.广告', '😀@b', 'a+b=c\\d e@f']) {
    const enc = encodeUtf8AddrXtext(s);
    assert.match(enc, /^[\x21-\x7e]+$/);
    assert.equal(decodeXtext(enc), enc, 'utf-8-addr-xtext is also valid xtext');
    assert.equal(decodeUtf8AddrXtext(enc, false), s);
  }
});
