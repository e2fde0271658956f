/*
 * The parent's ~/.forward cache (expand/forward-cache.ts) over real files:
 * an unchanged file is read once; a write (even of the same size), a chmod
 * or a replacement is read again at once; a missing file is "missing"
 * without a read; a reading ages out; a file changed just now is not
 * remembered; the number of users is bounded.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ForwardCache } from '../../src/expand/forward-cache.js';
import { readForwardFile } from '../../src/expand/forward.js';
import type { UserInfo } from '../../src/users/system-users.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-fwdcache-'));
after(() => rmSync(DIR, { recursive: true, force: true }));
const uid = process.getuid?.() ?? 0;

function user(name: string, forward?: string): UserInfo {
  const home = join(DIR, name);
  mkdirSync(home, { recursive: true, mode: 0o755 });
  if (forward !== undefined) writeFileSync(join(home, '.forward'), forward, { mode: 0o644 });
  return { name, uid, gid: 0, home, shell: '/bin/sh' };
}

/** A cache whose clock runs `ahead` ms after the files' times (files written now are not "racy" for it), counting reads. */
function counting(ahead = 10_000, opts: { maxEntries?: number } = {}) {
  let reads = 0;
  let skew = ahead;
  const cache = new ForwardCache({ ...opts, now: () => Date.now() + skew, read: (u) => (reads++, readForwardFile(u)) });
  return { cache, reads: () => reads, advance: (ms: number) => void (skew += ms) };
}

test('an unchanged file is read once; any change is read again at once', () => {
  const c = counting();
  const u = user('alice', 'alice@a.example\n');
  const first = c.cache.read(u);
  assert.equal(first.kind, 'ok');
  assert.deepEqual(c.cache.read(u), first);
  assert.equal(c.reads(), 1);
  writeFileSync(join(u.home, '.forward'), 'bobby@a.example\n'); // same size
  const second = c.cache.read(u);
  assert.equal(c.reads(), 2);
  assert.notDeepEqual(second, first);
  chmodSync(join(u.home, '.forward'), 0o666);
  assert.equal(c.cache.read(u).kind, 'unsafe');
  assert.equal(c.reads(), 3);
  writeFileSync(join(u.home, 'new'), 'carol@a.example\n', { mode: 0o644 });
  renameSync(join(u.home, 'new'), join(u.home, '.forward'));
  const third = c.cache.read(u);
  assert.ok(third.kind === 'ok' && JSON.stringify(third.nodes).includes('carol'));
  assert.equal(c.reads(), 4);
  rmSync(join(u.home, '.forward'));
  assert.deepEqual(c.cache.read(u), { kind: 'missing' });
  assert.equal(c.reads(), 4, 'a missing file needs no read');
});

test('a reading ages out; a file changed just now is not remembered', () => {
  const c = counting();
  const u = user('dave', 'dave@a.example\n');
  c.cache.read(u);
  c.advance(6_000);
  c.cache.read(u);
  assert.equal(c.reads(), 2);
  const racy = counting(0);
  racy.cache.read(u);
  racy.cache.read(u);
  assert.equal(racy.reads(), 2);
});

test('a missing home is missing; the number of users is bounded', () => {
  const c = counting(10_000, { maxEntries: 2 });
  assert.deepEqual(c.cache.read({ name: 'ghost', uid, gid: 0, home: join(DIR, 'nowhere'), shell: '/bin/sh' }), { kind: 'missing' });
  const [a, b, d] = [user('u1', 'x@a.example\n'), user('u2', 'y@a.example\n'), user('u3', 'z@a.example\n')];
  for (const u of [a, b, d]) c.cache.read(u);
  c.cache.read(d);
  assert.equal(c.reads(), 3);
  c.cache.read(a); // the oldest went
  assert.equal(c.reads(), 4);
});
