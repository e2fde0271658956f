/*
 * test/unit/privsep-protocol.test.ts — what the privileged parent accepts
 * from the SMTP side (daemon/privsep/protocol.ts, verify.ts): malformed
 * messages are dropped; a delivery names a local action of the parent's own
 * configuration, and a file or command only when the parent's own expansion
 * of the address gives it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RemoteRequest } from '../../src/delivery/local/agent.js';
import { checkChildMessage } from '../../src/daemon/privsep/protocol.js';
import { verifyDelivery } from '../../src/daemon/privsep/verify.js';
import { LocalNames } from '../../src/rules/localnames.js';
import { TableRegistry, type Table } from '../../src/table/table.js';
import { tableFromDecl } from '../../src/table/table-static.js';
import type { UserBase, UserInfo } from '../../src/users/system-users.js';
import { load } from './config-helpers.js';

describe('privsep: messages from the SMTP side', () => {
  const good: RemoteRequest = { action: 'a', sender: 's@x.example', rcpt: { evpid: 'ab12', address: 'u@x.example', action: 'a', dest: { kind: 'user', user: 'u' } }, facts: { deliveredTo: [], spam: false } };
  it('accepts the known shapes', () => {
    assert.ok(checkChildMessage({ t: 'deliver', id: 1, reqs: [good] }));
    assert.ok(checkChildMessage({ t: 'deliver', id: 1, reqs: [good, good], body: new Uint8Array(3) }));
    assert.ok(checkChildMessage({ t: 'bind', id: 2, spec: { kind: 'tcp', host: '127.0.0.1', port: 25 } }));
    assert.ok(checkChildMessage({ t: 'bind', id: 2, spec: { kind: 'unix', path: '/var/run/smtpd.sock' } }));
    assert.ok(checkChildMessage({ t: 'body', id: 1, chunk: new Uint8Array(3) }));
    assert.ok(checkChildMessage({ t: 'offline', id: 3, name: '123.4.abcd' }));
    assert.ok(checkChildMessage({ t: 'forward', id: 4, user: 'alice' }));
    assert.ok(checkChildMessage({ t: 'filter-spawn', id: 5, name: 'rspamd' }));
    assert.ok(checkChildMessage({ t: 'filter-in', id: 5, chunk: new Uint8Array(2) }));
    assert.ok(checkChildMessage({ t: 'filter-kill', id: 5, signal: 'SIGKILL' }));
  });
  it('drops anything else', () => {
    for (const bad of [
      null,
      'deliver',
      { t: 'exec', id: 1, command: 'sh' },
      { t: 'deliver', id: -1, reqs: [good] },
      { t: 'deliver', id: 1, req: good },
      { t: 'deliver', id: 1, reqs: [] },
      { t: 'deliver', id: 1, reqs: [good, good] },
      { t: 'deliver', id: 1, reqs: [good, { ...good, sender: 'a\0b' }], body: new Uint8Array(1) },
      { t: 'deliver', id: 1, reqs: [{ ...good, rcpt: { ...good.rcpt, dest: { kind: 'remote' } } }] },
      { t: 'deliver', id: 1, reqs: [{ ...good, rcpt: { ...good.rcpt, dest: { kind: 'command', command: 'x' } } }] },
      { t: 'deliver', id: 1, reqs: [{ ...good, sender: 'a\0b' }] },
      { t: 'deliver', id: 1, reqs: [{ ...good, facts: { deliveredTo: 'x', spam: false } }] },
      { t: 'bind', id: 1, spec: { kind: 'tcp', host: '127.0.0.1', port: 70000 } },
      { t: 'bind', id: 1, spec: { kind: 'raw' } },
      { t: 'body', id: 1, chunk: 'text' },
      { t: 'log', lines: [[6, 'the mail log has a pipe of its own']] },
      { t: 'password', id: 1, user: 'u' },
      { t: 'forward', id: 1, user: '/home/u/.forward' },
      { t: 'forward', id: 1, path: '/root/.forward' },
      { t: 'filter-spawn', id: 1, command: '/bin/sh' },
      { t: 'filter-in', id: 1, chunk: 'text' },
      { t: 'filter-kill', id: 1, signal: 'SIGSTOP' },
    ]) {
      assert.equal(checkChildMessage(bad), undefined, JSON.stringify(bad));
    }
  });
});

describe('privsep: a delivery the parent resolves again', () => {
  const r = load(`table aliases { "list" = "|/usr/bin/list-post", "arch" = "/var/archive/all" }
action "a" mbox alias <aliases>
action "r" relay
match for local action "a"
match for any action "r"
`);
  assert.ok(r.config, JSON.stringify(r.diagnostics));
  const config = r.config;
  const tables = new TableRegistry();
  tables.replace([...config.tables.values()].map((d): Table => tableFromDecl(d)));
  const nobody: UserInfo = { name: 'nobody', uid: 65534, gid: 65534, home: '/nonexistent' } as UserInfo;
  const users: UserBase = { lookup: (n: string) => (n === 'nobody' ? nobody : undefined) } as UserBase;
  const env = { config, tables, users, local: new LocalNames('mx.example.org') };
  const req = (dest: RemoteRequest['rcpt']['dest'], action = 'a', address = 'list@mx.example.org'): RemoteRequest => ({
    action,
    sender: 's@remote.example',
    rcpt: { evpid: 'ab12', address, action, dest },
    facts: { deliveredTo: [], spam: false },
  });

  it('a command or file its aliases give', () => {
    assert.ok('action' in verifyDelivery(req({ kind: 'command', command: '/usr/bin/list-post', user: 'nobody' }), env));
    assert.ok('action' in verifyDelivery(req({ kind: 'file', path: '/var/archive/all', user: 'nobody' }, 'a', 'arch@mx.example.org'), env));
  });
  it('not one the SMTP side made up, nor one of another address or user', () => {
    assert.match(String((verifyDelivery(req({ kind: 'command', command: 'cat /home/bob/Maildir/*', user: 'nobody' }), env) as { error: string }).error), /is not what list@mx\.example\.org expands to/);
    assert.ok('error' in verifyDelivery(req({ kind: 'command', command: '/usr/bin/list-post', user: 'bob' }), env));
    assert.ok('error' in verifyDelivery(req({ kind: 'file', path: '/var/archive/all', user: 'nobody' }), env));
  });
  it('only a local action of its configuration, the recipient’s own', () => {
    assert.ok('error' in verifyDelivery(req({ kind: 'user', user: 'u' }, 'r'), env));
    assert.ok('error' in verifyDelivery(req({ kind: 'user', user: 'u' }, 'nope'), env));
    assert.ok('error' in verifyDelivery({ ...req({ kind: 'user', user: 'u' }), action: 'a', rcpt: { ...req({ kind: 'user', user: 'u' }).rcpt, action: 'r' } }, env));
    assert.ok('action' in verifyDelivery(req({ kind: 'user', user: 'u' }), env));
  });
});
