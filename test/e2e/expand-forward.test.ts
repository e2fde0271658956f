/*
 * test/e2e/expand-forward.test.ts — ~/.forward, end to end with real
 * users (useradd, removed after): the running daemon reads it at RCPT time
 * and delivers where it says. The daemon is started as root, so privilege
 * separation is on: the SMTP side runs as _postern, and the homes are 0700
 * (Debian's adduser), which _postern cannot enter — the privileged parent
 * reads each ~/.forward for it (daemon/privsep/parent.ts 'forward'). One
 * case uses a 0755 home, which the SMTP side reads itself.
 *   - forward to another local user; "\user" keeps a copy in the mailbox;
 *   - unsafe files are ignored and the mail goes to the mailbox: mode 0664,
 *     owned by another user, a symbolic link, a world-writable home;
 *   - "|command" and "/file": refused (550 5.2.4, nothing else receives)
 *     without `forward allow commands files`; with it they run as the user;
 *   - `forward none`: never read.
 *   - :include: files named in a ~/.forward are read as the user (the
 *     parent runs a reader with the user's ids): a 0600 list in a 0700 home
 *     is followed (a command it names runs as the user, re-checked by the
 *     parent the same way), a root-only file is not (451, nothing read).
 * Needs root (CI runs as root).
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireTool } from '../helpers/tools.js';
import { createUsers, removeUsers, type RealUser } from '../helpers/users.js';
import { PRIVSEP_USER } from '../helpers/daemon.js';
import { HEAD, IS_ROOT, message, send, sendOk, startSite, testDir, waitFor, waitForMbox } from './deliver-helpers.js';

const BASE_CONFIG = `${HEAD}action "local" mbox
match from any for domain "test.example" action "local"
`;

describe('~/.forward at RCPT time', { skip: IS_ROOT ? false : 'needs root: creates users with useradd' }, () => {
  const users: RealUser[] = [];
  let base = '';

  before(() => {
    requireTool('useradd');
    base = mkdtempSync(join(tmpdir(), 'postern-forward-'));
    chmodSync(base, 0o755);
    users.push(...createUsers(base, 'pfwd', 2));
  });
  after(() => {
    removeUsers(users);
    if (base !== '') rmSync(base, { recursive: true, force: true });
  });

  /** Write u's ~/.forward (owner u, mode 0644 unless told). */
  function forward(u: RealUser, text: string, opts: { mode?: number; owner?: RealUser } = {}): void {
    const p = join(u.home, '.forward');
    rmSync(p, { force: true });
    writeFileSync(p, text);
    chownSync(p, (opts.owner ?? u).uid, (opts.owner ?? u).gid);
    chmodSync(p, opts.mode ?? 0o644);
  }

  function clearForwards(homeMode = 0o700): void {
    for (const u of users) {
      rmSync(join(u.home, '.forward'), { force: true });
      chmodSync(u.home, homeMode);
    }
  }

  const mbox = (dir: string, u: RealUser): string => join(dir, 'mail', u.name);
  const to = (u: RealUser): string => `${u.name}@test.example`;

  it('forwards to another local user; "\\user" keeps a copy', async (t) => {
    clearForwards();
    const [a, b] = users as [RealUser, RealUser];
    const dir = testDir(t);
    const d = await startSite(dir, BASE_CONFIG);
    await d.waitForLog(new RegExp(`SMTP side pid=\\d+ runs as ${PRIVSEP_USER}`));
    assert.equal(statSync(a.home).mode & 0o777, 0o700);
    forward(a, `# to b\n${b.name}\n`);
    await sendOk(d.port, { from: 'x@remote.example', to: [to(a)], data: message({ Subject: 'one' }, 'hi\n') });
    const [m] = await waitForMbox(mbox(dir, b), 1, { daemon: d });
    assert.equal(m?.header('Subject'), 'one');
    assert.equal(existsSync(mbox(dir, a)), false, 'a kept a copy without \\a');

    forward(a, `\\${a.name}, ${b.name}\n`);
    await sendOk(d.port, { from: 'x@remote.example', to: [to(a)], data: message({ Subject: 'two' }, 'hi\n') });
    await waitForMbox(mbox(dir, b), 2, { daemon: d });
    const [mine] = await waitForMbox(mbox(dir, a), 1, { daemon: d });
    assert.equal(mine?.header('Subject'), 'two');

    // A 0755 home: the SMTP side reads the file itself.
    clearForwards(0o755);
    forward(a, `${b.name}\n`);
    await sendOk(d.port, { from: 'x@remote.example', to: [to(a)], data: message({ Subject: 'three' }, 'hi\n') });
    const ms = await waitForMbox(mbox(dir, b), 3, { daemon: d });
    assert.equal(ms[2]?.header('Subject'), 'three');
    clearForwards();
  });

  it('an unsafe ~/.forward is ignored: group-writable, owned by another user, a link, a world-writable home', async (t) => {
    const [a, b] = users as [RealUser, RealUser];
    const dir = testDir(t);
    const d = await startSite(dir, BASE_CONFIG);
    const cases: [string, () => void][] = [
      ['mode 0664', () => forward(a, `${b.name}\n`, { mode: 0o664 })],
      ['owned by b', () => forward(a, `${b.name}\n`, { owner: b })],
      [
        'a symbolic link',
        () => {
          const target = join(a.home, 'fwd-target');
          writeFileSync(target, `${b.name}\n`);
          chownSync(target, a.uid, a.gid);
          symlinkSync(target, join(a.home, '.forward'));
        },
      ],
      [
        'a world-writable home',
        () => {
          forward(a, `${b.name}\n`);
          chmodSync(a.home, 0o777);
        },
      ],
    ];
    let n = 0;
    for (const [what, make] of cases) {
      clearForwards();
      if (existsSync(join(a.home, '.forward'))) unlinkSync(join(a.home, '.forward'));
      make();
      await sendOk(d.port, { from: 'x@remote.example', to: [to(a)], data: message({ Subject: what }, 'hi\n') });
      n++;
      const ms = await waitForMbox(mbox(dir, a), n, { daemon: d });
      assert.equal(ms[n - 1]?.header('Subject'), what);
    }
    assert.equal(existsSync(mbox(dir, b)), false, 'an unsafe .forward was followed');
    clearForwards();
  });

  it('"|command" and "/file" are refused without `forward allow`; with it they run as the user', async (t) => {
    const [a] = users as [RealUser, RealUser];
    const out = join(a.home, 'cmd-out');
    const file = join(a.home, 'saved-mail');
    clearForwards();
    forward(a, `"|/bin/sh -c 'id -u > ${out}; cat >> ${out}'"\n${file}\n`);

    const dir = testDir(t);
    const d = await startSite(dir, BASE_CONFIG);
    const refused = await send(d.port, { from: 'x@remote.example', to: [to(a)], data: message({ Subject: 'no' }, 'hi\n') });
    assert.equal(refused.rcpts[0]?.[0], 550, JSON.stringify(refused.rcpts));
    assert.match(refused.rcpts[0]?.[1] ?? '', /5\.2\.4/);

    const dir2 = testDir(t);
    const d2 = await startSite(dir2, `forward allow commands files\n${BASE_CONFIG}`);
    await sendOk(d2.port, { from: 'x@remote.example', to: [to(a)], data: message({ Subject: 'yes' }, 'body line\n') });
    const text = await waitFor(`${out}`, () => (existsSync(out) && readFileSync(out, 'utf8').includes('body line') ? readFileSync(out, 'utf8') : undefined), { daemon: d2 });
    assert.equal(text.split('\n')[0], String(a.uid));
    const saved = await waitFor(file, () => (existsSync(file) && readFileSync(file, 'utf8').includes('Subject: yes') ? file : undefined), { daemon: d2 });
    assert.equal(statSync(saved).uid, a.uid);
    assert.equal(existsSync(mbox(dir2, a)), false);
    clearForwards();
  });

  it(':include: in a ~/.forward: read as the user (a 0700 home, nested lists, a command); a root-only file is not read', async (t) => {
    const [a, b] = users as [RealUser, RealUser];
    clearForwards();
    const own = (p: string, text: string): void => {
      writeFileSync(p, text, { mode: 0o600 });
      chownSync(p, a.uid, a.gid);
    };
    const list = join(a.home, 'list');
    const more = join(a.home, 'more');
    const out = join(a.home, 'inc-out');
    own(list, `# nested\n:include:${more}\n`);
    own(more, `${b.name}, "|/bin/sh -c 'id -u > ${out}'"\n`);
    forward(a, `:include:${list}\n`);
    const dir = testDir(t);
    const d = await startSite(dir, `forward allow commands\n${BASE_CONFIG}`);
    await sendOk(d.port, { from: 'x@remote.example', to: [to(a)], data: message({ Subject: 'included' }, 'hi\n') });
    const [m] = await waitForMbox(mbox(dir, b), 1, { daemon: d });
    assert.equal(m?.header('Subject'), 'included');
    const id = await waitFor(out, () => (existsSync(out) && readFileSync(out, 'utf8').trim() !== '' ? readFileSync(out, 'utf8') : undefined), { daemon: d });
    assert.equal(id.trim(), String(a.uid), 'the included command ran as the user');

    // A 0755 home (the SMTP side could read ~/.forward itself): the list, 0600, is still read as the user.
    chmodSync(a.home, 0o755);
    await sendOk(d.port, { from: 'x@remote.example', to: [to(a)], data: message({ Subject: 'open home' }, 'hi\n') });
    await waitForMbox(mbox(dir, b), 2, { daemon: d });
    chmodSync(a.home, 0o700);

    // A root-only file (as /etc/shadow is) that root could read: the user cannot, so neither does the daemon.
    const secret = join(base, 'root-only');
    writeFileSync(secret, `${b.name}\n`, { mode: 0o600 });
    forward(a, `:include:${secret}\n`);
    const r = await send(d.port, { from: 'x@remote.example', to: [to(a)], data: message({ Subject: 'secret' }, 'hi\n') });
    assert.equal(r.rcpts[0]?.[0], 451, JSON.stringify(r.rcpts));
    await d.waitForLog(/root-only: permission denied/);
    assert.equal((await waitForMbox(mbox(dir, b), 2, { daemon: d })).length, 2, 'the root-only list was followed');
    clearForwards();
  });

  it('`forward none`: ~/.forward is not read', async (t) => {
    const [a, b] = users as [RealUser, RealUser];
    clearForwards();
    forward(a, `${b.name}\n`);
    const dir = testDir(t);
    const d = await startSite(dir, `forward none\n${BASE_CONFIG}`);
    await sendOk(d.port, { from: 'x@remote.example', to: [to(a)], data: message({ Subject: 'none' }, 'hi\n') });
    const [m] = await waitForMbox(mbox(dir, a), 1, { daemon: d });
    assert.equal(m?.header('Subject'), 'none');
    assert.equal(existsSync(mbox(dir, b)), false);
    clearForwards();
  });
});
