/*
 * test/e2e/delivery-privsep.test.ts — delivery as the recipient. As root,
 * every mbox, maildir and mda delivery runs in the deliver-as helper after
 * it has become the user: the test creates two real users (useradd),
 * delivers to each, and checks who owns what was written and who the mda
 * ran as. It needs root (CI runs as root) and says so when skipped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SystemUsers } from '../../src/users/system-users.js';
import { IS_ROOT, actionOf, agent, config, message, readMboxWithPython, statuses, task } from '../unit/delivery-helpers.js';
import { usersForSuite, sh, type RealUser } from '../helpers/users.js';


describe('delivery as the recipient (privilege drop)', { skip: IS_ROOT ? false : 'needs root: run the tests as root (CI does) to create users and check file ownership' }, () => {
  const suite = usersForSuite('pstn');
  const users = suite.users;

  function mboxSetup(name: string, mode: number, gid = 0) {
    const dir = join(suite.base, name);
    mkdirSync(dir);
    chownSync(dir, 0, gid);
    chmodSync(dir, mode);
    const c = config(`mbox path "${dir}"\naction "local" mbox\nmatch from any for local action "local"\n`);
    return { dir, c, action: actionOf(c, 'local'), a: agent({ config: c, users: new SystemUsers() }) };
  }

  const layouts: [string, number, () => number][] = [
    ['group-writable spool (Debian: 2775 root:mail)', 0o2775, () => Number(sh('getent', ['group', 'mail']).split(':')[2])],
    ['sticky world-writable spool (1777)', 0o1777, () => 0],
    ['spool writable by root only (0755)', 0o755, () => 0],
  ];
  for (const [i, [label, mode, gid]] of layouts.entries()) {
    it(`mbox in a ${label}: each mailbox belongs to its user`, async () => {
      const { dir, action, a } = mboxSetup(`mail${i}`, mode, gid());
      for (const u of users) {
        for (let n = 0; n < 2; n++) {
          const rs = await a.deliver(task({ action, recipients: [`${u.name}@example.org`], message: message({ Subject: `to ${u.name} #${n}` }, 'From me\r\nhi\r\n') }));
          assert.deepEqual(statuses(rs), ['ok 2.0.0'], rs[0]?.detail);
        }
        const path = join(dir, u.name);
        const st = statSync(path);
        assert.equal(st.uid, u.uid, `${path} owner`);
        assert.equal(st.mode & 0o777, 0o600);
        if (mode !== 0o2775) assert.equal(st.gid, u.gid);
        assert.equal(existsSync(`${path}.lock`), false);
        const msgs = await readMboxWithPython(path);
        assert.deepEqual(msgs.map((m) => m.headers.find(([k]) => k === 'Subject')?.[1]), [`to ${u.name} #0`, `to ${u.name} #1`]);
      }
    });
  }

  it('refuses a mailbox owned by someone else', async () => {
    const { dir, action, a } = mboxSetup('mail-owned', 0o1777);
    const [ua, ub] = users as [RealUser, RealUser];
    writeFileSync(join(dir, ua.name), '', { mode: 0o666 });
    chownSync(join(dir, ua.name), ub.uid, ub.gid);
    chmodSync(join(dir, ua.name), 0o666);
    const rs = await a.deliver(task({ action, recipients: [`${ua.name}@example.org`], message: message({ Subject: 'x' }, 'x\r\n') }));
    assert.deepEqual(statuses(rs), ['tempfail 4.2.0']);
    assert.match(rs[0]?.detail ?? '', /not owned by the recipient/);
    assert.equal(readFileSync(join(dir, ua.name), 'utf8'), '');
  });

  it('maildir files and folders belong to the user', async () => {
    const c = config(`action "md" maildir junk\nmatch from any for local action "md"\n`);
    const a = agent({ config: c, users: new SystemUsers() });
    for (const u of users) {
      const rs = await a.deliver(task({ action: actionOf(c, 'md'), recipients: [`${u.name}@example.org`], message: message({ Subject: 'md' }, 'x\r\n') }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0'], rs[0]?.detail);
      const md = join(u.home, 'Maildir');
      for (const d of [md, join(md, 'new'), join(md, '.Junk'), join(md, '.Junk', 'new')]) {
        const st = statSync(d);
        assert.equal(st.uid, u.uid, d);
        assert.equal(st.mode & 0o777, 0o700, d);
      }
      const files = readdirSync(join(md, 'new'));
      assert.equal(files.length, 1);
      const st = statSync(join(md, 'new', files[0] as string));
      assert.equal(st.uid, u.uid);
      assert.equal(st.gid, u.gid);
    }
  });

  it('runs the mda as the user, with their groups, HOME and working folder', async () => {
    const script = join(suite.base, 'whoami.sh');
    writeFileSync(script, '#!/bin/sh\nout="$HOME/mda-out"\n{ id -u; id -g; id -G; echo "$HOME"; pwd; echo "$USER"; } > "$out"\ncat > "$HOME/mda-msg"\n');
    chmodSync(script, 0o755);
    const c = config(`action "mda" mda "${script}"\nmatch from any for local action "mda"\n`);
    const a = agent({ config: c, users: new SystemUsers() });
    for (const u of users) {
      const rs = await a.deliver(task({ action: actionOf(c, 'mda'), recipients: [`${u.name}@example.org`], message: message({ Subject: 'who' }, 'x\r\n') }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0'], rs[0]?.detail);
      const lines = readFileSync(join(u.home, 'mda-out'), 'utf8').trim().split('\n');
      assert.deepEqual(lines, [String(u.uid), String(u.gid), String(u.gid), u.home, u.home, u.name]);
      assert.equal(statSync(join(u.home, 'mda-msg')).uid, u.uid);
    }
  });

  it('an mda cannot write where its user may not', async () => {
    const target = join(suite.base, 'root-only');
    mkdirSync(target, { mode: 0o755 });
    const c = config(`action "mda" mda "cat > ${target}/x"\nmatch from any for local action "mda"\n`);
    const a = agent({ config: c, users: new SystemUsers() });
    const u = users[0] as RealUser;
    const rs = await a.deliver(task({ action: actionOf(c, 'mda'), recipients: [`${u.name}@example.org`], message: message({ Subject: 'x' }, 'x\r\n') }));
    assert.equal(rs[0]?.status, 'permfail');
    assert.match(rs[0]?.detail ?? '', /Permission denied/);
    assert.equal(existsSync(join(target, 'x')), false);
  });
});
