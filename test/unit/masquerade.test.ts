/*
 * `senders … masquerade`: the From: header rewritten to the envelope sender,
 * whatever the chunk boundaries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FromRewriter, rewriteFrom, MAX_HELD } from '../../src/smtp/masquerade.js';

test('rewriteFrom keeps the display name, replaces the address, handles folding and bare addresses', () => {
  assert.equal(rewriteFrom('Subject: x\r\nFrom: "Boss" <boss@corp.example>\r\n', 'a@b.example'), 'Subject: x\r\nFrom: "Boss" <a@b.example>\r\n');
  assert.equal(rewriteFrom('from:boss@corp.example\r\nTo: c@d\r\n', 'a@b.example'), 'from: <a@b.example>\r\nTo: c@d\r\n');
  assert.equal(rewriteFrom('From: Big\r\n Boss <boss@corp.example> (comment)\r\nTo: x\r\n', 'a@b.example'), 'From: Big\r\n Boss <a@b.example> (comment)\r\nTo: x\r\n');
  assert.equal(rewriteFrom('X-From: <x@y>\r\nSubject: s\r\n', 'a@b.example'), 'X-From: <x@y>\r\nSubject: s\r\n');
});

test('FromRewriter gives the same result at every split point', () => {
  const msg = 'Subject: hi\r\nFrom: "Boss" <boss@corp.example>\r\n\r\nbody From: <z@z>\r\n';
  const want = 'Subject: hi\r\nFrom: "Boss" <me@here.example>\r\n\r\nbody From: <z@z>\r\n';
  for (let i = 0; i <= msg.length; i++) {
    const r = new FromRewriter('me@here.example');
    const out = [...r.push(Buffer.from(msg.slice(0, i))), ...r.push(Buffer.from(msg.slice(i))), ...r.end()];
    assert.equal(Buffer.concat(out).toString(), want, `split at ${i}`);
  }
});

test('a header section larger than the limit passes through unchanged', () => {
  const r = new FromRewriter('me@here.example');
  const big = `From: <boss@corp.example>\r\nX: ${'y'.repeat(MAX_HELD)}\r\n`;
  const out = Buffer.concat([...r.push(Buffer.from(big)), ...r.push(Buffer.from('\r\nbody\r\n')), ...r.end()]).toString();
  assert.equal(out, `${big}\r\nbody\r\n`);
});
