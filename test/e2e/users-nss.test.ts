/*
 * test/e2e/users-nss.test.ts — a user that exists only through NSS.
 *
 * How: a systemd user record (JSON) dropped into /run/userdb/NAME.user,
 * which the `systemd` source of Debian's default nsswitch.conf
 * ("passwd: files systemd", libnss-systemd) serves without any daemon —
 * the user is in `getent passwd` and nowhere in /etc/passwd. Nothing in
 * /etc is edited; the record is removed after the test. This stands for
 * LDAP/SSSD users, which reach Postern the same way (getent).
 *
 * Checks: SystemUsers finds the user (with uid, gid, home) and caches the
 * answer; an unknown name is "no such user"; a failing getent is "could
 * not tell"; the cost of a getent miss and of a cached answer is printed.
 * Then the daemon takes mail for the user over SMTP and delivers it to an
 * mbox the user owns. Needs root (CI runs as root).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nsswitchHasOtherSources, SystemUsers } from '../../src/users/system-users.js';
import { HEAD, IS_ROOT, message, sendOk, startSite, testDir, waitForMbox } from './deliver-helpers.js';

const NAME = `pnss${Math.random().toString(36).slice(2, 7)}`;
const UIDN = 61_000 + Math.floor(Math.random() * 2000);
const RECORD = `/run/userdb/${NAME}.user`;
/** systemd finds a drop-in by uid through a link named after the uid (systemd's userdb documentation). */
const BY_UID = `/run/userdb/${UIDN}.user`;

describe('users known only through NSS (getent passwd)', { skip: IS_ROOT ? false : 'needs root: writes a user record in /run/userdb' }, () => {
  let home = '';

  before(() => {
    assert.ok(nsswitchHasOtherSources('/etc/nsswitch.conf'), 'nsswitch.conf lists only files for passwd: no NSS source to test with (Debian: passwd: files systemd)');
    home = mkdtempSync(join(tmpdir(), 'postern-nss-home-'));
    chownSync(home, UIDN, UIDN);
    mkdirSync('/run/userdb', { recursive: true });
    writeFileSync(RECORD, JSON.stringify({ userName: NAME, uid: UIDN, gid: UIDN, homeDirectory: home, shell: '/bin/sh', disposition: 'regular' }));
    symlinkSync(`${NAME}.user`, BY_UID);
    const g = spawnSync('getent', ['passwd', NAME], { encoding: 'utf8' });
    assert.equal(g.status, 0, `getent passwd ${NAME} does not see the record (is libnss-systemd installed?)`);
  });

  after(() => {
    rmSync(RECORD, { force: true });
    rmSync(BY_UID, { force: true });
    if (home !== '') rmSync(home, { recursive: true, force: true });
  });

  it('finds the user through getent (not in /etc/passwd), caches it; unknown names and getent failures', (t) => {
    assert.ok(!readFileSync('/etc/passwd', 'utf8').split('\n').some((l) => l.startsWith(`${NAME}:`)));
    const users = new SystemUsers();
    let t0 = performance.now();
    const u = users.lookup(NAME);
    const missMs = performance.now() - t0;
    assert.deepEqual(u, { name: NAME, uid: UIDN, gid: UIDN, home, shell: '/bin/sh' });
    t0 = performance.now();
    for (let i = 0; i < 1000; i++) users.lookup(NAME);
    const hitUs = ((performance.now() - t0) / 1000) * 1000;
    t0 = performance.now();
    for (let i = 0; i < 1000; i++) users.lookup('root');
    const fileUs = ((performance.now() - t0) / 1000) * 1000;
    t.diagnostic(`getent miss ${missMs.toFixed(1)} ms; cached ${hitUs.toFixed(2)} µs; /etc/passwd ${fileUs.toFixed(2)} µs`);
    assert.equal(users.byUid(UIDN)?.name, NAME);
    assert.equal(users.lookup(`${NAME}zz`), undefined);
    assert.equal(users.lookup('-x'), undefined);
    assert.equal(users.lookup('a:b'), undefined);
    // Off: the file only.
    assert.equal(new SystemUsers('/etc/passwd', { nss: false }).lookup(NAME), undefined);
    // A getent that fails is not "no such user".
    const broken = new SystemUsers('/etc/passwd', { nss: true, getent: '/bin/false' }).lookup(NAME);
    assert.ok(broken !== undefined && 'error' in broken, JSON.stringify(broken));
  });

  it('the daemon accepts mail for the NSS user and delivers it to a mailbox the user owns', async (t) => {
    const dir = testDir(t);
    const d = await startSite(dir, `${HEAD}action "local" mbox\nmatch from any for domain "test.example" action "local"\n`);
    await sendOk(d.port, { from: 'carol@remote.example', to: [`${NAME}@test.example`], data: message({ Subject: 'via NSS' }, 'hello\n') });
    const path = join(dir, 'mail', NAME);
    const [m] = await waitForMbox(path, 1, { daemon: d });
    assert.equal(m?.header('Subject'), 'via NSS');
    assert.equal(statSync(path).uid, UIDN);
  });
});
