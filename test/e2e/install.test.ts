/*
 * test/e2e/install.test.ts — `postern install` and `postern uninstall`
 * into a staging root (--root), as root, end to end: the system user in
 * the staged /etc/passwd (useradd --prefix), every folder with its owner
 * and mode, smtpd.conf (checked by `smtpd -n`), the wrappers (run with
 * cron's PATH and no `node` on it), the MTA names through Debian's
 * update-alternatives and as plain links, the man pages, the systemd unit
 * (`systemd-analyze verify`, on a copy whose commands point into the
 * staging root, with no warning allowed). Another MTA's sendmail is a
 * conflict: nothing changes without --force; with it, it is moved aside
 * and put back by uninstall. After uninstall the staging root is exactly
 * as it was (shadow's own backups, etc/passwd- and friends, and dpkg's
 * var/log/alternatives.log aside, as on a real system).
 * Nothing here touches the machine's own /etc or /usr.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { requireTool } from '../helpers/tools.js';

const REPO = join(import.meta.dirname, '..', '..', '..');
const POSTERN = join(REPO, 'bin/postern.js');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const IS_ROOT = process.getuid?.() === 0;
const NAMES = ['sendmail', 'mailq', 'newaliases', 'smtpctl', 'makemap', 'smtpd'];
const LINK_PATHS: Record<string, string> = {
  sendmail: 'usr/sbin/sendmail',
  mailq: 'usr/bin/mailq',
  newaliases: 'usr/bin/newaliases',
  smtpctl: 'usr/sbin/smtpctl',
  makemap: 'usr/sbin/makemap',
  smtpd: 'usr/sbin/smtpd',
};
const LIBEXEC = '/usr/local/libexec/postern';
/** Cron's PATH is /usr/bin:/bin, where node often is not; here no node can be found on it at all. */
const CRON_ENV = { PATH: '/nonexistent', HOME: '/root' };

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

/** A staging root with the files useradd --prefix needs; with dpkg's alternatives folders if asked. */
function stagingRoot(alternatives: boolean): string {
  const r = mkdtempSync(join(tmpdir(), 'postern-install-'));
  roots.push(r);
  mkdirSync(join(r, 'etc'), { mode: 0o755 });
  writeFileSync(join(r, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\n');
  writeFileSync(join(r, 'etc/group'), 'root:x:0:\nmail:x:8:\nbob:x:1000:\n');
  writeFileSync(join(r, 'etc/shadow'), 'root:*:19000:0:99999:7:::\nbob:*:19000:0:99999:7:::\n', { mode: 0o640 });
  writeFileSync(join(r, 'etc/gshadow'), 'root:*::\nmail:*::\nbob:!::\n', { mode: 0o640 });
  mkdirSync(join(r, 'var/log'), { recursive: true });
  if (alternatives) {
    mkdirSync(join(r, 'var/lib/dpkg/alternatives'), { recursive: true });
    mkdirSync(join(r, 'etc/alternatives'), { recursive: true });
  }
  return r;
}

/** Every path under root with type, owner, mode, link target or content hash. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const rel = p.slice(root.length + 1);
      if (/^etc\/(passwd|group|shadow|gshadow)-$/.test(rel) || rel === 'var/log/alternatives.log') continue;
      const st = lstatSync(p);
      const what = st.isSymbolicLink() ? `-> ${readlinkSync(p)}` : st.isDirectory() ? 'dir' : createHash('sha256').update(readFileSync(p)).digest('hex');
      out.push(`${rel} ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${what}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

function postern(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [POSTERN, ...args], { encoding: 'utf8' });
}

function modeOf(p: string): string {
  const st = statSync(p);
  return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
}

describe('postern install / uninstall into a staging root', { skip: IS_ROOT ? false : 'needs root: users, owners and modes (CI runs as root)' }, () => {
  test('with update-alternatives: every file, user, link and mode; the unit verifies; uninstall leaves nothing', () => {
    const r = stagingRoot(true);
    const before = snapshot(r);
    const inst = postern(['install', '--root', r]);
    assert.equal(inst.status, 0, inst.stderr);
    assert.match(inst.stdout, /created system user _postern/);
    assert.match(inst.stdout, /not started \(staging root/);

    // The system user and its group: a system account, no home, no login.
    const pw = readFileSync(join(r, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith('_postern:'));
    assert.ok(pw, 'no _postern in the staged /etc/passwd');
    const f = pw.split(':');
    assert.ok(Number(f[2]) > 0 && Number(f[2]) < 1000, `uid ${f[2]} is not a system uid`);
    assert.equal(f[5], '/nonexistent');
    assert.equal(f[6], '/usr/sbin/nologin');
    assert.ok(readFileSync(join(r, 'etc/group'), 'utf8').split('\n').some((l) => l.startsWith(`_postern:x:${f[3]}:`)));

    // Folders, owners, modes.
    assert.equal(modeOf(join(r, 'var/spool/postern')), `${f[2]}:${f[3]} 711`, 'the spool is the SMTP side’s');
    assert.equal(modeOf(join(r, 'var/mail')), '0:8 2775');
    assert.equal(modeOf(join(r, 'etc/mail/smtpd.conf')), '0:0 644');
    assert.equal(modeOf(join(r, 'var/lib/postern/install.json')), '0:0 600');

    // smtpd.conf: port 25 on every interface, mbox in /var/mail, relay from local only; it parses.
    const conf = readFileSync(join(r, 'etc/mail/smtpd.conf'), 'utf8');
    assert.match(conf, /^listen on any port 25$/m);
    assert.match(conf, /^mbox path "\/var\/mail"$/m);
    assert.match(conf, /^queue path "\/var\/spool\/postern"$/m);
    assert.match(conf, /^match from local for any action "relay"$/m);
    const check = postern(['smtpd', '-n', '-f', join(r, 'etc/mail/smtpd.conf')]);
    assert.equal(check.status, 0, check.stderr);

    // Wrappers: the interpreter's absolute path; they run with cron's PATH (no node on it).
    for (const name of ['postern', ...NAMES]) {
      const w = join(r, LIBEXEC, name);
      assert.equal(modeOf(w), '0:0 755');
      const text = readFileSync(w, 'utf8');
      assert.ok(text.includes(`exec '${process.execPath}' '${POSTERN}'`), text);
      const run = spawnSync(w, ['--version'], { encoding: 'utf8', env: CRON_ENV });
      assert.equal(run.status, 0, `${name}: ${run.stderr}`);
      assert.equal(run.stdout, `${name} (Postern) ${VERSION}\n`);
    }

    // The MTA names: NAME -> /etc/alternatives/NAME -> wrapper, one alternatives group "sendmail".
    for (const name of NAMES) {
      assert.equal(readlinkSync(join(r, LINK_PATHS[name] as string)), `/etc/alternatives/${name}`, name);
      assert.equal(readlinkSync(join(r, 'etc/alternatives', name)), `${LIBEXEC}/${name}`, name);
    }
    const q = spawnSync('update-alternatives', ['--root', r, '--query', 'sendmail'], { encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
    assert.match(q.stdout, /^Value: \/usr\/local\/libexec\/postern\/sendmail$/m);

    // Man pages.
    for (const page of ['man8/smtpd.8', 'man5/smtpd.conf.5', 'man8/smtpctl.8', 'man8/sendmail.8', 'man8/smtpserver.8']) {
      assert.equal(modeOf(join(r, 'usr/local/share/man', page)), '0:0 644', page);
    }

    // The unit: hardening present, and systemd-analyze verify says nothing (commands pointed into the staging root).
    const unit = readFileSync(join(r, 'etc/systemd/system/postern.service'), 'utf8');
    for (const line of ['ProtectSystem=full', 'PrivateTmp=yes', 'NoNewPrivileges=no', `ExecStart=${LIBEXEC}/smtpd -d -f /etc/mail/smtpd.conf`]) {
      assert.ok(unit.split('\n').includes(line), line);
    }
    assert.match(unit, /^CapabilityBoundingSet=.*CAP_NET_BIND_SERVICE.*CAP_SETUID/m);
    const analyze = requireTool('systemd-analyze');
    const copy = join(r, '..', `${r.split('/').pop() ?? 'x'}-unit`);
    mkdirSync(copy);
    roots.push(copy);
    writeFileSync(join(copy, 'postern.service'), unit.replaceAll(`${LIBEXEC}/`, `${r}${LIBEXEC}/`));
    const v = spawnSync(analyze, ['verify', '--man=no', join(copy, 'postern.service')], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stderr.trim(), '', `systemd-analyze verify warned:\n${v.stderr}`);

    // Installing again changes nothing that matters and still succeeds.
    const again = postern(['install', '--root', r]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /user _postern exists: kept/);

    const un = postern(['uninstall', '--root', r]);
    assert.equal(un.status, 0, un.stderr);
    assert.doesNotMatch(un.stdout, /kept/);
    assert.deepEqual(snapshot(r), before);
  });

  test("another MTA's sendmail: refused without --force (nothing changed); moved aside with it, plain links, put back by uninstall", () => {
    const r = stagingRoot(false);
    mkdirSync(join(r, 'usr/sbin'), { recursive: true });
    writeFileSync(join(r, 'usr/sbin/sendmail'), '#!/bin/sh\necho other MTA\n', { mode: 0o755 });
    const before = snapshot(r);

    const refused = postern(['install', '--root', r]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /another program owns \/usr\/sbin\/sendmail \(a file\); nothing was changed/);
    assert.deepEqual(snapshot(r), before);

    const forced = postern(['install', '--root', r, '--force']);
    assert.equal(forced.status, 0, forced.stderr);
    assert.match(forced.stdout, /--force: moved \/usr\/sbin\/sendmail aside to \/usr\/sbin\/sendmail\.postern-saved/);
    assert.equal(readFileSync(join(r, 'usr/sbin/sendmail.postern-saved'), 'utf8'), '#!/bin/sh\necho other MTA\n');
    for (const name of NAMES) assert.equal(readlinkSync(join(r, LINK_PATHS[name] as string)), `${LIBEXEC}/${name}`, name);

    const un = postern(['uninstall', '--root', r]);
    assert.equal(un.status, 0, un.stderr);
    assert.match(un.stdout, /put \/usr\/sbin\/sendmail back/);
    assert.deepEqual(snapshot(r), before);
  });

  test('an existing smtpd.conf is kept; an edited one and a spool holding mail survive uninstall (unless --purge)', () => {
    const r = stagingRoot(false);
    mkdirSync(join(r, 'etc/mail'), { recursive: true });
    writeFileSync(join(r, 'etc/mail/smtpd.conf'), 'listen on lo\n');
    const inst = postern(['install', '--root', r, '--no-user', '--mail-dir', '/srv/mail']);
    assert.equal(inst.status, 0, inst.stderr);
    assert.match(inst.stdout, /\/etc\/mail\/smtpd\.conf exists: kept/);
    assert.equal(readFileSync(join(r, 'etc/mail/smtpd.conf'), 'utf8'), 'listen on lo\n');
    assert.equal(modeOf(join(r, 'srv/mail')), '0:8 2775');
    assert.ok(!readFileSync(join(r, 'etc/passwd'), 'utf8').includes('_postern'));
    writeFileSync(join(r, 'var/spool/postern/held-message'), 'x');

    const un = postern(['uninstall', '--root', r]);
    assert.equal(un.status, 0, un.stderr);
    assert.match(un.stdout, /kept \/var\/spool\/postern \(holds files: uninstall --purge removes it\)/);
    assert.equal(readFileSync(join(r, 'etc/mail/smtpd.conf'), 'utf8'), 'listen on lo\n');
    assert.equal(readFileSync(join(r, 'var/spool/postern/held-message'), 'utf8'), 'x');
    assert.ok(!existsSync(join(r, 'srv')), '/srv/mail (empty, made by install) is gone');

    const purge = postern(['uninstall', '--root', r, '--purge']);
    assert.equal(purge.status, 0, purge.stderr);
    assert.ok(!existsSync(join(r, 'var/spool')) && !existsSync(join(r, 'var/lib')), purge.stdout);
    assert.equal(readFileSync(join(r, 'etc/mail/smtpd.conf'), 'utf8'), 'listen on lo\n');
  });
});

describe('the npm package does not shadow the system MTA', () => {
  test('package.json bin has only postern; the MTA names are subcommands', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
    assert.deepEqual(pkg.bin, { postern: 'bin/postern.js' });
    for (const f of ['man', 'LICENSE', 'CHANGELOG.md', 'SECURITY.md']) assert.ok(pkg.files.includes(f), f);
    for (const name of [...NAMES, 'send-mail', 'smtpserver', 'smtpfwdd', 'install', 'uninstall', 'db', 'postern']) {
      const args = name === 'postern' ? ['--version'] : [name, '--version'];
      const v = postern(args);
      assert.equal(v.status, 0, `${name}: ${v.stderr}`);
      assert.equal(v.stdout, `${name} (Postern) ${VERSION}\n`);
      const h = postern(name === 'postern' ? ['--help'] : [name, '--help']);
      assert.equal(h.status, 0, `${name}: ${h.stderr}`);
      assert.match(h.stdout, new RegExp(`^usage: ${['install', 'uninstall', 'db'].includes(name) ? `postern ${name}` : name}`));
    }
  });
});
