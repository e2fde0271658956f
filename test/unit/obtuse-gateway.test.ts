/*
 * The Obtuse gateway's pure parts: which smtpd a command line means (and
 * the one-line errors for a mix), the confined root's mounts, smtpfwdd's
 * sendmail argument vector and its line-end conversion.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { chooseSmtpdMode } from '../../src/cli/smtpd-mode.js';
import { mountPlan } from '../../src/daemon/obtuse/confine.js';
import { CrlfToLf, sendmailArgs } from '../../src/daemon/obtuse/forwarder.js';
import { receiverConfigText } from '../../src/daemon/obtuse/receiver.js';

const split = (s: string): string[] => s.split(' ').filter(Boolean);

test('seed 001\'s command line is Obtuse smtpd; OpenSMTPD\'s stay OpenSMTPD\'s', () => {
  const m = chooseSmtpdMode(split('-c /home/smtpd -d /spool -u daemon -g daemon -D -L'));
  assert.deepEqual(m, { kind: 'obtuse', options: { home: '/home/smtpd', spool: '/spool', user: 'daemon', group: 'daemon', noOpenlog: true, address: '0.0.0.0', port: 25 } });
  const bare = chooseSmtpdMode(split('-c /home/smtpd -D'));
  assert.equal(bare.kind === 'obtuse' && `${bare.options.spool} ${bare.options.user}:${bare.options.group}`, '/spool daemon:daemon');
  for (const line of ['-d', '-dv -f /etc/mail/smtpd.conf', '-n', '-D foo=bar -F', '-b [192.0.2.1]', '-P mda -T smtp', '']) assert.deepEqual(chooseSmtpdMode(split(line)), { kind: 'opensmtpd' }, line);
  // Options in any order: OpenSMTPD's getopt would stop at "/spool" and never see -c.
  assert.equal(chooseSmtpdMode(split('-d /spool -c /home/smtpd -u daemon -g daemon -D')).kind, 'obtuse');
  const p = chooseSmtpdMode(split('-c /h -D -l 127.0.0.1 -p 2525'));
  assert.equal(p.kind === 'obtuse' && `${p.options.address}:${p.options.port}`, '127.0.0.1:2525');
});

test('a mix of the two smtpds, or a bad value, is one line', () => {
  const err = (line: string): string => {
    const m = chooseSmtpdMode(split(line));
    assert.equal(m.kind, 'error', line);
    return m.kind === 'error' ? m.message : '';
  };
  assert.match(err('-c /home/smtpd -d /spool -f /etc/mail/smtpd.conf -D'), /^-f is an option of OpenSMTPD's smtpd and cannot be mixed with Obtuse smtpd's options/);
  assert.match(err('-c /h -D -v'), /^-v is an option of OpenSMTPD's smtpd/);
  assert.match(err('-d -u daemon'), /^-u is an option of Obtuse's smtpd, which needs -c HOME/);
  assert.match(err('-L'), /^-L is an option of Obtuse's smtpd, which needs -c HOME/);
  assert.match(err('-d /spool -u daemon -g daemon -D'), /^-u is an option of Obtuse's smtpd, which needs -c HOME/);
  assert.match(err('-c /h -d /spool'), /without -D .* add -D$/);
  assert.match(err('-c home -D'), /^-c home: the home must be an absolute path$/);
  assert.match(err('-c /h -d spool -D'), /^-d spool: the spool is a path inside the home/);
  assert.match(err('-c /h -d /../etc -D'), /^-d \/\.\.\/etc/);
  assert.match(err('-c /h -D -p 99999'), /^-p 99999: not a port number$/);
  assert.match(err('-c /h -D -u x;y'), /^-u x;y: not a user name/);
  assert.deepEqual(chooseSmtpdMode(['-x']), { kind: 'opensmtpd' }, 'OpenSMTPD\'s smtpd reports its own unknown options');
  assert.match(err('-c /h -D -x'), /^unknown option -- x \(usage: smtpd -c home/);
  for (const line of ['-c /h -D -x', '-d -u daemon', '-c /h -D -f x']) assert.ok(!err(line).includes('\n'));
});

test('the confined root: a read-only tmpfs with /usr, the code, /etc files and /dev nodes; the home read-write', () => {
  const have = new Set(['/etc/resolv.conf', '/etc/hosts', '/h/etc/localtime', '/etc/localtime']);
  const plan = mountPlan({ root: '/r', home: '/h', code: '/opt/postern', node: '/usr/bin/node' }, (p) => have.has(p));
  const mounts = plan.filter((s) => s.kind === 'mount').map((s) => (s.kind === 'mount' ? s.argv.join(' ') : ''));
  assert.equal(mounts[0], '-t tmpfs -o mode=0755,size=1m,nosuid,nodev tmpfs /r');
  assert.equal(mounts.at(-1), '-o remount,ro,nosuid,nodev /r');
  assert.ok(mounts.includes('--bind /usr /r/usr') && mounts.includes('-o remount,bind,ro,nosuid,nodev /r/usr'));
  assert.ok(mounts.includes('--bind /opt/postern /r/opt/postern') && mounts.includes('-o remount,bind,ro,nosuid,nodev /r/opt/postern'));
  assert.ok(mounts.includes('--bind /h /r/h') && !mounts.some((m) => m.includes('ro') && m.endsWith(' /r/h')));
  // HOME/etc/localtime (the Obtuse layout) wins over the host's; a missing file is left out.
  assert.ok(mounts.includes('--bind /h/etc/localtime /r/etc/localtime'));
  assert.ok(mounts.includes('--bind /etc/resolv.conf /r/etc/resolv.conf'));
  assert.ok(!mounts.some((m) => m.includes('/etc/passwd')));
  assert.ok(mounts.includes('--bind /dev/urandom /r/dev/urandom'));
  // A node outside /usr gets its folder bound too.
  const nvm = mountPlan({ root: '/r', home: '/h', code: '/c', node: '/opt/node/bin/node' }, () => false);
  assert.ok(nvm.some((s) => s.kind === 'mount' && s.argv.join(' ') === '--bind /opt/node/bin /r/opt/node/bin'));
});

test('the receiver\'s generated smtpd.conf spools everything the rules file lets through', () => {
  const t = receiverConfigText({ home: '/home/smtpd', spool: '/spool', address: '0.0.0.0', port: 25 });
  assert.match(t, /^queue path "\/home\/smtpd\/spool"$/m);
  assert.match(t, /^rules "\/home\/smtpd\/etc\/smtpd_check_rules"$/m);
  assert.match(t, /^match from any for any action "smtpfwdd"$/m);
});

const env = (sender: string, rcpts: string[]) => ({ sender, smtputf8: false, recipients: rcpts.map((address, i) => ({ evpid: `0000000${i}00000000`, address, action: 'smtpfwdd' })) });

test('smtpfwdd\'s sendmail arguments: -oi -f SENDER -- RECIPIENTS, every address checked', () => {
  assert.deepEqual(sendmailArgs(env('a@b.example', ['c@d.example', 'e@f.example', 'c@d.example'])), { args: ['-oi', '-f', 'a@b.example', '--', 'c@d.example', 'e@f.example'] });
  assert.deepEqual(sendmailArgs(env('', ['postmaster'])), { args: ['-oi', '-f', '<>', '--', 'postmaster'] });
  for (const bad of ['-oQ/tmp@x.example', 'a b@c.example', 'a@b.example\n-X', 'a@b.example> -f x', '']) {
    const r = sendmailArgs(env('ok@x.example', [bad]));
    assert.ok('error' in r, JSON.stringify(bad));
  }
  assert.ok('error' in sendmailArgs(env('x@y.example\r\nRCPT', ['c@d.example'])));
  assert.ok('error' in sendmailArgs(env('x@y.example', [])));
});

test('CRLF becomes LF at every split point; a lone CR stays', async () => {
  const input = 'Subject: x\r\n\r\nline\r\nbare\rcr\r\n.\r\n';
  for (let i = 0; i <= input.length; i++) {
    const chunks = [Buffer.from(input.slice(0, i)), Buffer.from(input.slice(i))];
    const out: Buffer[] = [];
    for await (const c of Readable.from(chunks).pipe(new CrlfToLf())) out.push(c as Buffer);
    assert.equal(Buffer.concat(out).toString(), 'Subject: x\n\nline\nbare\rcr\n.\n', `split at ${i}`);
  }
  const out: Buffer[] = [];
  for await (const c of Readable.from([Buffer.from('end\r')]).pipe(new CrlfToLf())) out.push(c as Buffer);
  assert.equal(Buffer.concat(out).toString(), 'end\r');
});
