/*
 * test/unit/delivery-setpriv.test.ts — the argument vector that starts an
 * mda or |command (mda.ts commandArgv): /bin/sh -c COMMAND, through setpriv
 * when the daemon is root; a plain command (an absolute path and words with
 * nothing the shell would read) is its own words; anything else is one
 * argument of the shell, never parsed here. As root, with real users
 * (useradd): the groups the parent hands setpriv (user-groups.ts groupsOf)
 * are initgroups' list, kept for 5 s, and the parent's own come back.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { commandArgv, plainArgv } from '../../src/delivery/local/mda.js';
import { cachedGroups, GROUPS_TTL_MS, groupsOf, kernelGroups } from '../../src/delivery/local/user-groups.js';
import { usersForSuite, sh, type RealUser } from '../helpers/users.js';
import { IS_ROOT } from './delivery-helpers.js';

describe('mda argument vector', () => {
  it('is /bin/sh -c COMMAND when no user is given', () => {
    assert.deepEqual(commandArgv('procmail -p; echo "$SENDER"'), ['/bin/sh', ['-c', 'procmail -p; echo "$SENDER"']]);
  });

  it('goes through setpriv with the user ids, groups, no inheritable capabilities', () => {
    assert.deepEqual(commandArgv('cat > x', { uid: 1001, gid: 1002, groups: 'init' }), [
      '/usr/bin/setpriv',
      ['--reuid=1001', '--regid=1002', '--init-groups', '--inh-caps=-all', '--', '/bin/sh', '-c', 'cat > x'],
    ]);
    assert.deepEqual(commandArgv('-x --reuid=0', { uid: 5, gid: 6, groups: [6], setpriv: '/opt/setpriv' }), [
      '/opt/setpriv',
      ['--reuid=5', '--regid=6', '--groups=6', '--inh-caps=-all', '--', '/bin/sh', '-c', '-x --reuid=0'],
    ]);
  });

  it('runs a plain command as its own words, through setpriv as root', () => {
    assert.deepEqual(commandArgv('/usr/bin/procmail -f -'), ['/usr/bin/procmail', ['-f', '-']]);
    assert.deepEqual(commandArgv(' /usr/bin/procmail\t-a  x@y.z ', { uid: 7, gid: 8, groups: 'init' }), [
      '/usr/bin/setpriv',
      ['--reuid=7', '--regid=8', '--init-groups', '--inh-caps=-all', '--', '/usr/bin/procmail', '-a', 'x@y.z'],
    ]);
    assert.deepEqual(plainArgv('/opt/mda/deliver_v2 -m=INBOX,x +y:z 50% a.b/c'), ['/opt/mda/deliver_v2', '-m=INBOX,x', '+y:z', '50%', 'a.b/c']);
  });

  it('leaves to the shell every command with something the shell would read', () => {
    const shell = [
      'procmail -f -', // no path: a builtin or a PATH search is the shell's
      'A=1 /usr/bin/procmail', // an assignment prefix
      '/usr/bin/procmail "$HOME"', "/usr/bin/procmail '-f'", '/usr/bin/procmail a\\ b', '/usr/bin/procmail ~/x', '/usr/bin/procmail *',
      '/usr/bin/procmail ?', '/usr/bin/procmail [a]', '/usr/bin/procmail {a,b}', '/usr/bin/procmail $(id)', '/usr/bin/procmail `id`',
      '/usr/bin/procmail; id', '/usr/bin/procmail | id', '/usr/bin/procmail && id', '/usr/bin/procmail &', '/usr/bin/procmail > f', '/usr/bin/procmail < f',
      '/usr/bin/procmail # x', '/usr/bin/procmail\nid', '/usr/bin/procmail\rid', '/usr/bin/procmail ! x', '(/usr/bin/procmail)', '', '  ',
    ];
    for (const c of shell) {
      assert.equal(plainArgv(c), undefined, c);
      assert.deepEqual(commandArgv(c)[1].slice(-2), ['-c', c], c);
    }
  });
});

describe('the groups setpriv is given (root, real users)', { skip: IS_ROOT ? false : 'needs root: run the tests as root (CI does) to create users' }, () => {
  const suite = usersForSuite('pgrp');
  const users = suite.users;

  const idG = (name: string): number[] => sh('id', ['-G', name]).split(' ').map(Number).sort((a, b) => a - b);

  it("are initgroups' list, the parent's own groups unchanged; a change is seen once the kept list is 5 s old", () => {
    const [a, b] = users as [RealUser, RealUser];
    sh('usermod', ['-aG', a.name, b.name]);
    const own = kernelGroups();
    const got = groupsOf(b.name, b.gid);
    assert.deepEqual([...(got ?? [])].sort((x, y) => x - y), idG(b.name));
    assert.ok(got?.includes(a.gid), 'the supplementary group is there');
    assert.deepEqual(kernelGroups(), own, "the parent's own groups are back");
    assert.deepEqual(commandArgv('/bin/true', { uid: b.uid, gid: b.gid, groups: got ?? 'init' })[1][2], `--groups=${(got ?? []).join(',')}`);
    sh('gpasswd', ['-d', b.name, a.name]);
    assert.deepEqual(groupsOf(b.name, b.gid), got, 'kept for a few seconds');
    assert.equal(cachedGroups(b.name, b.gid, performance.now() + GROUPS_TTL_MS + 1), undefined, 'then looked up again');
  });

  it('is only the primary group for a name the group database does not list, as initgroups (and setpriv --init-groups) gives', () => {
    const own = kernelGroups();
    assert.deepEqual(groupsOf('pgrp-no-such-user', 4242), [4242]);
    assert.deepEqual(kernelGroups(), own);
  });
});
