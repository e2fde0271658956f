/*
 * test/e2e/deliver-maildir.test.ts — maildir delivery through the running
 * smtpd: the path's format specifiers (`%{user.username}`, `~`,
 * `%{rcpt.domain}`), one file per message in new/ that Python's
 * mailbox.Maildir reads, `+extension` into an existing Maildir++ folder
 * (never one the sender invents), `junk`, and an address that tries to
 * climb out of its mail root.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DaemonHandle } from '../helpers/daemon.js';
import { python, run } from '../helpers/tools.js';
import { HEAD, listDir, message, send, sendOk, startSite, testDir, usersTable, waitFor, writeFiles } from './deliver-helpers.js';

interface MdMessage {
  readonly headers: [string, string][];
  readonly body: string;
}
interface Maildir {
  readonly inbox: MdMessage[];
  readonly folders: Record<string, MdMessage[]>;
}

const READ_MAILDIR = String.raw`
import json, mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
def msgs(box):
    out = [{'headers': [[k, str(v)] for k, v in m.items()], 'body': m.get_payload()} for m in box]
    return sorted(out, key=lambda m: dict(m['headers']).get('Subject', ''))
print(json.dumps({'inbox': msgs(md), 'folders': {f: msgs(md.get_folder(f)) for f in md.list_folders()}}))
`;

/** A maildir as Python's mailbox.Maildir reads it (messages sorted by Subject). */
async function readMaildir(path: string): Promise<Maildir> {
  const r = await run(python(), ['-c', READ_MAILDIR, path]);
  assert.equal(r.status, 0, `mailbox.Maildir: ${r.stderr}`);
  return JSON.parse(r.stdout) as Maildir;
}

function header(m: MdMessage | undefined, name: string): string | undefined {
  return m?.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
}

/** Wait until `count` files are in the new/ folders of these maildirs together. */
async function waitForFiles(dirs: readonly string[], count: number, d: DaemonHandle): Promise<void> {
  await waitFor(`${count} file(s) in ${dirs.join(', ')}`, () => (dirs.reduce((n, x) => n + listDir(join(x, 'new')).length, 0) >= count ? true : undefined), { daemon: d });
}

const CONFIG = `${HEAD}
table users file:$DIR/users
table virtual file:$DIR/virtual
action "md" maildir "$DIR/Maildir/%{user.username}" userbase <users>
action "home" maildir "~/Mail" junk userbase <users>
action "vmd" maildir "$DIR/vmail/%{rcpt.domain}/%{rcpt.user}" virtual <virtual> userbase <users>
match from any for domain "test.example" action "md"
match from any for domain "home.example" action "home"
match from any for domain "vmail.example" action "vmd"
`;

describe('maildir delivery through the daemon', () => {
  it('delivers into the expanded path, new/ only, readable by a mail reader', async (t) => {
    const dir = testDir(t);
    writeFiles(dir, { users: usersTable(dir, ['alice', 'bob']), virtual: '@vmail.example alice\n' });
    const d = await startSite(dir, CONFIG);
    await sendOk(d.port, { from: 'carol@remote.example', to: ['alice@test.example', 'bob@test.example'], data: message({ Subject: 'one', From: 'carol@remote.example' }, 'From me\n.\nfirst\n') });
    await sendOk(d.port, { from: 'carol@remote.example', to: ['alice@test.example'], data: message({ Subject: 'two' }, 'second\n') });
    const alice = join(dir, 'Maildir', 'alice');
    const bob = join(dir, 'Maildir', 'bob');
    await waitForFiles([alice], 2, d);
    await waitForFiles([bob], 1, d);

    for (const md of [alice, bob]) {
      assert.deepEqual(listDir(md), ['cur', 'new', 'tmp']);
      assert.deepEqual(listDir(join(md, 'tmp')), [], 'nothing left in tmp/');
      assert.deepEqual(listDir(join(md, 'cur')), []);
      for (const sub of ['', 'new', 'tmp', 'cur']) assert.equal(statSync(join(md, sub)).mode & 0o777, 0o700, `${md}/${sub}`);
      // Unique names: <sec>.M<usec>P<pid>Q<n>.<host>
      for (const f of listDir(join(md, 'new'))) assert.match(f, /^\d+\.M\d+P\d+Q\d+\.\S+$/);
    }
    const a = await readMaildir(alice);
    assert.deepEqual(a.folders, {});
    assert.deepEqual(a.inbox.map((m) => header(m, 'Subject')), ['one', 'two']);
    const [one] = a.inbox;
    assert.deepEqual(one?.headers.slice(0, 2), [['Return-Path', '<carol@remote.example>'], ['Delivered-To', 'alice@test.example']]);
    // Two recipients: no "for <…>" clause (RFC 5321 §4.4 allows one address only).
    assert.match(header(one, 'Received') ?? '', /^from client\.test \(localhost \[127\.0\.0\.1\]\)\s+by mx\.test\.example \(Postern\) with ESMTP id [0-9a-f]{8};/);
    // No From_ quoting in a maildir; dots unstuffed; LF line ends.
    assert.equal(one?.body, 'From me\n.\nfirst\n');
    const raw = readFileSync(join(alice, 'new', listDir(join(alice, 'new'))[0] as string), 'latin1');
    assert.ok(!raw.includes('\r'));
    const b = await readMaildir(bob);
    assert.equal(header(b.inbox[0], 'Delivered-To'), 'bob@test.example');
  });

  it('+extension goes to an existing sub-folder, else to the inbox; `~` is the home; junk to .Junk', async (t) => {
    const dir = testDir(t);
    writeFiles(dir, { users: usersTable(dir, ['alice', 'bob']), virtual: '@vmail.example alice\n' });
    // alice made a "lists" folder (Maildir++: .lists with cur/new/tmp); nobody made ".nosuch".
    const md = join(dir, 'Maildir', 'alice');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(md, '.lists', sub), { recursive: true, mode: 0o700 });
    const d = await startSite(dir, CONFIG);
    await sendOk(d.port, { from: 'list-owner@remote.example', to: ['alice+lists@test.example'], data: message({ Subject: 'to lists' }, 'x\n') });
    await sendOk(d.port, { from: 'carol@remote.example', to: ['alice+nosuch@test.example'], data: message({ Subject: 'to nosuch' }, 'y\n') });
    await waitForFiles([md, join(md, '.lists')], 2, d);
    const a = await readMaildir(md);
    assert.deepEqual(a.inbox.map((m) => header(m, 'Subject')), ['to nosuch']);
    assert.deepEqual(Object.keys(a.folders), ['lists']);
    assert.deepEqual(a.folders.lists?.map((m) => header(m, 'Subject')), ['to lists']);
    assert.equal(header(a.folders.lists?.[0], 'Delivered-To'), 'alice+lists@test.example');
    assert.equal(existsSync(join(md, '.nosuch')), false, 'a sender cannot create folders');

    // `~/Mail` with junk: bob's home; X-Spam: yes goes to .Junk (created), the rest to the inbox.
    await sendOk(d.port, { from: 'spammer@remote.example', to: ['bob@home.example'], data: message({ Subject: 'buy now', 'X-Spam': 'yes' }, 'spam\n') });
    await sendOk(d.port, { from: 'carol@remote.example', to: ['bob@home.example'], data: message({ Subject: 'ham' }, 'ham\n') });
    const home = join(dir, 'home', 'bob', 'Mail');
    await waitForFiles([home, join(home, '.Junk')], 2, d);
    const b = await readMaildir(home);
    assert.deepEqual(b.inbox.map((m) => header(m, 'Subject')), ['ham']);
    assert.deepEqual(b.folders.Junk?.map((m) => header(m, 'Subject')), ['buy now']);
  });

  it('an address that tries to leave its mail root: rewritten to stay inside, or refused (5.1.3)', async (t) => {
    const dir = testDir(t);
    writeFiles(dir, { users: usersTable(dir, ['alice']), virtual: '@vmail.example alice\n@raw.example alice\n' });
    const d = await startSite(dir, `${CONFIG}action "raw" maildir "$DIR/vraw/%{rcpt.user:raw}" virtual <virtual> userbase <users>\nmatch from any for domain "raw.example" action "raw"\n`);
    // A virtual catch-all sends every local part of vmail.example to alice's maildir under vmail/<domain>/<rcpt.user>.
    const climb = '"../../../escaped"';
    // (One message each: in one message both would be the same destination, alice, delivered once.)
    await sendOk(d.port, { from: 'carol@remote.example', to: ['fine@vmail.example'], data: message({ Subject: 'fine' }, 'x\n') });
    await sendOk(d.port, { from: 'carol@remote.example', to: [`${climb}@vmail.example`], data: message({ Subject: 'climb' }, 'x\n') });
    // %{rcpt.user} turns "/" into ":" (OpenSMTPD's rewrite): the folder stays inside vmail/vmail.example.
    await waitForFiles([join(dir, 'vmail', 'vmail.example', 'fine'), join(dir, 'vmail', 'vmail.example', '"..:..:..:escaped"')], 2, d);
    // With :raw the "/" is kept: the value is refused instead, a permanent failure.
    await sendOk(d.port, { from: 'carol@remote.example', to: [`${climb}@raw.example`], data: message({ Subject: 'raw climb' }, 'x\n') });
    await waitFor('the raw recipient to fail', () => d.logs.find((l) => /^mda delivery permfail .*action=raw .*stat="5\.1\.3 .*unsafe value/.test(l)), { daemon: d });
    // An unquoted local part cannot start with "." at all (dot-atom): refused at RCPT.
    const r = await send(d.port, { from: 'carol@remote.example', to: ['..@vmail.example'], data: 'x\n' });
    assert.equal(r.rcpts[0]?.[0], 553);
    assert.deepEqual(listDir(join(dir, 'vmail')), ['vmail.example']);
    assert.deepEqual(listDir(join(dir, 'vmail', 'vmail.example')), ['"..:..:..:escaped"', 'fine']);
    assert.deepEqual(listDir(join(dir, 'vraw')), []);
    assert.ok(readdirSync(dir).every((f) => ['Maildir', 'home', 'mail', 'smtpd.conf', 'spool', 'users', 'virtual', 'vmail', 'vraw'].includes(f)), readdirSync(dir).join(' '));
    assert.equal(existsSync(join(dir, '..', 'escaped')), false);
  });

  it('an unsafe +extension never names a folder: the delivery is refused (5.1.3)', async (t) => {
    const dir = testDir(t);
    writeFiles(dir, { users: usersTable(dir, ['alice']), virtual: '@vmail.example alice\n' });
    const md = join(dir, 'Maildir', 'alice');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(md, sub), { recursive: true, mode: 0o700 });
    const d = await startSite(dir, CONFIG);
    // ".hidden" would make the folder "..hidden" (a name starting with "."): docs/delivery.md, path safety.
    await sendOk(d.port, { from: 'carol@remote.example', to: ['alice+.hidden@test.example'], data: message({ Subject: 'ext' }, 'x\n') });
    await waitFor('the delivery to fail', () => d.logs.find((l) => /^mda delivery permfail .*to=<alice\+\.hidden@test\.example>.*stat="5\.1\.3 .*unsafe address extension/.test(l)), { daemon: d });
    assert.deepEqual(listDir(md), ['cur', 'new', 'tmp']);
    assert.deepEqual(listDir(join(md, 'new')), []);
  });
});
