/*
 * test/helpers/users.ts — real system users for the privilege-drop tests
 * (root only): created with useradd under a test folder, removed after.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { requireTool } from './tools.js';

export interface RealUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** Run a command that must succeed; its trimmed standard output. */
export function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Create users `${prefix}${random}a`, `…b` … with homes under base/home. */
export function createUsers(base: string, prefix: string, count = 2): RealUser[] {
  mkdirSync(join(base, 'home'), { recursive: true, mode: 0o755 });
  const tag = Math.random().toString(36).slice(2, 7);
  const users: RealUser[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}${tag}${String.fromCharCode(97 + i)}`;
    const home = join(base, 'home', name);
    sh('useradd', ['-m', '-d', home, '-s', '/bin/sh', '-U', name]);
    users.push({ name, uid: Number(sh('id', ['-u', name])), gid: Number(sh('id', ['-g', name])), home });
  }
  return users;
}

export function removeUsers(users: readonly RealUser[]): void {
  for (const u of users) spawnSync('userdel', ['-r', '-f', u.name]);
}

/**
 * Real users for one suite (call inside describe()): `count` users created before it, with homes under a 0755
 * temporary folder (`base`), and removed with it after.
 */
export function usersForSuite(prefix: string, count = 2): { readonly users: RealUser[]; base: string } {
  const suite = { users: [] as RealUser[], base: '' };
  before(() => {
    requireTool('useradd');
    suite.base = mkdtempSync(join(tmpdir(), `postern-${prefix}-`));
    chmodSync(suite.base, 0o755);
    suite.users.push(...createUsers(suite.base, prefix, count));
  });
  after(() => {
    removeUsers(suite.users);
    if (suite.base !== '') rmSync(suite.base, { recursive: true, force: true });
  });
  return suite;
}
