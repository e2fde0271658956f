/*
 * Gaps a migrating administrator meets (issue 17): a bare <postmaster>
 * (RFC 5321 §4.5.1) accepted from a remote client and delivered to the
 * postmaster alias; a sender domain with an underscore (seed 002's
 * user@our_domain.org) accepted at MAIL, as Postfix does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SMTPD, startDaemon, tempDir } from '../helpers/daemon.js';
import { requireTool, run } from '../helpers/tools.js';

/** Mail for test.example from anyone; this host's own names only from this host (seed 002's shape). */
const CONFIG = `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
table aliases file:$DIR/aliases
action "local" mbox alias <aliases>
match from any for domain "test.example" action "local"
match from local for local action "local"
`;

test('RCPT TO:<postmaster> from a remote client: 250, and dry run names the rule', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'aliases'), 'postmaster: root\n');
  const conf = join(dir, 'smtpd.conf');
  writeFileSync(conf, CONFIG.replaceAll('$DIR', dir));
  const r = await run(process.execPath, [SMTPD, '-b', '[192.0.2.1]', '-f', conf], { input: 'EHLO client.example\r\nMAIL FROM:<someone@remote.example>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<nobody@elsewhere.example>\r\nQUIT\r\n' });
  assert.equal(r.status, 0, r.stderr);
  const replies = r.stdout.split('\r\n').filter((l) => /^\d{3} /.test(l));
  assert.match(replies[3] ?? '', /^250 /, r.stdout);
  assert.match(replies[4] ?? '', /^550 /, r.stdout);
});

test('bare <postmaster> over SMTP is delivered to the postmaster alias; an underscore sender domain is accepted', async () => {
  const d = await startDaemon(CONFIG, { deliver: true, dir: (() => {
    const dir = tempDir();
    writeFileSync(join(dir, 'aliases'), 'postmaster: root\n');
    return dir;
  })() });
  try {
    const swaks = requireTool('swaks');
    const r = await run(swaks, ['--server', '127.0.0.1', '--port', String(d.port), '--from', 'user@our_domain.org', '--to', 'postmaster', '--header', 'Subject: to the postmaster']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /<- {2}250 2\.1\.0/);
    await d.waitForLog(/mda delivery ok .*to=<postmaster@mx\.test\.example> rcpt=<postmaster> .*delivered to mbox \S+\/mail\/root/);
    const mbox = join(d.dir, 'mail/root');
    assert.ok(existsSync(mbox));
    assert.match(readFileSync(mbox, 'utf8'), /Subject: to the postmaster/);
  } finally {
    await d.stop();
    d.cleanup();
  }
});
