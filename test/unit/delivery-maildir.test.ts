/*
 * test/unit/delivery-maildir.test.ts — maildir delivery through the
 * LocalAgent: new/ files, format specifiers, junk and +extension folders,
 * virtual users, hostile addresses.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TableRegistry } from '../../src/table/table.js';
import { StaticTable } from '../../src/table/table-static.js';
import { MODES, FakeUsers, actionOf, agent, config, message, statuses, task, tmpDir } from './delivery-helpers.js';

const NAME = /^\d+\.M\d+P\d+Q\d+\.[^/]+$/;

function only(dir: string): string {
  const files = readdirSync(join(dir, 'new'));
  assert.equal(files.length, 1, `${dir}/new: ${files.join(', ')}`);
  assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  return join(dir, 'new', files[0] as string);
}

for (const privsep of MODES) {
  describe(`maildir delivery (${privsep ? 'through the deliver-as helper' : 'in the daemon'})`, () => {
    function setup(t: { after(fn: () => void): void }, actions: string) {
      const dir = tmpDir(t);
      const c = config(`${actions}\nmatch from any for local action "md"\n`);
      const users = new FakeUsers({ bob: { home: join(dir, 'home', 'bob') }, vmail: { home: join(dir, 'vmail') } });
      return { dir, c, users, action: actionOf(c, 'md'), a: agent({ config: c, users, privsep }) };
    }

    it('delivers into ~/Maildir/new with a unique name', async (t) => {
      const { dir, action, a } = setup(t, 'action "md" maildir');
      const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'hi' }, 'From here\r\nline 2\r\n'), chunk: 5 }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0']);
      const md = join(dir, 'home', 'bob', 'Maildir');
      const file = only(md);
      assert.match(file.split('/').pop() as string, NAME);
      assert.match(rs[0]?.detail ?? '', /delivered to maildir/);
      assert.equal(readFileSync(file, 'utf8'), 'Return-Path: <alice@example.net>\nDelivered-To: bob@example.org\nSubject: hi\n\nFrom here\nline 2\n');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      for (const sub of ['', 'cur', 'new', 'tmp']) assert.equal(statSync(join(md, sub)).mode & 0o777, 0o700, sub);
    });

    it('expands format specifiers in the path', async (t) => {
      const { dir, c, users } = setup(t, 'action "md" maildir');
      const c2 = config(`action "md" maildir "${dir}/vmail/%{rcpt.domain}/%{rcpt.user:strip|lowercase}"\nmatch from any for local action "md"\n`);
      void c;
      const a = agent({ config: c2, users, privsep });
      const rs = await a.deliver(task({ action: actionOf(c2, 'md'), recipients: [{ address: 'Bob+Stuff@Example.org', dest: { kind: 'user', user: 'bob' } }], message: message({ Subject: 'x' }, 'x\n') }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0']);
      only(join(dir, 'vmail', 'Example.org', 'bob'));
    });

    it('files spam in .Junk with the junk option', async (t) => {
      const { dir, action, a } = setup(t, `action "md" maildir "~/Mail" junk`);
      const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'buy', 'X-Spam': 'yes' }, 'x\n') }));
      const rs2 = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'ham' }, 'x\n') }));
      assert.deepEqual([...statuses(rs), ...statuses(rs2)], ['ok 2.0.0', 'ok 2.0.0']);
      const md = join(dir, 'home', 'bob', 'Mail');
      assert.match(readFileSync(only(join(md, '.Junk')), 'utf8'), /Subject: buy/);
      assert.match(readFileSync(only(md), 'utf8'), /Subject: ham/);
    });

    it('ignores spam marks without the junk option', async (t) => {
      const { dir, action, a } = setup(t, `action "md" maildir`);
      await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ 'X-Spam': 'yes' }, 'x\n') }));
      only(join(dir, 'home', 'bob', 'Maildir'));
      assert.equal(existsSync(join(dir, 'home', 'bob', 'Maildir', '.Junk')), false);
    });

    it('uses the +extension folder when the user has made it', async (t) => {
      const { dir, action, a } = setup(t, `action "md" maildir`);
      const md = join(dir, 'home', 'bob', 'Maildir');
      const r1 = await a.deliver(task({ action, recipients: ['bob+lists@example.org'], message: message({ Subject: 'one' }, 'x\n') }));
      assert.deepEqual(statuses(r1), ['ok 2.0.0']);
      assert.match(readFileSync(only(md), 'utf8'), /Subject: one/);
      assert.equal(existsSync(join(md, '.lists')), false, 'a sender cannot create folders');
      mkdirSync(join(md, '.lists'), { mode: 0o700 });
      const r2 = await a.deliver(task({ action, recipients: ['bob+lists@example.org'], message: message({ Subject: 'two' }, 'x\n') }));
      assert.deepEqual(statuses(r2), ['ok 2.0.0']);
      assert.match(readFileSync(only(join(md, '.lists')), 'utf8'), /Subject: two/);
    });

    it('refuses traversal through specifiers and extensions', async (t) => {
      const { dir, users } = setup(t, 'action "md" maildir');
      const c = config(`action "md" maildir "${dir}/v/%{rcpt.user:raw}"\nmatch from any for local action "md"\n`);
      const a = agent({ config: c, users, privsep });
      const action = actionOf(c, 'md');
      const rs = await a.deliver(
        task({
          action,
          recipients: [
            { address: '../../../etc/x@example.org', dest: { kind: 'user', user: 'bob' } },
            { address: '..@example.org', dest: { kind: 'user', user: 'bob' } },
            { address: '.ssh@example.org', dest: { kind: 'user', user: 'bob' } },
            { address: 'bob+..@example.org', dest: { kind: 'user', user: 'bob' } },
            { address: 'bob+.x@example.org', dest: { kind: 'user', user: 'bob' } },
            { address: 'z@example.org', dest: { kind: 'user', user: '../../bob' } },
          ],
          message: message({ Subject: 'x' }, 'x\n'),
        }),
      );
      assert.deepEqual(statuses(rs), Array(6).fill('permfail 5.1.3'));
      assert.equal(existsSync(join(dir, 'v')), false);
      assert.equal(existsSync(join(dir, 'etc')), false);
    });

    it('delivers for virtual users of a userbase and as the `user` of the action', async (t) => {
      const { dir, users } = setup(t, 'action "md" maildir');
      const c = config(`table vusers { "v1" = "1:1:/x" }\naction "md" maildir "%{user.directory}/Maildir" userbase <vusers>\naction "as" maildir "${dir}/shared/%{dest.user}" user "vmail"\nmatch from any for local action "md"\nmatch from any for local action "as"\n`);
      const tables = new TableRegistry();
      const uid = process.getuid?.() ?? 0;
      const gid = process.getgid?.() ?? 0;
      tables.add(new StaticTable('vusers', { kind: 'inline', entries: new Map([['v1', `${uid}:${gid}:${dir}/virtual/v1`], ['broken', 'nope']]) }));
      const a = agent({ config: c, users, tables, privsep });
      const rs = await a.deliver(task({ action: actionOf(c, 'md'), recipients: ['v1@example.org', 'v2@example.org', 'broken@example.org'], message: message({ Subject: 'v' }, 'x\n') }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0', 'permfail 5.1.1', 'tempfail 4.3.0']);
      only(join(dir, 'virtual', 'v1', 'Maildir'));
      const rs2 = await a.deliver(task({ action: actionOf(c, 'as'), recipients: ['carol@example.org'], message: message({ Subject: 'v' }, 'x\n') }));
      assert.deepEqual(statuses(rs2), ['ok 2.0.0']);
      only(join(dir, 'shared', 'carol'));
    });
  });
}
