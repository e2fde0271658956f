/*
 * AUTH against the system's passwords (listen … auth without a table):
 * checked through PAM's unix_chkpwd, which needs root. The test creates a
 * real user with a known password and removes it afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startDaemon } from '../helpers/daemon.js';
import { RawClient, dialogue } from '../helpers/smtp-client.js';

const isRoot = process.getuid?.() === 0;

test('AUTH PLAIN with a system user and password (root only)', { skip: isRoot ? false : 'needs root to create a user and read /etc/shadow (CI runs as root)' }, async () => {
  const user = `pstn${process.pid % 100000}`;
  spawnSync('userdel', ['-r', user]);
  const add = spawnSync('useradd', ['-M', '-s', '/usr/sbin/nologin', user]);
  assert.equal(add.status, 0, add.stderr?.toString());
  try {
    const pw = spawnSync('chpasswd', [], { input: `${user}:Sys-Secret-42\n` });
    assert.equal(pw.status, 0, pw.stderr?.toString());
    const d = await startDaemon(`queue path "$DIR/spool"
smtp auth-without-tls
smtp auth-fail-delay 0
listen on 127.0.0.1 port 0 auth
action "relay" relay
match from any auth for any action "relay"
`);
    const plain = (u: string, p: string) => Buffer.from(`\0${u}\0${p}`).toString('base64');
    const c = await RawClient.open(d.port);
    await dialogue(c, `S: 220\nC: EHLO a\nS: 250\nC: AUTH PLAIN ${plain(user, 'wrong')}\nS: 535 5.7.8\nC: AUTH PLAIN ${plain(user, 'Sys-Secret-42')}\nS: 235 2.7.0\nC: MAIL FROM:<${user}@example.org>\nS: 250\nC: QUIT\nS: 221`);
    c.close();
    await d.stop();
    d.cleanup();
  } finally {
    spawnSync('userdel', [user]);
  }
});
