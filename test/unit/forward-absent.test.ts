/*
 * The SMTP side's memory of users without a ~/.forward
 * (expand/forward-absent.ts) over real folders: remembered while the home
 * is unchanged; creating or renaming a file into it, a chmod of it, or a
 * home replaced by another folder forgets it at once; a home changed just
 * now is not remembered; entries age out; the number of users is bounded.
 * And readForwardFile() tells a home it may not enter from its mode.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ForwardAbsent, MAX_AGE_MS } from '../../src/expand/forward-absent.js';
import { readForwardFile } from '../../src/expand/forward.js';
import type { UserInfo } from '../../src/users/system-users.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-fwdabsent-'));
after(() => rmSync(DIR, { recursive: true, force: true }));
const uid = process.getuid?.() ?? 0;

function user(name: string): UserInfo {
  const home = join(DIR, name);
  mkdirSync(home, { recursive: true, mode: 0o755 });
  return { name, uid, gid: 0, home, shell: '/bin/sh' };
}

/** A memory whose clock runs `ahead` ms after the folders' times (folders made now are not "racy" for it). */
function clocked(ahead = 10_000, maxEntries?: number) {
  let skew = ahead;
  return { absent: new ForwardAbsent(maxEntries, () => Date.now() + skew), advance: (ms: number) => void (skew += ms) };
}

function remember(a: ForwardAbsent, u: UserInfo): void {
  const stamp = a.stamp(u);
  assert.notEqual(stamp, undefined);
  a.remember(u.name, stamp as string);
}

test('remembered while the home is unchanged; a file created or renamed into it, a chmod, forget it at once', () => {
  const { absent } = clocked();
  const u = user('alice');
  assert.equal(absent.known(u), false);
  remember(absent, u);
  assert.equal(absent.known(u), true);
  writeFileSync(join(u.home, '.forward'), 'bob\n');
  assert.equal(absent.known(u), false, 'a new ~/.forward');
  remember(absent, u);
  writeFileSync(join(DIR, 'elsewhere'), 'carol\n');
  renameSync(join(DIR, 'elsewhere'), join(u.home, '.forward'));
  assert.equal(absent.known(u), false, 'a ~/.forward renamed into the home');
  remember(absent, u);
  chmodSync(u.home, 0o700);
  assert.equal(absent.known(u), false, 'a chmod of the home');
});

test('another folder at the home path, another uid or home: not the same', () => {
  const { absent } = clocked();
  const u = user('dave');
  remember(absent, u);
  assert.equal(absent.known({ ...u, uid: uid + 1 }), false);
  remember(absent, u);
  assert.equal(absent.known({ ...u, home: join(DIR, 'other') }), false);
  remember(absent, u);
  rmSync(u.home, { recursive: true });
  mkdirSync(u.home, { mode: 0o755 });
  assert.equal(absent.known(u), false);
});

test('a home changed just now is not remembered; a missing home never; entries age out; bounded', () => {
  const now = clocked(0);
  assert.equal(now.absent.stamp(user('erin')), undefined);
  const { absent, advance } = clocked(10_000, 2);
  assert.equal(absent.stamp({ ...user('frank'), home: join(DIR, 'nowhere') }), undefined);
  const [a, b, c] = ['g1', 'g2', 'g3'].map(user) as [UserInfo, UserInfo, UserInfo];
  remember(absent, a);
  advance(MAX_AGE_MS + 1);
  assert.equal(absent.known(a), false);
  remember(absent, a);
  remember(absent, b);
  remember(absent, c);
  assert.equal(absent.known(a), false, 'the oldest went first');
  assert.equal(absent.known(b), true);
  assert.equal(absent.known(c), true);
});

test('readForwardFile: a home its mode closes to this process is denied without opening it', () => {
  const u = { ...user('henry'), uid: uid + 1 };
  chmodSync(u.home, 0o700);
  if (uid !== 0) {
    const r = readForwardFile(u);
    assert.equal(r.kind, 'unsafe');
    assert.equal(r.kind === 'unsafe' && r.denied, true);
    return;
  }
  // As root every home is searchable: look as nobody (effective ids only; the real ones stay root's, so they come back).
  chmodSync(DIR, 0o711);
  process.setegid?.(65534);
  process.seteuid?.(65534);
  try {
    const r = readForwardFile(u);
    assert.equal(r.kind, 'unsafe');
    assert.equal(r.kind === 'unsafe' && r.denied, true);
  } finally {
    process.seteuid?.(0);
    process.setegid?.(0);
    chmodSync(DIR, 0o700);
  }
});
