/*
 * PARAM hdr220: the greeting lines and their %-tags.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_HDR220, expandHdr220, type Hdr220Values } from '../../src/policy/zmailer/hdr220.js';

const NOW = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
const V: Hdr220Values = { hostname: 'mx.example.com', clientAddress: '192.0.2.7', localPort: 25, version: '0.1.0', now: NOW };

test('every tag: %% %H %I %i %p %V %T %X', () => {
  const [line] = expandHdr220(['%H at %i:%p v%V%I [%X] 100%% %T'], { ...V, ident: true, language: 'fi' });
  assert.match(line ?? '', /^mx\.example\.com at \[192\.0\.2\.7\]:25 v0\.1\.0\+IDENT \[fi\] 100% .*2024.*$/);
  const [plain] = expandHdr220(['%H%I [%X]'], V);
  assert.equal(plain, 'mx.example.com []', '%I is empty without ident, %X without a language');
});

test('%T is an RFC 5322 date of the given time', () => {
  const [line] = expandHdr220(['%T'], V);
  assert.match(line ?? '', /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/);
});

test('unknown tags and a trailing "%" vanish, as in ZMailer', () => {
  assert.deepEqual(expandHdr220(['a%Qb %'], V), ['ab ']);
});

test('several lines stay several lines; no lines gives the default greeting', () => {
  assert.deepEqual(expandHdr220(['%H ESMTP', '(NO UCE)(NO UBE)'], V), ['mx.example.com ESMTP', '(NO UCE)(NO UBE)']);
  assert.equal(DEFAULT_HDR220.length, 1);
  assert.match(expandHdr220([], V)[0] ?? '', /^mx\.example\.com Postern 0\.1\.0 ESMTP ready at /);
});

test('values cannot split the greeting', () => {
  assert.deepEqual(expandHdr220(['%H'], { ...V, hostname: 'evil\r\n250 x' }), ['evil  250 x']);
});
