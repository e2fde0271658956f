/*
 * net/whoson.ts's pure parts: the reply and the server's address, at every
 * shape a server (or something that is not one) may send.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWhosonReply, parseWhosonServer, whosonServerFromEnv } from '../../src/net/whoson.js';

test('a whoson reply: +user, -not logged in, *error, and anything else', () => {
  assert.deepEqual(parseWhosonReply('+alice\r\n\r\n'), { kind: 'user', user: 'alice' });
  assert.deepEqual(parseWhosonReply('+alice@pop.example extra\n\n'), { kind: 'user', user: 'alice@pop.example extra' });
  assert.deepEqual(parseWhosonReply('-Not Logged in\r\n\r\n'), { kind: 'none', why: 'Not Logged in' });
  assert.deepEqual(parseWhosonReply('*bad request\r\n'), { kind: 'error', error: 'bad request' });
  assert.deepEqual(parseWhosonReply('+\r\n'), { kind: 'none', why: 'empty user data' });
  assert.deepEqual(parseWhosonReply('HTTP/1.0 400\r\n'), { kind: 'none', why: 'malformed reply' });
  // Control characters never reach a header or a log line; the data is cut at 64 characters.
  const r = parseWhosonReply(`+ev\x07il\x1b[31m${'x'.repeat(100)}\r\n`);
  assert.equal(r.kind, 'user');
  assert.ok(r.kind === 'user' && r.user.length === 64 && !/[\x00-\x1f]/.test(r.user));
});

test('the whoson server: HOST[:PORT], [IPv6]:PORT, the environment, the default', () => {
  assert.deepEqual(parseWhosonServer('127.0.0.1'), { host: '127.0.0.1', port: 9876 });
  assert.deepEqual(parseWhosonServer('whoson.example:1234'), { host: 'whoson.example', port: 1234 });
  assert.deepEqual(parseWhosonServer('[::1]:9877'), { host: '::1', port: 9877 });
  assert.equal(parseWhosonServer('host:99999'), undefined);
  assert.equal(parseWhosonServer('two words'), undefined);
  assert.deepEqual(whosonServerFromEnv({ WHOSON_SERVER: '10.0.0.1:1' }), { host: '10.0.0.1', port: 1 });
  assert.deepEqual(whosonServerFromEnv({ WHOSON_SERVER: 'bad spec' }), { host: '127.0.0.1', port: 9876 });
  assert.deepEqual(whosonServerFromEnv({}), { host: '127.0.0.1', port: 9876 });
});
