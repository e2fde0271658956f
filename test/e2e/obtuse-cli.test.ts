/*
 * The Obtuse commands' bad input, through the built programs: a mix of
 * OpenSMTPD's and Obtuse's smtpd options, a missing home or rules file,
 * an unknown user, smtpfwdd's unknown options — one line, exit status 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, SMTPD, tempDir } from '../helpers/daemon.js';
import { run } from '../helpers/tools.js';

const POSTERN = join(REPO, 'bin/postern.js');

async function oneLine(cmd: string[], re: RegExp): Promise<void> {
  const r = await run(process.execPath, cmd);
  assert.equal(r.status, 1, `${cmd.join(' ')}: ${r.stderr}`);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr.trim(), re);
}

test('smtpd: Obtuse and OpenSMTPD options mixed, or Obtuse\'s without -c', async () => {
  await oneLine([SMTPD, '-c', '/home/smtpd', '-d', '/spool', '-u', 'daemon', '-g', 'daemon', '-D', '-f', '/etc/mail/smtpd.conf'], /^smtpd: -f is an option of OpenSMTPD's smtpd and cannot be mixed/);
  await oneLine([SMTPD, '-d', '/spool', '-u', 'daemon', '-g', 'daemon', '-D'], /^smtpd: -u is an option of Obtuse's smtpd, which needs -c HOME/);
  await oneLine([SMTPD, '-c', '/home/smtpd', '-d', '/spool', '-z', '-D'], /^smtpd: unknown option -- z \(usage: smtpd -c home/);
  await oneLine([SMTPD, '-c', '/home/smtpd', '-d', '/spool'], /add -D$/);
});

test('smtpd -c: a missing home, rules file or user', { skip: process.getuid?.() !== 0 ? 'needs root' : undefined }, async () => {
  const home = tempDir('postern-obtuse-cli-');
  await oneLine([SMTPD, '-c', join(home, 'nope'), '-D'], /^smtpd: -c .*\/nope: no such folder$/);
  await oneLine([SMTPD, '-c', home, '-D'], /^smtpd: .*\/etc\/smtpd_check_rules: no such file/);
  mkdirSync(join(home, 'etc'));
  writeFileSync(join(home, 'etc', 'smtpd_check_rules'), 'allow:ALL:ALL:ALL\n');
  await oneLine([SMTPD, '-c', home, '-u', 'no-such-user-xq', '-D'], /^smtpd: -u no-such-user-xq: no such user$/);
  await oneLine([SMTPD, '-c', home, '-u', 'root', '-D'], /^smtpd: -u root: the receiver must not run as root$/);
});

test('smtpfwdd: unknown option, no -d, a relative sendmail', async () => {
  const dir = tempDir('postern-fwd-cli-');
  await oneLine([POSTERN, 'smtpfwdd', '-x'], /^smtpfwdd: unknown option -- x \(usage: smtpfwdd -d spool/);
  await oneLine([POSTERN, 'smtpfwdd'], /^smtpfwdd: -d SPOOL is required/);
  await oneLine([POSTERN, 'smtpfwdd', '-d', join(dir, 'none')], /not an existing folder/);
  await oneLine([POSTERN, 'smtpfwdd', '-d', dir, '-s', 'sendmail'], /must be an absolute path/);
  await oneLine([POSTERN, 'smtpfwdd', '-d', dir, '-r', '0'], /^smtpfwdd: -r 0: expected a number of seconds/);
});
