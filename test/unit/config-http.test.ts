/*
 * The `http` statements of smtpd.conf (config/parse-http.ts): what they
 * build, and FILE:LINE:COL errors for everything wrong, including a
 * listener beyond loopback without TLS or a token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errors, ok } from './config-helpers.js';

test('no http statement: no HTTP listener (the default)', () => {
  assert.equal(ok('listen on 127.0.0.1\n').http, undefined);
});

test('http listen on loopback with tokens', () => {
  const c = ok('http listen on 127.0.0.1 port 9180\nhttp token "ops" file "/etc/postern/ops.token" role admin\nhttp token viewer file "t/v" role read-only\nhttp max-connections 10\n');
  assert.equal(c.http?.address, '127.0.0.1');
  assert.equal(c.http?.port, 9180);
  assert.equal(c.http?.maxConnections, 10);
  assert.deepEqual(c.http?.tokens.map((t) => [t.name, t.file, t.role]), [
    ['ops', '/etc/postern/ops.token', 'admin'],
    ['viewer', '/srv/postern/t/v', 'read-only'],
  ]);
  assert.equal(ok('http listen on ::1\n').http?.port, 9180, 'the default port');
});

test('beyond loopback: TLS and a token are required', () => {
  assert.deepEqual(errors('http listen on 0.0.0.0 port 9180\n'), [
    'smtpd.conf:1:6: "http listen on 0.0.0.0" is beyond loopback: add "tls pki NAME" (and an "http token") or listen on 127.0.0.1',
    'smtpd.conf:1:6: "http listen on 0.0.0.0" is beyond loopback: it needs at least one "http token NAME file PATH role …"',
  ]);
  const c = ok('pki mx cert "/c.crt"\npki mx key "/c.key"\nhttp listen on 192.0.2.1 tls pki mx\nhttp token ops file "/t" role admin\n');
  assert.equal(c.http?.pki, 'mx');
  assert.deepEqual(errors('http listen on 192.0.2.1 tls pki nope\nhttp token ops file "/t" role admin\n'), ['smtpd.conf:1:34: undefined pki "nope"']);
});

test('errors have positions', () => {
  assert.deepEqual(errors('http listen on 127.0.0.1 port 99999\n'), ['smtpd.conf:1:31: invalid port 99999 (ports are 1–65535)']);
  assert.match(errors('http listen on 127.0.0.1\nhttp token ops file "/t" role root\n')[0] ?? '', /^smtpd\.conf:2:31: unknown role "root"/);
  assert.match(errors('http lisen on 127.0.0.1\n')[0] ?? '', /^smtpd\.conf:1:6: unknown "http" option "lisen"; did you mean "listen"\?/);
  assert.deepEqual(errors('http token ops file "/t" role admin\n'), ['smtpd.conf:1:12: "http token" without "http listen on …": there is no HTTP listener to use it']);
  assert.deepEqual(errors('http listen on 127.0.0.1\nhttp token ops file "/a" role admin\nhttp token ops file "/b" role admin\n'), ['smtpd.conf:3:12: http token "ops" is already defined at line 2']);
  assert.deepEqual(errors('http listen on 127.0.0.1\nhttp listen on 127.0.0.2\n'), ['smtpd.conf:2:6: "http listen" is already given at line 1']);
  assert.match(errors('http listen on 127.0.0.1\nhttp token "a b" file "/a" role admin\n')[0] ?? '', /^smtpd\.conf:2:12: invalid token name "a b"/);
});
