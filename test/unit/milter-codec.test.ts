/*
 * filter/milter/codec.ts: packets built and cut at every split point, each
 * answer parsed, and malformed answers reported rather than thrown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as C from '../../src/filter/milter/codec.js';

function answer(cmd: string, data: Buffer = Buffer.alloc(0)): Buffer {
  return C.packet(cmd, data);
}
const z = (...s: string[]): Buffer => Buffer.from(s.map((x) => `${x}\0`).join(''), 'latin1');
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

test('commands on the wire: length, command byte, NUL-terminated strings', () => {
  assert.deepEqual(C.helo('client.example'), Buffer.concat([u32(16), Buffer.from('H'), z('client.example')]));
  assert.deepEqual(C.optneg(C.ALL_ACTIONS, 0x3f), Buffer.concat([u32(13), Buffer.from('O'), u32(6), u32(0x1ff), u32(0x3f)]));
  const conn = C.connect('mx.example', '4', 25, '192.0.2.1');
  assert.deepEqual(conn.subarray(5), Buffer.concat([z('mx.example'), Buffer.from('4'), Buffer.from([0, 25]), z('192.0.2.1')]));
  assert.deepEqual(C.macros('M', new Map([['{mail_addr}', 'a@b']])).subarray(5), Buffer.concat([Buffer.from('M'), z('{mail_addr}', 'a@b')]));
  assert.equal(C.eom().length, 5);
});

test('the decoder cuts a stream of packets at every split point', () => {
  const stream = Buffer.concat([
    answer('c'),
    answer('h', z('X-Spam', 'yes')),
    answer('m', Buffer.concat([u32(1), z('Subject', 'new')])),
    answer('b', Buffer.alloc(70_000, 0x61)),
    answer('y', z('550 5.7.1 no')),
  ]);
  const expected = new C.MilterDecoder().push(stream).map((p) => C.parseResponse(p));
  assert.equal(expected.length, 5);
  for (let i = 0; i <= stream.length; i += i < 40 ? 1 : 997) {
    const d = new C.MilterDecoder();
    const got = [...d.push(stream.subarray(0, i)), ...d.push(stream.subarray(i))].map((p) => C.parseResponse(p));
    assert.deepEqual(got, expected, `split at ${i}`);
  }
  // One byte at a time.
  const d = new C.MilterDecoder();
  const got = [];
  for (let i = 0; i < 200; i++) got.push(...d.push(stream.subarray(i, i + 1)));
  assert.equal(got.length, 3);
});

test('answers as values', () => {
  const p = (cmd: string, data?: Buffer): C.Response => C.parseResponse({ cmd, data: data ?? Buffer.alloc(0) });
  assert.deepEqual(p('a'), { kind: 'accept' });
  assert.deepEqual(p('t'), { kind: 'tempfail' });
  assert.deepEqual(p('h', z('X-A', 'b')), { kind: 'addheader', name: 'X-A', value: 'b' });
  assert.deepEqual(p('i', Buffer.concat([u32(0), z('X-A', 'b')])), { kind: 'insheader', index: 0, name: 'X-A', value: 'b' });
  assert.deepEqual(p('m', Buffer.concat([u32(2), z('X-A', '')])), { kind: 'chgheader', index: 2, name: 'X-A', value: '' });
  assert.deepEqual(p('e', z('<new@example>')), { kind: 'chgfrom', sender: '<new@example>' });
  assert.deepEqual(p('+', z('<r@example>')), { kind: 'addrcpt', rcpt: '<r@example>' });
  assert.deepEqual(p('2', z('<r@example>', 'NOTIFY=NEVER')), { kind: 'addrcpt', rcpt: '<r@example>', args: 'NOTIFY=NEVER' });
  assert.deepEqual(p('-', z('<r@example>')), { kind: 'delrcpt', rcpt: '<r@example>' });
  assert.deepEqual(p('q', z('held')), { kind: 'quarantine', reason: 'held' });
  const neg = p('O', Buffer.concat([u32(6), u32(0x1ff), u32(0x10), u32(2), z('{mail_addr} i')]));
  assert.equal(neg.kind, 'optneg');
  assert.deepEqual(neg.kind === 'optneg' && [...neg.negotiated.macros], [['M', ['{mail_addr}', 'i']]]);
});

test('malformed answers are values, never exceptions', () => {
  const p = (cmd: string, data: Buffer): C.Response => C.parseResponse({ cmd, data });
  assert.equal(p('h', Buffer.from('X-A\0b')).kind, 'malformed', 'unterminated');
  assert.equal(p('m', Buffer.from([0, 0])).kind, 'malformed', 'short');
  assert.equal(p('O', Buffer.alloc(4)).kind, 'malformed');
  assert.equal(p('Z', Buffer.alloc(0)).kind, 'malformed', 'unknown');
  const d = new C.MilterDecoder();
  assert.deepEqual(d.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x4f])), []);
  assert.match(d.error ?? '', /packet length/);
  assert.deepEqual(new C.MilterDecoder().push(Buffer.from([0, 0, 0, 0])), [], 'a zero length');
});
