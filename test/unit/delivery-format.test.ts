/*
 * test/unit/delivery-format.test.ts — format specifiers: values, paths that
 * cannot leave their mail root, and mda commands that never carry
 * envelope data in their text.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { splitAddress, unsafeName } from '../../src/delivery/local/address.js';
import { expandPath, expandToken, extensionFolder, shellCommand, type FormatContext } from '../../src/delivery/local/format.js';

const ctx: FormatContext = {
  sender: 'Alice.Smith@Example.NET',
  rcpt: 'Bob+Lists@example.org',
  dest: 'bob@example.org',
  user: { name: 'bob', home: '/home/bob' },
};

function value(token: string, c: FormatContext = ctx): string {
  const v = expandToken(token, c);
  assert.ok(!('error' in v), `%{${token}}: ${'error' in v ? v.error : ''}`);
  return v.value;
}

describe('addresses', () => {
  it('splits local part, extension and domain', () => {
    assert.deepEqual(splitAddress('bob+lists@example.org'), { local: 'bob+lists', domain: 'example.org', user: 'bob', extension: 'lists' });
    assert.deepEqual(splitAddress('bob@example.org'), { local: 'bob', domain: 'example.org', user: 'bob' });
    assert.deepEqual(splitAddress('+x@example.org'), { local: '+x', domain: 'example.org', user: '+x' });
    assert.deepEqual(splitAddress('bob+@example.org'), { local: 'bob+', domain: 'example.org', user: 'bob' });
    assert.deepEqual(splitAddress('a+b+c@d'), { local: 'a+b+c', domain: 'd', user: 'a', extension: 'b+c' });
  });

  it('refuses names that could leave a folder', () => {
    for (const bad of ['', '.', '..', '../../etc/passwd', 'a/b', '.hidden', 'a\0b', 'a\nb']) assert.ok(unsafeName(bad), JSON.stringify(bad));
    for (const good of ['bob', 'bob.smith', 'a..b', 'x-y_z', 'é']) assert.equal(unsafeName(good), undefined, good);
  });
});

describe('format tokens', () => {
  it('gives every documented value', () => {
    const table: [string, string][] = [
      ['sender', 'Alice.Smith@Example.NET'],
      ['sender.user', 'Alice.Smith'],
      ['sender.domain', 'Example.NET'],
      ['rcpt', 'Bob+Lists@example.org'],
      ['rcpt.user', 'Bob+Lists'],
      ['rcpt.domain', 'example.org'],
      ['dest', 'bob@example.org'],
      ['dest.user', 'bob'],
      ['dest.domain', 'example.org'],
      ['user.username', 'bob'],
      ['user.directory', '/home/bob'],
      ['mbox.from', 'Alice.Smith@Example.NET'],
      ['RCPT.USER', 'Bob+Lists'],
    ];
    for (const [t, v] of table) assert.equal(value(t), v, t);
  });

  it('applies modifiers and substrings as OpenSMTPD', () => {
    assert.equal(value('rcpt.user:lowercase'), 'bob+lists');
    assert.equal(value('sender:uppercase'), 'ALICE.SMITH@EXAMPLE.NET');
    assert.equal(value('rcpt:strip'), 'Bob@example.org');
    assert.equal(value('rcpt.user:strip|lowercase'), 'bob');
    assert.equal(value('dest.user[0]'), 'b');
    assert.equal(value('dest.user[1:]'), 'ob');
    assert.equal(value('dest.user[-1:]'), 'b');
    // OpenSMTPD counts a negative end from the last-but-one character; a lone [-1] is out of range there too.
    assert.ok('error' in expandToken('dest.user[-1]', ctx));
    assert.equal(value('dest.domain[0:2]'), 'exa');
    assert.equal(value('dest.user[0]:uppercase'), 'B');
  });

  it('handles the null sender', () => {
    const c = { ...ctx, sender: '' };
    assert.equal(value('sender', c), '');
    assert.equal(value('sender.user', c), '');
    assert.equal(value('mbox.from', c), 'MAILER-DAEMON');
  });

  it('turns special characters into ":" unless raw', () => {
    const c = { ...ctx, rcpt: "o'hara!x{y}@example.org" };
    assert.equal(value('rcpt.user', c), 'o:hara:x:y:');
    assert.equal(value('rcpt.user:raw', c), "o'hara!x{y}");
    assert.equal(value('user.directory', { ...ctx, user: { name: 'b', home: '/h/a~b' } }), '/h/a~b');
  });

  it('reports unknown tokens, modifiers and bad ranges', () => {
    for (const bad of ['nope', 'rcpt:shout', 'rcpt[', 'rcpt[]', 'rcpt[x]', 'dest.user[9]', 'mda', 'rcpt[2:1]']) assert.ok('error' in expandToken(bad, ctx), bad);
  });
});

describe('maildir paths', () => {
  function path(t: string, c: FormatContext = ctx): string {
    const r = expandPath(t, c);
    assert.ok(r.ok, `${t}: ${!r.ok ? r.error : ''}`);
    return r.path;
  }

  it('expands ~, relative paths and specifiers', () => {
    assert.equal(path('~/Maildir'), '/home/bob/Maildir');
    assert.equal(path('~'), '/home/bob');
    assert.equal(path('Maildir'), '/home/bob/Maildir');
    assert.equal(path('%{user.directory}/Mail'), '/home/bob/Mail');
    assert.equal(path('/var/vmail/%{rcpt.domain}/%{rcpt.user:strip|lowercase}'), '/var/vmail/example.org/bob');
    assert.equal(path('/var/vmail/%{dest.domain}/%{dest.user}/'), '/var/vmail/example.org/bob');
    assert.equal(path('/srv/100%%/%{dest.user}'), '/srv/100%/bob');
  });

  it('refuses addresses that would leave the mail root', () => {
    const evil = ['../../etc/passwd', '..', '.', '.ssh'];
    for (const local of evil) {
      const c = { ...ctx, rcpt: `${local}@example.org`, dest: `${local}@example.org` };
      for (const t of ['/var/vmail/%{rcpt.user}', '/var/vmail/%{dest.user:raw}', '~/%{rcpt.user}/x', '/var/vmail/.%{rcpt.user}']) {
        const r = expandPath(t, c);
        assert.ok(!r.ok && r.unsafe, `${t} with ${local}: ${r.ok ? r.path : r.error}`);
      }
    }
    const raw = expandPath('/var/vmail/%{rcpt.user:raw}', { ...ctx, rcpt: 'a/b@x' });
    assert.ok(!raw.ok && raw.unsafe);
    // "/" becomes ":" (OpenSMTPD), so this one is a single harmless name.
    assert.equal(path('/var/vmail/%{rcpt.user}', { ...ctx, rcpt: 'a/../../b@x' }), '/var/vmail/a:..:..:b');
    // A value glued to literal text cannot climb either.
    const dot = expandPath('/var/vmail/.%{rcpt.user}', { ...ctx, rcpt: '.@x' });
    assert.ok(!dot.ok);
    const dom = expandPath('/var/vmail/%{rcpt.domain}', { ...ctx, rcpt: 'x@..' });
    assert.ok(!dom.ok && dom.unsafe);
  });

  it('reports configuration errors as such', () => {
    const r = expandPath('/var/%{nope}', ctx);
    assert.ok(!r.ok && !r.unsafe);
  });

  it('names the extension folder, refusing unsafe ones', () => {
    assert.deepEqual(extensionFolder('lists'), { ok: true, folder: '.lists' });
    assert.deepEqual(extensionFolder('a/b'), { ok: true, folder: '.a:b' });
    for (const bad of ['.', '..', '.x', 'a\nb']) assert.ok(!extensionFolder(bad).ok, bad);
  });
});

describe('mda commands', () => {
  function sh(command: string, env: Record<string, string>): string {
    const r = spawnSync('/bin/sh', ['-c', command], { env: { PATH: '/usr/bin:/bin', ...env }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  }

  it('replaces specifiers by variable references quoted for their place', () => {
    const r = shellCommand(`printf '%s|' %{rcpt.user} "x-%{dest}" 'q-%{sender}-q' 100%%`, ctx);
    assert.ok(r.ok);
    assert.equal(r.command, `printf '%s|' "$POSTERN_FORMAT_1" "x-\${POSTERN_FORMAT_2}" 'q-'"$POSTERN_FORMAT_3"'-q' 100%`);
    assert.deepEqual(r.env, { POSTERN_FORMAT_1: 'Bob+Lists', POSTERN_FORMAT_2: 'bob@example.org', POSTERN_FORMAT_3: 'Alice.Smith@Example.NET' });
    assert.equal(sh(r.command, r.env), 'Bob+Lists|x-bob@example.org|q-Alice.Smith@Example.NET-q|100%|');
  });

  it('never lets a value become shell syntax', () => {
    const nasty = ['$(touch /tmp/pwned-fmt)', '`touch /tmp/pwned-fmt`', 'a;touch /tmp/pwned-fmt', "a'b\"c", 'a b  *', '$HOME', '\\'];
    for (const n of nasty) {
      const c = { ...ctx, rcpt: `${n}@example.org` };
      for (const cmd of ['printf %s %{rcpt.user:raw}', 'printf %s "%{rcpt.user:raw}"', "printf %s '%{rcpt.user:raw}'", 'printf %s \\"%{rcpt.user:raw}\\"']) {
        const r = shellCommand(cmd, c);
        assert.ok(r.ok);
        assert.ok(!r.command.includes('touch'), r.command);
        const out = sh(r.command, r.env);
        assert.ok(out.includes(n) || cmd.includes('\\"'), `${cmd} with ${n}: ${out}`);
      }
    }
    assert.equal(spawnSync('test', ['-e', '/tmp/pwned-fmt']).status, 1);
  });

  it('refuses unknown specifiers', () => {
    assert.ok(!shellCommand('x %{mda}', ctx).ok);
    assert.ok(!shellCommand('x %{rcpt', ctx).ok);
  });
});
