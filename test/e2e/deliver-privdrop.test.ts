/*
 * test/e2e/deliver-privdrop.test.ts — the running smtpd, as root, delivers
 * as the recipient: the test creates two real users (useradd -m, removed
 * afterwards), sends each mail over SMTP, and checks that the mbox and the
 * maildir belong to the user, that the mda ran with the user's uid, gid,
 * groups, HOME and working folder, and that one user's mda cannot read the
 * other's mailbox. Needs root (CI runs as root); skipped with a message
 * otherwise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { usersForSuite, sh, type RealUser } from '../helpers/users.js';
import { HEAD, IS_ROOT, message, sendOk, startSite, testDir, waitFor, waitForMbox, writeFiles } from './deliver-helpers.js';


/** Records who it runs as, then tries to read the other user's mailbox (named in $DIR/other.<user>). */
const WHOAMI_SH = `#!/bin/sh
out="$HOME/mda-out"
{ id -u; id -g; id -G; echo "$HOME"; pwd; echo "$USER"; } > "$out"
if cat "$DIR/mail/$(cat "$DIR/other.$USER")" > /dev/null 2>&1; then echo "read the other mailbox" >> "$out"; else echo "denied" >> "$out"; fi
cat > "$HOME/mda-msg"
`;

const CONFIG = `${HEAD}
action "local" mbox
action "md" maildir
action "who" mda "$DIR/bin/whoami.sh"
match from any for domain "test.example" action "local"
match from any for domain "maildir.example" action "md"
match from any for domain "mda.example" action "who"
`;

describe('delivery as the recipient through the daemon (privilege drop)', { skip: IS_ROOT ? false : 'needs root: run the tests as root (CI does) to create two users with useradd and check who owns what' }, () => {
  const users = usersForSuite('pstd').users;

  it('mbox, maildir and mda deliveries run as each user and leave files that belong to them', async (t) => {
    const dir = testDir(t);
    const [ua, ub] = users as [RealUser, RealUser];
    writeFiles(dir, { 'bin/whoami.sh': [WHOAMI_SH, 0o755], [`other.${ua.name}`]: ub.name, [`other.${ub.name}`]: ua.name });
    chmodSync(dir, 0o755);
    const d = await startSite(dir, CONFIG);
    for (const u of users) {
      await sendOk(d.port, { from: 'carol@remote.example', to: [`${u.name}@test.example`, `${u.name}@maildir.example`], data: message({ Subject: `to ${u.name}` }, 'From me\nhi\n') });
    }

    // mbox: <mbox path>/<user>, 0600, the user's; the folder Postern made is 1777 (as /var/mail without a mail group).
    assert.equal(statSync(join(dir, 'mail')).mode & 0o7777, 0o1777);
    for (const u of users) {
      const path = join(dir, 'mail', u.name);
      const [m] = await waitForMbox(path, 1, { daemon: d });
      assert.equal(m?.header('Subject'), `to ${u.name}`);
      const st = statSync(path);
      assert.equal(st.uid, u.uid, `${path} owner`);
      assert.equal(st.gid, u.gid, `${path} group`);
      assert.equal(st.mode & 0o777, 0o600);
      assert.equal(existsSync(`${path}.lock`), false);
    }
    // maildir: ~/Maildir, every folder and file the user's.
    for (const u of users) {
      const md = join(u.home, 'Maildir');
      const files = await waitFor(`${md}/new`, () => {
        const fs = existsSync(join(md, 'new')) ? readdirSync(join(md, 'new')) : [];
        return fs.length > 0 ? fs : undefined;
      }, { daemon: d });
      for (const p of [md, join(md, 'new'), join(md, 'cur'), join(md, 'tmp'), join(md, 'new', files[0] as string)]) {
        const st = statSync(p);
        assert.equal(st.uid, u.uid, p);
        assert.equal(st.gid, u.gid, p);
      }
    }
    // mda: uid, gid, groups, HOME, working folder, USER; the other user's mailbox is out of reach.
    for (const u of users) await sendOk(d.port, { from: 'carol@remote.example', to: [`${u.name}@mda.example`], data: message({ Subject: `mda for ${u.name}` }, 'x\n') });
    for (const u of users) {
      const out = join(u.home, 'mda-out');
      await waitFor(`${out}`, () => (existsSync(join(u.home, 'mda-msg')) && d.logs.some((l) => l.startsWith('mda delivery ok') && l.includes(`to=<${u.name}@mda.example>`)) ? true : undefined), { daemon: d });
      assert.deepEqual(readFileSync(out, 'utf8').trim().split('\n'), [String(u.uid), String(u.gid), String(u.gid), u.home, u.home, u.name, 'denied']);
      for (const f of ['mda-out', 'mda-msg']) assert.equal(statSync(join(u.home, f)).uid, u.uid, f);
      assert.match(readFileSync(join(u.home, 'mda-msg'), 'utf8'), new RegExp(`^Return-Path: <carol@remote\\.example>\\nDelivered-To: ${u.name}@mda\\.example\\n[^]*\\nSubject: mda for ${u.name}\\n\\nx\\n$`));
    }
    // The spool is the SMTP side's (_postern, privilege separation) and closed to the users.
    const spool = statSync(join(dir, 'spool'));
    assert.equal(spool.uid, Number(spawnSync('id', ['-u', '_postern'], { encoding: 'utf8' }).stdout.trim()));
    assert.equal(spool.mode & 0o077, 0o011, 'spool 0711: users may reach offline/ but not read the queue');
    assert.equal(statSync(join(dir, 'spool', 'queue')).mode & 0o077, 0);
  });
});
