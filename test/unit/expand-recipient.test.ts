/*
 * expandRecipient: every destination kind, loops, includes, extensions,
 * virtual key order, error: entries, limits and temporary failures — as
 * tables of cases run against inline tables, a stub user base and a stub
 * router (example.org local, virtual.test virtual, anything else relayed).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Action, Config, MatchRule } from '../../src/config/model.js';
import type { UserBase, UserInfo } from '../../src/users/system-users.js';
import { expandRecipient, MAX_DEPTH, virtualKeys, type ExpandEnv, type ExpandResult, type ExpandTarget } from '../../src/expand/expand.js';
import { LocalNames } from '../../src/rules/localnames.js';
import type { RuleDecision } from '../../src/rules/rules.js';
import type { Mailbox } from '../../src/mail/address.js';
import { reply } from '../../src/mail/reply.js';
import { StaticTable } from '../../src/table/table-static.js';
import { TableRegistry } from '../../src/table/table.js';
import { NOBODY } from '../../src/users/system-users.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-expand-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

const pos = (line: number) => ({ file: 'smtpd.conf', line, col: 1 });
const rule = (line: number, action: string): MatchRule => ({ pos: pos(line), dialect: 'modern', decision: 'accept', action, conditions: [] });
const act = (name: string, kind: Action['kind'], extra: Partial<Action> = {}): Action => ({ name, pos: pos(1), kind, junk: false, ...extra });

const ACTIONS = {
  local: act('local', 'mbox', { alias: 'aliases' }),
  maildir: act('maildir', 'maildir', { alias: 'aliases' }),
  virtual: act('virtual', 'maildir', { virtual: 'virtuals' }),
  vusers: act('vusers', 'maildir', { userbase: 'userbase' }),
  relay: act('relay', 'relay'),
  expandOnly: act('expand-only', 'expand-only', { alias: 'aliases' }),
  forwardOnly: act('forward-only', 'forward-only', { alias: 'aliases' }),
};
type ActionName = keyof typeof ACTIONS;
const RULES: Record<string, MatchRule> = { local: rule(10, 'local'), virtual: rule(11, 'virtual'), relay: rule(12, 'relay') };

const SYSTEM_USERS = ['root:0', 'bob:1000', 'alice:1001', 'calomel:1002', 'robert:1003', 'becky:1004', 'majordomo:1005', 'u1:2001', 'u2:2002', 'u3:2003', 'u4:2004', 'u5:2005', 'u6:2006'];

class StubUsers implements UserBase {
  readonly users = new Map<string, UserInfo>();
  constructor(
    list: readonly string[],
    private readonly broken = false,
  ) {
    for (const u of list) {
      const [name, uid] = u.split(':') as [string, string];
      this.users.set(name, { name, uid: Number(uid), gid: Number(uid), home: `/home/${name}`, shell: '/bin/sh' });
    }
  }
  lookup(name: string): UserInfo | undefined | { readonly error: string } {
    if (this.broken) return { error: '/etc/passwd: I/O error' };
    return this.users.get(name);
  }
}

interface Setup {
  aliases?: Record<string, string>;
  virtuals?: Record<string, string>;
  userbase?: Record<string, string>;
  users?: readonly string[];
  usersBroken?: boolean;
  /** Make the aliases table a file that does not exist. */
  aliasesBroken?: boolean;
}

function env(s: Setup): ExpandEnv {
  const tables = new TableRegistry();
  const inline = (name: string, m: Record<string, string> = {}) =>
    new StaticTable(name, { kind: 'inline', entries: new Map(Object.entries(m).map(([k, v]) => [k, v.replaceAll('$DIR', DIR)])) });
  tables.add(s.aliasesBroken ? new StaticTable('aliases', { kind: 'file', path: join(DIR, 'no-such-aliases') }) : inline('aliases', s.aliases));
  tables.add(inline('virtuals', s.virtuals));
  tables.add(inline('userbase', s.userbase));
  const route = (address: string): RuleDecision => {
    const domain = address.slice(address.lastIndexOf('@') + 1);
    if (domain === 'example.org' || domain === 'mx.example.org') return { kind: 'accept', rule: RULES.local as MatchRule, action: ACTIONS.local };
    if (domain === 'virtual.test') return { kind: 'accept', rule: RULES.virtual as MatchRule, action: ACTIONS.virtual };
    if (domain === 'denied.test') return { kind: 'reject', reply: reply(550, '5.7.1', 'Relaying denied'), reason: 'no rule matched: relaying denied' };
    if (domain === 'broken.test') return { kind: 'reject', reply: reply(451, '4.3.0', 'Temporary failure'), reason: 'table "x": I/O error' };
    return { kind: 'accept', rule: RULES.relay as MatchRule, action: ACTIONS.relay };
  };
  return { tables, users: new StubUsers(s.users ?? SYSTEM_USERS, s.usersBroken), local: new LocalNames('mx.example.org'), config: {} as Config, route };
}

function mailbox(address: string): Mailbox {
  const at = address.lastIndexOf('@');
  return at < 0 ? { local: address, domain: '', utf8: false } : { local: address.slice(0, at), domain: address.slice(at + 1).toLowerCase(), utf8: false };
}

function show(t: ExpandTarget): string {
  const d = t.dest;
  switch (d.kind) {
    case 'user':
      return `user:${d.user}${t.extension !== undefined ? `+${t.extension}` : ''}`;
    case 'file':
      return `file:${d.path} as ${d.user}`;
    case 'command':
      return `command:${d.command} as ${d.user}`;
    case 'remote':
      return `remote:${t.address}`;
  }
}

function expand(setup: Setup, rcpt: string, action: ActionName = 'local'): ExpandResult {
  const a = ACTIONS[action];
  const r = action === 'virtual' ? RULES.virtual : action === 'relay' ? RULES.relay : RULES.local;
  return expandRecipient(mailbox(rcpt), { rule: r as MatchRule, action: a }, env(setup));
}

/** "user:bob, remote:x@y" or "reject 550 5.1.1". */
function outcome(r: ExpandResult): string {
  return r.kind === 'ok' ? r.targets.map(show).join(', ') : `reject ${r.reply.code} ${r.reply.enhanced}`;
}

interface Case {
  readonly name: string;
  readonly setup?: Setup;
  readonly rcpt: string;
  readonly action?: ActionName;
  readonly expect: string;
}

function runCases(cases: readonly Case[]): void {
  for (const c of cases) {
    test(c.name, () => {
      const r = expand(c.setup ?? {}, c.rcpt, c.action);
      assert.equal(outcome(r), c.expect, r.kind === 'reject' ? r.reason : JSON.stringify(r.dropped ?? []));
    });
  }
}

writeFileSync(join(DIR, 'list.txt'), '# the staff list\nbob\nalice, carol@elsewhere.net   # external\n\n');
writeFileSync(join(DIR, 'loop.txt'), `:include:${join(DIR, 'loop.txt')}\nbob\n`);
writeFileSync(join(DIR, 'bad.txt'), 'bob\n~nobody/x\n');
writeFileSync(join(DIR, 'unsafe.txt'), 'bob\n|/bin/cat\n/tmp/dump\n');
chmodSync(join(DIR, 'unsafe.txt'), 0o666);
writeFileSync(join(DIR, 'safe.txt'), '|/usr/bin/archive\n');
chmodSync(join(DIR, 'safe.txt'), 0o644);
writeFileSync(join(DIR, 'huge.txt'), Array.from({ length: 10_001 }, (_, i) => `user${i}@elsewhere.net`).join('\n'));

describe('local users', () => {
  runCases([
    { name: 'a system user', rcpt: 'bob@example.org', expect: 'user:bob' },
    { name: 'an unknown user is 550 5.1.1', rcpt: 'nobody-here@example.org', expect: 'reject 550 5.1.1' },
    { name: 'local parts are case-insensitive', rcpt: 'BoB@example.org', expect: 'user:bob' },
    { name: '+extension is kept for maildir sub-folders', rcpt: 'bob+Lists@example.org', expect: 'user:bob+lists' },
    { name: 'an extension unsafe as a folder name is dropped', rcpt: 'bob+../../etc@example.org', expect: 'user:bob' },
    { name: 'an extension with a slash is dropped', rcpt: 'bob+a/b@example.org', expect: 'user:bob' },
    { name: 'a leading "+" is not an extension', rcpt: '+bob@example.org', expect: 'reject 550 5.1.1' },
    { name: 'an envelope "|command" is only a user name', rcpt: '|/bin/sh@example.org', expect: 'reject 550 5.1.1' },
    { name: 'an envelope "/file" is only a user name', rcpt: '/etc/passwd@example.org', expect: 'reject 550 5.1.1' },
    { name: 'postmaster without alias is root', rcpt: 'postmaster@example.org', expect: 'user:root' },
    { name: '<postmaster> without a domain', rcpt: 'Postmaster', expect: 'user:root' },
    { name: 'mailer-daemon without alias is root', rcpt: 'MAILER-DAEMON@example.org', expect: 'user:root' },
    { name: 'postmaster follows root\'s alias', setup: { aliases: { root: 'calomel' } }, rcpt: 'postmaster@example.org', expect: 'user:calomel' },
    { name: 'postmaster is root even when root is unknown', setup: { users: ['bob:1000'] }, rcpt: 'postmaster@example.org', expect: 'user:root' },
    { name: 'postmaster refused explicitly by an error: alias', setup: { aliases: { postmaster: 'error:550 5.7.1 no thanks' } }, rcpt: 'postmaster@example.org', expect: 'reject 550 5.7.1' },
    { name: 'relay action: the address, remote', rcpt: 'alice@example.com', action: 'relay', expect: 'remote:alice@example.com' },
  ]);
});

describe('aliases', () => {
  runCases([
    { name: 'seed 002: root: calomel', setup: { aliases: { root: 'calomel' } }, rcpt: 'root@example.org', expect: 'user:calomel' },
    { name: 'alias keys are case-insensitive', setup: { aliases: { root: 'calomel' } }, rcpt: 'ROOT@example.org', expect: 'user:calomel' },
    { name: 'a list of users and an address', setup: { aliases: { staff: 'bob, alice, carol@elsewhere.net' } }, rcpt: 'staff@example.org', expect: 'user:bob, user:alice, remote:carol@elsewhere.net' },
    { name: 'the exact +extension key first', setup: { aliases: { 'bob+lists': 'alice' } }, rcpt: 'bob+lists@example.org', expect: 'user:alice' },
    { name: 'then the key without the extension', setup: { aliases: { bob: 'alice' } }, rcpt: 'bob+lists@example.org', expect: 'user:alice' },
    { name: 'an extension in an alias value is kept', setup: { aliases: { lists: 'bob+lists' } }, rcpt: 'lists@example.org', expect: 'user:bob+lists' },
    { name: 'an alias to a local address is expanded again', setup: { aliases: { fwd: 'bob@example.org', bob: 'alice' } }, rcpt: 'fwd@example.org', expect: 'user:alice' },
    { name: 'an alias to a remote address is relayed', setup: { aliases: { fwd: 'Carol@Elsewhere.NET' } }, rcpt: 'fwd@example.org', expect: 'remote:Carol@elsewhere.net' },
    { name: 'an alias to a virtual address uses the virtual table', setup: { aliases: { fwd: 'sales@virtual.test' }, virtuals: { 'sales@virtual.test': 'becky' } }, rcpt: 'fwd@example.org', expect: 'user:becky' },
    { name: 'a file as nobody when the alias is no user', setup: { aliases: { archive: '/var/mail/archive' } }, rcpt: 'archive@example.org', expect: `file:/var/mail/archive as ${NOBODY}` },
    { name: 'a file as the alias\'s own user', setup: { aliases: { bob: '/home/bob/copy, bob' } }, rcpt: 'bob@example.org', expect: 'file:/home/bob/copy as bob, user:bob' },
    { name: 'a command as the alias\'s own user', setup: { aliases: { majordomo: '"|/usr/lib/majordomo/wrapper majordomo, now"' } }, rcpt: 'majordomo@example.org', expect: 'command:/usr/lib/majordomo/wrapper majordomo, now as majordomo' },
    { name: 'a command of root\'s alias never runs as root', setup: { aliases: { root: '|/usr/local/bin/page-admin' } }, rcpt: 'root@example.org', expect: `command:/usr/local/bin/page-admin as ${NOBODY}` },
    { name: 'error:550 as the only outcome', setup: { aliases: { gone: 'error:550 5.1.6 Bob has moved to example.net' } }, rcpt: 'gone@example.org', expect: 'reject 550 5.1.6' },
    { name: 'error:450 as the only outcome', setup: { aliases: { busy: ':error:450 try again later' } }, rcpt: 'busy@example.org', expect: 'reject 450 4.0.0' },
    { name: 'error: beside a real destination is dropped', setup: { aliases: { team: 'bob, error:550 nope' } }, rcpt: 'team@example.org', expect: 'user:bob' },
    { name: 'an unknown user in a list is dropped', setup: { aliases: { team: 'ghost, bob' } }, rcpt: 'team@example.org', expect: 'user:bob' },
    { name: 'a list of unknown users only: 550 5.1.1', setup: { aliases: { team: 'ghost, phantom' } }, rcpt: 'team@example.org', expect: 'reject 550 5.1.1' },
    { name: 'a forward the rules refuse is dropped', setup: { aliases: { team: 'x@denied.test, bob' } }, rcpt: 'team@example.org', expect: 'user:bob' },
    { name: 'only a forward the rules refuse: their reply', setup: { aliases: { team: 'x@denied.test' } }, rcpt: 'team@example.org', expect: 'reject 550 5.7.1' },
    { name: 'a forward the rules cannot decide now defers', setup: { aliases: { team: 'bob, x@broken.test' } }, rcpt: 'team@example.org', expect: 'reject 451 4.3.0' },
    { name: 'duplicates are delivered once', setup: { aliases: { team: 'bob, bob, devs, BOB@example.org', devs: 'bob, alice' } }, rcpt: 'team@example.org', expect: 'user:bob, user:alice' },
    { name: 'an alias reached twice is expanded once', setup: { aliases: { list: 'a1, a2', a1: 'shared', a2: 'shared', shared: 'bob, /var/log/shared' } }, rcpt: 'list@example.org', expect: `user:bob, file:/var/log/shared as ${NOBODY}` },
    { name: 'a user and its own address are one destination', setup: { aliases: { both: 'bob, bob@example.org' } }, rcpt: 'both@example.org', expect: 'user:bob' },
  ]);
});

describe('loops and limits', () => {
  const chain = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`l${i}`, i === n - 1 ? 'bob' : `l${i + 1}`]));
  runCases([
    { name: 'an alias naming itself delivers to the user (sendmail)', setup: { aliases: { bob: 'bob, alice' } }, rcpt: 'bob@example.org', expect: 'user:bob, user:alice' },
    { name: 'a loop back through another alias delivers to the user', setup: { aliases: { bob: 'bob-list', 'bob-list': 'bob, alice' } }, rcpt: 'bob@example.org', expect: 'user:bob, user:alice' },
    { name: 'a loop with no user behind it is dropped', setup: { aliases: { a: 'b', b: 'a, alice' } }, rcpt: 'a@example.org', expect: 'user:alice' },
    { name: 'a loop and nothing else: 550 5.4.6', setup: { aliases: { x: 'y', y: 'x' } }, rcpt: 'x@example.org', expect: 'reject 550 5.4.6' },
    { name: 'a loop through an address', setup: { aliases: { x: 'y@example.org', y: 'x@example.org' } }, rcpt: 'x@example.org', expect: 'reject 550 5.4.6' },
    { name: `${MAX_DEPTH} levels of aliases`, setup: { aliases: chain(MAX_DEPTH) }, rcpt: 'l0@example.org', expect: 'user:bob' },
    { name: `deeper than ${MAX_DEPTH} levels: 550 5.2.4`, setup: { aliases: chain(MAX_DEPTH + 1) }, rcpt: 'l0@example.org', expect: 'reject 550 5.2.4' },
    { name: 'too many destinations: 550 5.2.4', setup: { aliases: { huge: `:include:$DIR/huge.txt` } }, rcpt: 'huge@example.org', expect: 'reject 550 5.2.4' },
  ]);
});

describe(':include:', () => {
  runCases([
    { name: 'one destination per line or comma, comments skipped', setup: { aliases: { staff: ':include:$DIR/list.txt' } }, rcpt: 'staff@example.org', expect: 'user:bob, user:alice, remote:carol@elsewhere.net' },
    { name: 'include: without the leading colon', setup: { aliases: { staff: 'include:$DIR/list.txt' } }, rcpt: 'staff@example.org', expect: 'user:bob, user:alice, remote:carol@elsewhere.net' },
    { name: 'a missing include file beside a destination is dropped', setup: { aliases: { staff: ':include:/nonexistent/list, becky' } }, rcpt: 'staff@example.org', expect: 'user:becky' },
    { name: 'a missing include file alone: 550 5.2.4', setup: { aliases: { staff: ':include:/nonexistent/list' } }, rcpt: 'staff@example.org', expect: 'reject 550 5.2.4' },
    { name: 'an include file that does not parse defers', setup: { aliases: { staff: ':include:$DIR/bad.txt' } }, rcpt: 'staff@example.org', expect: 'reject 451 4.3.0' },
    { name: 'an include file including itself', setup: { aliases: { staff: ':include:$DIR/loop.txt' } }, rcpt: 'staff@example.org', expect: 'user:bob' },
    { name: 'a group/world-writable include file names no files or commands', setup: { aliases: { staff: ':include:$DIR/unsafe.txt' } }, rcpt: 'staff@example.org', expect: 'user:bob' },
    { name: 'a safe include file may name a command (as the alias user)', setup: { aliases: { majordomo: ':include:$DIR/safe.txt' } }, rcpt: 'majordomo@example.org', expect: 'command:/usr/bin/archive as majordomo' },
  ]);
});

describe('virtual tables', () => {
  // seed 002, example 4 (for virtual.test instead of example.org)
  const seed = { 'bob_smith@virtual.test': 'robert', 'support@virtual.test': 'becky', 'abuse@virtual.test': 'bob' };
  runCases([
    { name: 'seed 002: bob_smith → robert', setup: { virtuals: seed }, rcpt: 'bob_smith@virtual.test', action: 'virtual', expect: 'user:robert' },
    { name: 'seed 002: abuse → bob', setup: { virtuals: seed }, rcpt: 'Abuse@Virtual.test', action: 'virtual', expect: 'user:bob' },
    { name: 'no mapping: 550 5.1.1', setup: { virtuals: seed }, rcpt: 'nobody@virtual.test', action: 'virtual', expect: 'reject 550 5.1.1' },
    { name: 'postmaster without mapping is root', setup: { virtuals: seed }, rcpt: 'postmaster@virtual.test', action: 'virtual', expect: 'user:root' },
    { name: 'a catch-all', setup: { virtuals: { '@virtual.test': 'becky' } }, rcpt: 'anything@virtual.test', action: 'virtual', expect: 'user:becky' },
    { name: 'a list with a remote address', setup: { virtuals: { 'team@virtual.test': 'ext@example.com, bob' } }, rcpt: 'team@virtual.test', action: 'virtual', expect: 'remote:ext@example.com, user:bob' },
    { name: 'a virtual command runs as nobody', setup: { virtuals: { 'bob@virtual.test': '|/usr/bin/handler' } }, rcpt: 'bob@virtual.test', action: 'virtual', expect: `command:/usr/bin/handler as ${NOBODY}` },
    { name: 'a mapping loop: 550 5.4.6', setup: { virtuals: { 'a@virtual.test': 'b@virtual.test', 'b@virtual.test': 'a@virtual.test' } }, rcpt: 'a@virtual.test', action: 'virtual', expect: 'reject 550 5.4.6' },
    { name: 'a virtual error: entry', setup: { virtuals: { 'old@virtual.test': 'error:550 5.1.6 gone' } }, rcpt: 'old@virtual.test', action: 'virtual', expect: 'reject 550 5.1.6' },
  ]);

  test('key order: user+ext@domain, user@domain, user+ext, user, @domain, @', () => {
    const keys = virtualKeys('Info+X', 'Virtual.test');
    assert.deepEqual(keys, ['info+x@virtual.test', 'info@virtual.test', 'info+x', 'info', '@virtual.test', '@']);
    for (let i = 0; i < keys.length; i++) {
      const virtuals = Object.fromEntries(keys.slice(i).map((k, j) => [k, `u${i + j + 1}`]));
      const r = expand({ virtuals }, 'info+x@virtual.test', 'virtual');
      assert.equal(outcome(r), `user:u${i + 1}`, `with keys from ${keys[i]} on`);
    }
    assert.deepEqual(virtualKeys('info', 'virtual.test'), ['info@virtual.test', 'info', '@virtual.test', '@']);
    assert.deepEqual(virtualKeys('postmaster', ''), ['postmaster'], 'no catch-all without a domain');
  });
});

describe('userbase and special actions', () => {
  runCases([
    { name: 'a userbase user', setup: { userbase: { carl: '2000:2000:/var/vmail/carl' } }, rcpt: 'carl@example.org', action: 'vusers', expect: 'user:carl' },
    { name: 'a system user absent from the userbase: 550', setup: { userbase: { carl: '2000:2000:/var/vmail/carl' } }, rcpt: 'bob@example.org', action: 'vusers', expect: 'reject 550 5.1.1' },
    { name: 'a userbase value that does not parse defers', setup: { userbase: { carl: 'carl' } }, rcpt: 'carl@example.org', action: 'vusers', expect: 'reject 451 4.3.0' },
    { name: 'expand-only: a file from an alias', setup: { aliases: { log: '/var/log/x' } }, rcpt: 'log@example.org', action: 'expandOnly', expect: `file:/var/log/x as ${NOBODY}` },
    { name: 'expand-only: no plain mailbox', rcpt: 'bob@example.org', action: 'expandOnly', expect: 'reject 550 5.1.1' },
    { name: 'forward-only: a remote forward', setup: { aliases: { bob: 'bob@elsewhere.net' } }, rcpt: 'bob@example.org', action: 'forwardOnly', expect: 'remote:bob@elsewhere.net' },
    { name: 'forward-only: no file', setup: { aliases: { bob: '/tmp/x' } }, rcpt: 'bob@example.org', action: 'forwardOnly', expect: 'reject 550 5.2.4' },
    { name: 'forward-only: no plain mailbox', rcpt: 'bob@example.org', action: 'forwardOnly', expect: 'reject 550 5.1.1' },
  ]);
});

describe('temporary failures never read as "no such user"', () => {
  runCases([
    { name: 'an aliases table that cannot be read', setup: { aliasesBroken: true }, rcpt: 'bob@example.org', expect: 'reject 451 4.3.0' },
    { name: 'even for postmaster', setup: { aliasesBroken: true }, rcpt: 'postmaster@example.org', expect: 'reject 451 4.3.0' },
    { name: 'an alias value that does not parse', setup: { aliases: { team: 'bob, Mail/inbox' } }, rcpt: 'team@example.org', expect: 'reject 451 4.3.0' },
    { name: 'the system user base cannot be read', setup: { usersBroken: true }, rcpt: 'bob@example.org', expect: 'reject 451 4.3.0' },
  ]);

  test('a table that is not defined defers', () => {
    const e = env({});
    const r = expandRecipient(mailbox('bob@example.org'), { rule: RULES.local as MatchRule, action: act('x', 'mbox', { alias: 'missing' }) }, e);
    assert.equal(outcome(r), 'reject 451 4.3.0');
    assert.match(r.kind === 'reject' ? r.reason : '', /table "missing" is not defined/);
  });
});

describe('targets', () => {
  test('address, action and rule of each target', () => {
    const r = expand({ aliases: { root: 'calomel, ext@example.com, /var/log/root' } }, 'root@example.org');
    assert.equal(r.kind, 'ok');
    const t = r.kind === 'ok' ? r.targets : [];
    assert.deepEqual(
      t.map((x) => [x.address, x.action.name, x.rule, x.dest]),
      [
        ['root@example.org', 'local', 'smtpd.conf:10', { kind: 'user', user: 'calomel' }],
        ['ext@example.com', 'relay', 'smtpd.conf:12', { kind: 'remote' }],
        ['root@example.org', 'local', 'smtpd.conf:10', { kind: 'file', path: '/var/log/root', user: NOBODY }],
      ],
    );
  });

  test('dropped branches are reported for the log', () => {
    const r = expand({ aliases: { team: 'bob, ghost, error:550 5.1.6 gone, x@denied.test' } }, 'team@example.org');
    assert.equal(r.kind, 'ok');
    const dropped = r.kind === 'ok' ? (r.dropped ?? []) : [];
    assert.deepEqual(
      dropped.map((d) => d.what),
      ['ghost', 'error:550 5.1.6 gone', 'x@denied.test'],
    );
  });

  test('the reply of the first error: entry wins when nothing is delivered', () => {
    const r = expand({ aliases: { team: 'ghost, error:550 5.7.1 closed list' } }, 'team@example.org');
    assert.equal(r.kind, 'reject');
    if (r.kind === 'reject') {
      assert.equal(r.reply.code, 550);
      assert.equal(r.reply.enhanced, '5.7.1');
      assert.deepEqual(r.reply.lines, ['closed list']);
    }
  });

  test('no destination carries CR, LF or NUL', () => {
    const e = env({});
    (e.users as StubUsers).users.set('evil', { name: 'evil\r\nX-Injected: 1', uid: 5, gid: 5, home: '/', shell: '' });
    const r = expandRecipient(mailbox('evil@example.org'), { rule: RULES.local as MatchRule, action: ACTIONS.local }, e);
    assert.equal(outcome(r), 'reject 550 5.2.4');
  });

  test('a target has the action of the address it came from', () => {
    const e = env({});
    const a = expandRecipient(mailbox('bob@example.org'), { rule: RULES.local as MatchRule, action: ACTIONS.maildir }, e);
    assert.equal(a.kind === 'ok' ? a.targets[0]?.action.name : '', 'maildir');
  });
});
