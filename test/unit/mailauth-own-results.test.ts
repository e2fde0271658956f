/*
 * Authentication-Results fields claiming this server's authserv-id are
 * removed from received mail (mailauth/verify/own-results.ts, RFC 8601 §5),
 * others kept; the authserv-id is read past comments and quotes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authservId, stripOwnResults } from '../../src/mailauth/verify/own-results.js';

const ID = 'mx.example.org';

test('the authserv-id of a field, past comments, quoted or folded', () => {
  assert.equal(authservId('Authentication-Results: mx.example.org; spf=pass'), ID);
  assert.equal(authservId('Authentication-Results: (a (nested) comment) MX.Example.Org ; dkim=pass'), ID);
  assert.equal(authservId('Authentication-Results: "mx.example.org"; none'), ID);
  assert.equal(authservId('Authentication-Results:\r\n\tmx.example.org;\r\n\tnone'), ID);
  assert.equal(authservId('Authentication-Results: mx.example.org.evil; none'), 'mx.example.org.evil');
  assert.equal(authservId('Authentication-Results:'), '');
});

test('ours removed (with continuation lines), others and the body kept', () => {
  const msg = Buffer.from(
    'Received: from x\r\nauthentication-results: mx.example.org;\r\n\tdkim=pass header.d=bank.example\r\nAuthentication-Results: other.example; spf=pass\r\nSubject: s\r\n\r\nAuthentication-Results: mx.example.org; in the body\r\n',
  );
  const r = stripOwnResults(msg, ID);
  assert.equal(r.removed, 1);
  assert.equal(r.content.toString(), 'Received: from x\r\nAuthentication-Results: other.example; spf=pass\r\nSubject: s\r\n\r\nAuthentication-Results: mx.example.org; in the body\r\n');
});

test('nothing to remove: the same buffer back', () => {
  const msg = Buffer.from('Subject: s\r\nAuthentication-Results: other.example; none\r\n\r\nbody\r\n');
  const r = stripOwnResults(msg, ID);
  assert.equal(r.removed, 0);
  assert.equal(r.content, msg);
});

test('a header section without an end (all header) is handled', () => {
  const r = stripOwnResults(Buffer.from('Authentication-Results: mx.example.org; x\r\nSubject: s\r\n'), ID);
  assert.equal(r.content.toString(), 'Subject: s\r\n');
});
