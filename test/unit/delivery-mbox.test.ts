/*
 * test/unit/delivery-mbox.test.ts — mbox delivery through the LocalAgent,
 * read back by Python's mailbox module; locking, concurrency, failed
 * writes, symbolic links and hostile addresses.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync, existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IS_ROOT, MODES, FakeUsers, actionOf, agent, config, message, readMboxWithPython, statuses, task, tmpDir } from './delivery-helpers.js';
import { run } from '../helpers/tools.js';

function setup(t: { after(fn: () => void): void }, privsep: boolean, extra = '') {
  const dir = tmpDir(t);
  const mboxDir = join(dir, 'mail');
  const c = config(`mbox path "${mboxDir}"\naction "local" mbox\n${extra}match from any for local action "local"\n`);
  const users = new FakeUsers({ bob: { home: join(dir, 'bob') }, carol: { home: join(dir, 'carol') } });
  return { dir, mboxDir, c, action: actionOf(c, 'local'), users, a: agent({ config: c, users, privsep }), privsep };
}

const BODY = 'Hello Bob,\nFrom the start of a line.\n>From already quoted.\n\nbye\n';

for (const privsep of MODES) describe(`mbox delivery (${privsep ? 'through the deliver-as helper' : 'in the daemon'})`, () => {
  it('writes messages a real mail reader parses, with mboxrd quoting', async (t) => {
    const { mboxDir, action, a } = setup(t, privsep);
    for (const [i, sender] of ['alice@example.net', ''].entries()) {
      const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], sender, message: message({ Subject: `test ${i}`, From: 'Alice <alice@example.net>' }, BODY), chunk: 7 }));
      assert.deepEqual(statuses(rs), ['ok 2.0.0']);
      assert.match(rs[0]?.detail ?? '', /delivered to mbox .*\/mail\/bob/);
    }
    const path = join(mboxDir, 'bob');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const raw = readFileSync(path, 'utf8');
    assert.doesNotMatch(raw, /\r/);
    assert.match(raw, /^From alice@example\.net (Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\n/);
    assert.match(raw, /\nFrom MAILER-DAEMON /);
    assert.match(raw, /\n>From the start of a line\.\n>>From already quoted\.\n/);
    assert.ok(raw.endsWith('bye\n\n'));

    const msgs = await readMboxWithPython(path);
    assert.equal(msgs.length, 2);
    const [m0, m1] = msgs;
    assert.ok(m0 && m1);
    assert.match(m0.from, /^alice@example\.net /);
    assert.match(m1.from, /^MAILER-DAEMON /);
    assert.deepEqual(m0.headers, [
      ['Return-Path', '<alice@example.net>'],
      ['Delivered-To', 'bob@example.org'],
      ['Subject', 'test 0'],
      ['From', 'Alice <alice@example.net>'],
    ]);
    assert.deepEqual(m1.headers.map(([k]) => k), ['Delivered-To', 'Subject', 'From']);
    // The quoting is in the file; Python's reader (mboxo) does not undo it, so each body shows exactly one more ">".
    assert.equal(m0.body, 'Hello Bob,\n>From the start of a line.\n>>From already quoted.\n\nbye\n');
  });

  it('never interleaves concurrent deliveries to one mailbox', async (t) => {
    const { mboxDir, action, users, c } = setup(t, privsep);
    const n = 12;
    const big = 'x'.repeat(70) + '\n';
    const jobs = Array.from({ length: n }, (_, i) =>
      agent({ config: c, users, privsep }).deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: `msg ${i}` }, `${`line ${i} `.repeat(3)}\n${big.repeat(300)}end ${i}\n`), chunk: 1000 })),
    );
    const rs = await Promise.all(jobs);
    assert.deepEqual(rs.flatMap(statuses), Array(n).fill('ok 2.0.0'));
    const msgs = await readMboxWithPython(join(mboxDir, 'bob'));
    assert.equal(msgs.length, n);
    const seen = new Set<string>();
    for (const m of msgs) {
      const subject = m.headers.find(([k]) => k === 'Subject')?.[1] ?? '';
      const i = subject.replace('msg ', '');
      seen.add(i);
      assert.ok(m.body.startsWith(`line ${i} line ${i}`), subject);
      assert.ok(m.body.endsWith(`end ${i}\n`), subject);
      assert.equal(m.body.split('\n').length, 303, subject);
    }
    assert.equal(seen.size, n);
    assert.equal(existsSync(join(mboxDir, 'bob.lock')), false);
  });

  it('waits for a lock held by another program, and breaks a stale one', async (t) => {
    const { mboxDir, action, a } = setup(t, privsep);
    mkdirSync(mboxDir, { recursive: true, mode: 0o1777 });
    const lock = join(mboxDir, 'bob.lock');
    writeFileSync(lock, `${process.pid}\n`); // a live holder
    let released = false;
    setTimeout(() => {
      released = true;
      unlinkSync(lock);
    }, 400);
    const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'after lock' }, 'x\n') }));
    assert.deepEqual(statuses(rs), ['ok 2.0.0']);
    assert.ok(released, 'delivered while the lock was held');

    writeFileSync(lock, '999999\n');
    const old = new Date(Date.now() - 10 * 60_000);
    utimesSync(lock, old, old);
    const rs2 = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'stale' }, 'x\n') }));
    assert.deepEqual(statuses(rs2), ['ok 2.0.0']);
    assert.equal((await readMboxWithPython(join(mboxDir, 'bob'))).length, 2);

    // A lock whose process is gone (and not brand new) is broken at once, not after five minutes.
    writeFileSync(lock, '999999\n');
    const recent = new Date(Date.now() - 5000);
    utimesSync(lock, recent, recent);
    const started = Date.now();
    const rs3 = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'dead holder' }, 'x\n') }));
    assert.deepEqual(statuses(rs3), ['ok 2.0.0']);
    assert.ok(Date.now() - started < 10_000);
  });

  it('defers while the lock stays held', async (t) => {
    const { mboxDir, action, c, users } = setup(t, privsep);
    mkdirSync(mboxDir, { recursive: true, mode: 0o1777 });
    writeFileSync(join(mboxDir, 'bob.lock'), '1\n');
    const a = agent({ config: c, users, lockTimeoutMs: 300, privsep });
    const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'x' }, 'x\n') }));
    assert.deepEqual(statuses(rs), ['tempfail 4.2.0']);
    assert.match(rs[0]?.detail ?? '', /locked/);
  });

  it('refuses a mailbox that is a symbolic link or has other hard links', async (t) => {
    const { dir, mboxDir, action, a } = setup(t, privsep);
    mkdirSync(mboxDir, { recursive: true, mode: 0o1777 });
    const target = join(dir, 'target');
    writeFileSync(target, 'precious\n');
    symlinkSync(target, join(mboxDir, 'bob'));
    const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'x' }, 'x\n') }));
    assert.deepEqual(statuses(rs), ['permfail 5.2.0']);
    assert.match(rs[0]?.detail ?? '', /symbolic link/);
    assert.equal(readFileSync(target, 'utf8'), 'precious\n');

    linkSync(target, join(mboxDir, 'carol'));
    const rs2 = await a.deliver(task({ action, recipients: ['carol@example.org'], message: message({ Subject: 'x' }, 'x\n') }));
    assert.deepEqual(statuses(rs2), ['permfail 5.2.0']);
    assert.match(rs2[0]?.detail ?? '', /hard links/);
    assert.equal(readFileSync(target, 'utf8'), 'precious\n');
  });

  it('refuses addresses that would leave the mail folder, and unknown users', async (t) => {
    const { dir, action, a } = setup(t, privsep);
    const rs = await a.deliver(
      task({
        action,
        recipients: ['../../etc/passwd@example.org', { address: 'x@example.org', dest: { kind: 'user', user: '../bob' } }, '.bob@example.org', { address: 'y@example.org', dest: { kind: 'user', user: 'a/b' } }, 'nobody-here@example.org'],
        message: message({ Subject: 'x' }, 'x\n'),
      }),
    );
    assert.deepEqual(statuses(rs), ['permfail 5.1.3', 'permfail 5.1.3', 'permfail 5.1.3', 'permfail 5.1.3', 'permfail 5.1.1']);
    assert.equal(existsSync(join(dir, 'bob')), false);
  });

  it('detects a delivery loop', async (t) => {
    const { action, a } = setup(t, privsep);
    const rs = await a.deliver(task({ action, recipients: ['bob@example.org', 'carol@example.org'], message: message({ 'Delivered-To': 'bob@example.org', Subject: 'loop' }, 'x\n') }));
    assert.deepEqual(statuses(rs), ['permfail 5.4.6', 'ok 2.0.0']);
  });

  it('appends to an aliases(5) file destination', async (t) => {
    const { dir, action, a } = setup(t, privsep);
    const archive = join(dir, 'archive.mbox');
    const rs = await a.deliver(task({ action, recipients: [{ address: 'list@example.org', dest: { kind: 'file', path: archive, user: 'bob' } }], message: message({ Subject: 'archived' }, 'From me\n') }));
    assert.deepEqual(statuses(rs), ['ok 2.0.0']);
    const msgs = await readMboxWithPython(archive);
    assert.equal(msgs.length, 1);
    assert.equal(msgs[0]?.body, '>From me\n');
  });

  it('starts a new message on its own line after a damaged mailbox end', async (t) => {
    const { mboxDir, action, a } = setup(t, privsep);
    mkdirSync(mboxDir, { recursive: true, mode: 0o1777 });
    writeFileSync(join(mboxDir, 'bob'), 'From x@y Mon Nov  4 08:05:09 2024\nSubject: old\n\ntruncated', { mode: 0o600 });
    const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'new' }, 'x\n') }));
    assert.deepEqual(statuses(rs), ['ok 2.0.0']);
    const msgs = await readMboxWithPython(join(mboxDir, 'bob'));
    assert.deepEqual(msgs.map((m) => m.headers.find(([k]) => k === 'Subject')?.[1]), ['old', 'new']);
  });
});

describe('mbox failed writes', () => {
  const mboxModule = fileURLToPath(new URL('../../src/delivery/local/mbox.js', import.meta.url));

  it('truncates the mailbox back when a write fails (file size limit, EFBIG)', async (t) => {
    const dir = tmpDir(t);
    const path = join(dir, 'bob');
    const before = `From a@b Mon Nov  4 08:05:09 2024\nSubject: keep me\n\nold body\n\n`;
    writeFileSync(path, before, { mode: 0o600 });
    const script = join(dir, 'deliver.mjs');
    writeFileSync(
      script,
      `import { deliverMbox } from ${JSON.stringify(mboxModule)};
import { Readable } from 'node:stream';
const body = Buffer.from('Subject: big\\r\\n\\r\\n' + 'y'.repeat(100) + '\\r\\n'.repeat(1) + ('z'.repeat(99) + '\\r\\n').repeat(2000));
const o = await deliverMbox({ kind: 'mbox', path: ${JSON.stringify(path)}, fromLine: 'From a@b Mon Nov  4 08:05:09 2024', prefix: '', lock: 'required' }, Readable.from([body]));
console.log(JSON.stringify(o));
`,
    );
    // Node ignores SIGXFSZ, so the write past the limit fails with EFBIG.
    const r = await run('/bin/sh', ['-c', `ulimit -f 40 && exec "${process.execPath}" "${script}"`]);
    assert.equal(r.status, 0, r.stderr);
    const o = JSON.parse(r.stdout.trim()) as { status: string; enhanced: string; detail: string };
    assert.equal(`${o.status} ${o.enhanced}`, 'tempfail 4.2.2');
    assert.match(o.detail, /EFBIG/);
    assert.equal(readFileSync(path, 'utf8'), before);
    assert.equal(existsSync(`${path}.lock`), false);
  });

  it('truncates the mailbox back when the disk is full (tmpfs, ENOSPC)', async (t) => {
    if (!IS_ROOT) {
      t.skip('mounting a tiny tmpfs needs root (the EFBIG test above covers the same path without it)');
      return;
    }
    const dir = tmpDir(t);
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=1777', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      t.skip(`cannot mount a tmpfs here: ${m.stderr.trim()}`);
      return;
    }
    try {
      await fillUp(t, dir, mnt);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});

async function fillUp(t: { after(fn: () => void): void }, dir: string, mnt: string): Promise<void> {
  {
    const c = config(`mbox path "${mnt}"\naction "local" mbox\nmatch from any for local action "local"\n`);
    const a = agent({ config: c, users: new FakeUsers({ bob: { home: dir } }) });
    const action = actionOf(c, 'local');
    const ok = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'small' }, 'fits\n') }));
    assert.deepEqual(statuses(ok), ['ok 2.0.0']);
    const before = readFileSync(join(mnt, 'bob'));
    const rs = await a.deliver(task({ action, recipients: ['bob@example.org'], message: message({ Subject: 'huge' }, `${'q'.repeat(1000)}\n`.repeat(200)) }));
    assert.deepEqual(statuses(rs), ['tempfail 4.3.1']);
    assert.deepEqual(readFileSync(join(mnt, 'bob')), before);
    assert.equal((await readMboxWithPython(join(mnt, 'bob'))).length, 1);
  }
}
