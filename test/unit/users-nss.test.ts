/*
 * test/unit/users-nss.test.ts — SystemUsers' NSS path without root: which
 * nsswitch.conf lines turn it on, and a stand-in getent (a script that
 * counts its runs) for the cache, the "not found" answer (exit 2), a
 * failure (any other exit: could not tell) and names never passed to it.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { nsswitchHasOtherSources, SystemUsers } from '../../src/users/system-users.js';

const dir = mkdtempSync(join(tmpdir(), 'postern-nss-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('nsswitch.conf: files/compat alone leave NSS off; any other source turns it on', () => {
  const cases: [string, boolean][] = [
    ['passwd: files\n', false],
    ['passwd:         files systemd\ngroup: files\n', true],
    ['passwd: compat\n', false],
    ['passwd: files [NOTFOUND=return] ldap # comment\n', true],
    ['passwd: sss files\n', true],
    ['group: ldap\n', false],
  ];
  for (const [text, want] of cases) {
    const p = join(dir, 'nsswitch.conf');
    writeFileSync(p, text);
    assert.equal(nsswitchHasOtherSources(p), want, text);
  }
  assert.equal(nsswitchHasOtherSources(join(dir, 'absent')), false);
});

test('getent: found, cached, not found (exit 2), failure (exit 1), unsafe names never asked', () => {
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\n');
  const count = join(dir, 'count');
  writeFileSync(count, '');
  const getent = join(dir, 'getent');
  writeFileSync(
    getent,
    `#!/bin/sh\necho "$2" >> ${count}\ncase "$2" in\n  ldapuser|4242) echo 'ldapuser:*:4242:4242:LDAP:/home/ldapuser:/bin/bash'; exit 0;;\n  broken) exit 1;;\n  *) exit 2;;\nesac\n`,
  );
  chmodSync(getent, 0o755);
  const users = new SystemUsers(passwd, { nss: true, getent });
  assert.deepEqual(users.lookup('ldapuser'), { name: 'ldapuser', uid: 4242, gid: 4242, home: '/home/ldapuser', shell: '/bin/bash' });
  users.lookup('ldapuser');
  assert.equal(users.lookup('nobody-here'), undefined);
  assert.equal(users.lookup('nobody-here'), undefined);
  assert.ok('error' in (users.lookup('broken') as object));
  assert.equal((users.lookup('root') as { uid: number }).uid, 0);
  assert.equal(users.byUid(4242)?.name, 'ldapuser');
  for (const bad of ['-h', 'a:b', 'a b', 'x'.repeat(300)]) assert.equal(users.lookup(bad), undefined);
  assert.deepEqual(readFileSync(count, 'utf8').trim().split('\n'), ['ldapuser', 'nobody-here', 'broken', '4242']);
});
