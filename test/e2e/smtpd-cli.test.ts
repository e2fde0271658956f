/*
 * The `smtpd` command line: -n on every seed configuration, diagnostics
 * with FILE:LINE:COL, bad flags, missing files, -h.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, SMTPD, tempDir } from '../helpers/daemon.js';
import { run } from '../helpers/tools.js';

const smtpd = (...args: string[]) => run(process.execPath, [SMTPD, ...args]);

for (const n of [1, 2, 3, 4]) {
  test(`smtpd -n accepts seed 002 example #${n} unchanged`, async () => {
    const r = await smtpd('-n', '-f', join(REPO, `test/fixtures/seed002/example${n}.conf`));
    assert.equal(r.stdout, 'configuration OK\n');
    assert.equal(r.status, 0, r.stderr);
  });
}

test('smtpd -n on the built-in default configuration file', async () => {
  const r = await smtpd('-n', '-f', join(REPO, 'etc/smtpd.conf.default'));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'configuration OK\n');
});

test('smtpd -n reports every error as FILE:LINE:COL and exits 1', async () => {
  const dir = tempDir();
  const f = join(dir, 'bad.conf');
  writeFileSync(f, 'lisen on 127.0.0.1\nlisten on 127.0.0.1 port 99999\nmatch from any for any action "nowhere"\n');
  const r = await smtpd('-n', '-f', f);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  assert.ok(lines.length >= 3, r.stderr);
  for (const l of lines) assert.match(l, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `));
  assert.match(r.stderr, /:1:1: .*"lisen".*did you mean "listen"/);
  assert.match(r.stderr, /:2:\d+: .*port/);
  assert.match(r.stderr, /:3:\d+: .*nowhere/);
  rmSync(dir, { recursive: true });
});

test('an open relay configuration passes with a warning that says so', async () => {
  const dir = tempDir();
  const f = join(dir, 'open.conf');
  writeFileSync(f, 'listen on 127.0.0.1\naccept from all for all relay\n');
  const r = await smtpd('-n', '-f', f);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'configuration OK\n');
  assert.match(r.stderr, /open relay/);
  rmSync(dir, { recursive: true });
});

test('bad flags, missing files: one line, exit status 1', async () => {
  for (const args of [['-x'], ['-f'], ['-f', '/nonexistent/smtpd.conf', '-n'], ['-T', 'bogus', '-n'], ['extra']]) {
    const r = await smtpd(...args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^smtpd: /);
  }
  const r = await smtpd('-x');
  assert.match(r.stderr, /^smtpd: unknown option -- x \(usage: smtpd /);
});

test('smtpd -h prints the usage and exits 0', async () => {
  const r = await smtpd('-h');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^usage: smtpd \[-dFhnv\]/);
});

test('-D defines a macro used by the configuration', async () => {
  const dir = tempDir();
  const f = join(dir, 'm.conf');
  writeFileSync(f, 'listen on $addr port 2525\n');
  assert.equal((await smtpd('-n', '-f', f)).status, 1);
  const r = await smtpd('-n', '-D', 'addr=127.0.0.1', '-f', f);
  assert.equal(r.status, 0, r.stderr);
  rmSync(dir, { recursive: true });
});

test('smtpd -n warns about auth-over-plaintext, and accepts the log statements', async () => {
  const dir = tempDir();
  const f = join(dir, 'relay.conf');
  writeFileSync(
    f,
    `table secrets file:${dir}/secrets
log syslog facility mail tag smtpd
log format opensmtpd
action "out" relay host smtp://label@smarthost.example auth <secrets> auth-over-plaintext
match from local for any action "out"
`,
  );
  writeFileSync(join(dir, 'secrets'), 'label user:password\n');
  const r = await smtpd('-n', '-f', f);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'configuration OK\n');
  assert.match(r.stderr, /relay\.conf:4:\d+: warning: "auth-over-plaintext": the relay credentials are sent without TLS/);
  rmSync(dir, { recursive: true });
});
