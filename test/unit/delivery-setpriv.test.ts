/*
 * test/unit/delivery-setpriv.test.ts — the argument vector that starts an
 * mda or |command (mda.ts commandArgv): /bin/sh -c COMMAND, through setpriv
 * when the daemon is root; a plain command (an absolute path and words with
 * nothing the shell would read) is its own words; anything else is one
 * argument of the shell, never parsed here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandArgv, plainArgv } from '../../src/delivery/local/mda.js';

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
