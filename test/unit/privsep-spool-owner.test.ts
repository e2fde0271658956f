/*
 * daemon/privsep/spool-owner.ts: a spool in folders that do not exist yet
 * (npm start's ./var/spool on a fresh clone) is made so that the
 * unprivileged user can reach it — the folders above it 0755, the spool its
 * own — and a folder above that keeps it out is refused with the fix named.
 * Run as root (CI is); the user is `nobody`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareSpool } from '../../src/daemon/privsep/spool-owner.js';

const NOBODY = { name: 'nobody', uid: 65534, gid: 65534 };

test('a new spool under new folders: the folders let the user through, the spool is the user\'s', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, () => {
  const base = mkdtempSync(join(tmpdir(), 'postern-spool-owner-'));
  try {
    chmodSync(base, 0o711);
    const spool = join(base, 'var', 'spool');
    prepareSpool(spool, NOBODY);
    assert.equal(statSync(join(base, 'var')).mode & 0o777, 0o755);
    const st = statSync(spool);
    assert.equal(st.uid, NOBODY.uid);
    assert.equal(st.mode & 0o777, 0o711);

    chmodSync(join(base, 'var'), 0o700);
    assert.throws(() => prepareSpool(spool, NOBODY), /the folder .*\/var does not let nobody through \(chmod o\+x/);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
