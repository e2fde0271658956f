/*
 * filter/message-parts.ts and filter/proc/protocol.ts: edits applied to a
 * message, untouched fields kept byte for byte; data lines dot-escaped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyEdits, splitMessage } from '../../src/filter/message-parts.js';
import { dataLines, joinDataLines, parseOutput, filterLine, DataLineSplitter } from '../../src/filter/proc/protocol.js';
import { parseReplyText } from '../../src/filter/reply-text.js';

const MSG = Buffer.from('Received: from a\r\n\tby b\r\nSubject: hi\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody\r\n');

test('fields and body, folding kept', () => {
  const p = splitMessage(MSG);
  assert.deepEqual(p.fields.map((f) => f.name), ['Received', 'Subject', 'X-A', 'x-a']);
  assert.equal(p.fields[0]?.raw.toString(), 'Received: from a\r\n\tby b\r\n');
  assert.equal(p.body.toString(), 'body\r\n');
  assert.equal(splitMessage(Buffer.from('\r\nonly body\r\n')).fields.length, 0);
});

test('header edits: add at the end, insert at an index, change the n-th, delete, body replaced', () => {
  const out = applyEdits(MSG, {
    headers: [
      { op: 'add', name: 'X-Added', value: 'yes' },
      { op: 'insert', index: 0, name: 'X-Top', value: 'first' },
      { op: 'change', index: 2, name: 'X-A', value: 'two' },
      { op: 'change', index: 1, name: 'Subject', value: '' },
      { op: 'change', index: 1, name: 'X-New', value: 'appended\nfolded' },
    ],
    body: Buffer.from('new\nbody\n'),
  });
  assert.equal(out.toString(), 'X-Top: first\r\nReceived: from a\r\n\tby b\r\nX-A: 1\r\nx-a: two\r\nX-Added: yes\r\nX-New: appended\r\nfolded\r\n\r\nnew\r\nbody\r\n');
  assert.equal(applyEdits(MSG, { headers: [] }), MSG, 'no edit, same bytes');
});

test('data lines: dot-escaped out, unescaped back, "." at the end', () => {
  const m = Buffer.from('Subject: x\r\n\r\n.hidden\r\nplain\r\n');
  const lines = dataLines(m);
  assert.deepEqual(lines, ['Subject: x', '', '..hidden', 'plain', '.']);
  assert.deepEqual(joinDataLines(lines.slice(0, -1)), m);
  assert.deepEqual(parseOutput('filter-dataline|s|t|a|b'), { kind: 'dataline', session: 's', token: 't', line: 'a|b' });
  assert.deepEqual(parseOutput('filter-result|s|t|reject|550 no|really'), { kind: 'result', session: 's', token: 't', decision: 'reject', param: '550 no|really' });
  assert.equal(parseOutput('garbage').kind, 'bad');
  assert.equal(filterLine(1000, 'commit', 's', 't'), 'filter|0.7|1.000000|smtp-in|commit|s|t|\n');
  assert.equal(filterLine(1000, 'mail-from', 's', 't', ['a@b\r\nx']), 'filter|0.7|1.000000|smtp-in|mail-from|s|t|a@b  x\n', 'no line injected');
});

test('data lines as the message comes: the same lines whatever the chunks (every split point, a character cut in two)', () => {
  const m = Buffer.from('Subject: é\r\n\r\n.hidden\r\nplain\r\nno end');
  const whole = dataLines(m);
  assert.deepEqual(whole, ['Subject: é', '', '..hidden', 'plain', 'no end', '.']);
  for (let i = 0; i <= m.length; i++) {
    const split = new DataLineSplitter();
    assert.deepEqual([...split.push(m.subarray(0, i)), ...split.push(m.subarray(i)), ...split.end()], whole, `split at ${i}`);
  }
});

test('a filter\'s reply text', () => {
  assert.deepEqual(parseReplyText('550 5.7.1 Go away'), { code: 550, enhanced: '5.7.1', lines: ['Go away'] });
  assert.deepEqual(parseReplyText('421 server internal error'), { code: 421, enhanced: '4.7.1', lines: ['server internal error'] });
  assert.equal(parseReplyText('250 ok'), undefined);
  assert.equal(parseReplyText('550 4.7.1 mixed'), undefined);
});
