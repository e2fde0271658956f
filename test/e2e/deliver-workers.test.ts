/*
 * test/e2e/deliver-workers.test.ts — the running smtpd, as root, delivers
 * to many users without a process start per message: ten messages, each to
 * five real users (useradd), fifty maildir deliveries in all. Every maildir
 * gets its ten messages, owned by its user; the daemon logs no more
 * "delivery worker started" lines than its pool has workers (2), and no
 * more node processes than that are ever seen among its children
 * (/proc/<pid>/task/…/children, sampled); killed with SIGKILL, the daemon
 * leaves no worker behind. Skipped when not root.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireTool } from '../helpers/tools.js';
import { createUsers, removeUsers, type RealUser } from '../helpers/users.js';
import { HEAD, IS_ROOT, message, sendOk, startSite, testDir, waitFor } from './deliver-helpers.js';
import { nodeChildren } from '../helpers/node-children.js';

const CONFIG = `${HEAD}
action "md" maildir
match from any for domain "maildir.example" action "md"
`;

describe('many local users through the daemon, no process start per message', { skip: IS_ROOT ? false : 'needs root: run the tests as root (CI does) to create users' }, () => {
  const users: RealUser[] = [];
  let base = '';

  before(() => {
    requireTool('useradd');
    base = mkdtempSync(join(tmpdir(), 'postern-workers-d-'));
    chmodSync(base, 0o755);
    users.push(...createUsers(base, 'pstx', 5));
  });

  after(() => {
    removeUsers(users);
    if (base !== '') rmSync(base, { recursive: true, force: true });
  });

  it('ten messages to five users: fifty deliveries by at most two workers', async (t) => {
    const dir = testDir(t);
    const d = await startSite(dir, CONFIG);
    const pid = d.proc.pid as number;
    const seen = new Set<number>();
    const sampler = setInterval(() => nodeChildren(pid).forEach((p) => seen.add(p)), 10);
    try {
      for (let i = 0; i < 10; i++) {
        await sendOk(d.port, { from: 'carol@remote.example', to: users.map((u) => `${u.name}@maildir.example`), data: message({ Subject: `m${i}` }, 'hello\n') });
      }
      for (const u of users) {
        const md = join(u.home, 'Maildir', 'new');
        await waitFor(`${md}: 10 messages`, () => (existsSync(md) && readdirSync(md).length === 10 ? true : undefined), { daemon: d, timeoutMs: 60_000 });
        for (const f of readdirSync(md)) assert.equal(statSync(join(md, f)).uid, u.uid, f);
      }
    } finally {
      clearInterval(sampler);
    }
    const started = d.logs.filter((l) => l.includes('delivery worker started'));
    assert.ok(started.length >= 1 && started.length <= 2, started.join('\n'));
    assert.ok(seen.size >= 1 && seen.size <= 2, `node children of smtpd: ${[...seen].join(' ')}`);
    // kill -9 of the daemon closes the workers' input: they exit.
    d.proc.kill('SIGKILL');
    await waitFor('the workers to exit', () => ([...seen].every((p) => !existsSync(`/proc/${p}/cmdline`) || readFileSync(`/proc/${p}/cmdline`, 'utf8') === '') ? true : undefined), { timeoutMs: 10_000 });
  });
});
