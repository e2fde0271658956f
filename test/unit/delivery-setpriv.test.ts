/*
 * test/unit/delivery-setpriv.test.ts — the argument vector that starts an
 * mda or |command (mda.ts commandArgv): /bin/sh -c COMMAND, through setpriv
 * when the daemon is root; the command is always one argument, never parsed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandArgv } from '../../src/delivery/local/mda.js';

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
});
