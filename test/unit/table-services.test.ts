/*
 * Lookup services (domain, netaddr, mailaddr, alias, credentials,
 * userinfo) over the table backends, text-file tables and their reload,
 * and the tri-state rule: a table that cannot be read is an error, never
 * "not found".
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { lookupAlias, parseAliasValue, type AliasNode } from '../../src/table/aliases.js';
import { matchDomain, matchMailaddr, matchNetaddr } from '../../src/table/match.js';
import { lookupCredentials, lookupUserinfo, TableUserBase } from '../../src/table/services.js';
import { StaticTable, tableFromDecl } from '../../src/table/table-static.js';
import { TableRegistry, type Table } from '../../src/table/table.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-tables-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

const list = (...keys: string[]): Table => new StaticTable('l', { kind: 'inline', entries: new Map(keys.map((k) => [k, ''])) });
const map = (m: Record<string, string>, name = 'm'): Table => new StaticTable(name, { kind: 'inline', entries: new Map(Object.entries(m)) });
const broken = (): Table => new StaticTable('broken', { kind: 'file', path: join(DIR, 'does-not-exist') });

describe('domain', () => {
  const t = list('example.org', '*.example.net');
  const cases: [string, boolean][] = [
    ['example.org', true],
    ['EXAMPLE.ORG.', true],
    ['mx.example.org', false],
    ['example.net', false],
    ['mx.example.net', true],
    ['a.b.example.net', true],
    ['example.com', false],
  ];
  for (const [d, want] of cases) test(`${d} → ${want}`, () => assert.equal(matchDomain(t, d), want));
  test('a table that cannot be read is an error', () => assert.ok(typeof matchDomain(broken(), 'example.org') === 'object'));
});

describe('netaddr', () => {
  const t = list('10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '[::1]');
  const cases: [string, boolean][] = [
    ['10.1.2.3', true],
    ['11.0.0.1', false],
    ['192.0.2.7', true],
    ['192.0.2.8', false],
    ['::ffff:10.0.0.1', true],
    ['2001:db8::25', true],
    ['2001:db9::25', false],
    ['::1', true],
    ['not an address', false],
  ];
  for (const [ip, want] of cases) test(`${ip} → ${want}`, () => assert.equal(matchNetaddr(t, ip), want));
  test('a table that cannot be read is an error', () => assert.ok(typeof matchNetaddr(broken(), '10.0.0.1') === 'object'));
});

describe('mailaddr', () => {
  const cases: [string[], string, boolean][] = [
    [['bob@example.org'], 'Bob@Example.org', true],
    [['@example.org'], 'anyone@example.org', true],
    [['bob'], 'bob@anywhere.net', true],
    [['@'], 'x@y.z', true],
    [['bob@example.org'], 'alice@example.org', false],
  ];
  for (const [keys, a, want] of cases) test(`${keys.join(',')} ∋ ${a} → ${want}`, () => assert.equal(matchMailaddr(list(...keys), a), want));
});

describe('credentials', () => {
  test('seed 002 secrets: host user:password', () => {
    const t = map({ 'smtp.gmail.com': 'GMAIL_USERNAME@gmail.com:GMAIL:PASS' });
    assert.deepEqual(lookupCredentials(t, 'SMTP.gmail.com'), { kind: 'found', value: { user: 'GMAIL_USERNAME@gmail.com', password: 'GMAIL:PASS' } });
  });
  test('auth tables: user password-hash', () => {
    const t = map({ bob: '$2b$10$abcdefghijklmnopqrstuv', carol: 'plain' });
    assert.deepEqual(lookupCredentials(t, 'bob'), { kind: 'found', value: { user: 'bob', password: '$2b$10$abcdefghijklmnopqrstuv' } });
    assert.deepEqual(lookupCredentials(t, 'carol'), { kind: 'found', value: { user: 'carol', password: 'plain' } });
  });
  test('not found, unreadable, malformed', () => {
    assert.deepEqual(lookupCredentials(map({}), 'x'), { kind: 'notfound' });
    assert.equal(lookupCredentials(broken(), 'x').kind, 'error');
    assert.equal(lookupCredentials(map({ h: ':pw' }), 'h').kind, 'error');
    assert.equal(lookupCredentials(map({ h: 'user:' }), 'h').kind, 'error');
  });
});

describe('userinfo', () => {
  test('name uid:gid:home', () => {
    const t = map({ vbob: '2000:2001:/var/vmail/bob' });
    assert.deepEqual(lookupUserinfo(t, 'VBob'), { kind: 'found', value: { name: 'vbob', uid: 2000, gid: 2001, home: '/var/vmail/bob', shell: '' } });
    assert.deepEqual(lookupUserinfo(t, 'x'), { kind: 'notfound' });
  });
  test('a malformed value or an unreadable table is an error', () => {
    assert.equal(lookupUserinfo(map({ a: '2000:/home/a' }), 'a').kind, 'error');
    assert.equal(lookupUserinfo(map({ a: '2000:2000:relative' }), 'a').kind, 'error');
    assert.equal(lookupUserinfo(broken(), 'a').kind, 'error');
  });
  test('as a UserBase', () => {
    const u = new TableUserBase(map({ vbob: '2000:2000:/var/vmail/bob' }));
    assert.equal((u.lookup('vbob') as { uid: number }).uid, 2000);
    assert.equal(u.lookup('nobody'), undefined);
    assert.ok('error' in (new TableUserBase(broken()).lookup('x') as object));
  });
});

describe('alias values', () => {
  const ok: [string, AliasNode[]][] = [
    ['calomel', [{ kind: 'user', name: 'calomel' }]],
    ['Bob, alice.smith, carol-x, dave+lists', ['bob', 'alice.smith', 'carol-x', 'dave+lists'].map((name) => ({ kind: 'user', name }) as AliasNode)],
    ['bob@Example.ORG', [{ kind: 'address', address: 'bob@example.org', local: 'bob', domain: 'example.org' }]],
    ["o'brien@example.org", [{ kind: 'address', address: "o'brien@example.org", local: "o'brien", domain: 'example.org' }]],
    ['user@[192.0.2.1]', [{ kind: 'address', address: 'user@[192.0.2.1]', local: 'user', domain: '[192.0.2.1]' }]],
    ['/var/mail/archive', [{ kind: 'file', path: '/var/mail/archive' }]],
    ['"/var/mail/with space"', [{ kind: 'file', path: '/var/mail/with space' }]],
    ['|/usr/bin/vacation bob', [{ kind: 'command', command: '/usr/bin/vacation bob' }]],
    ['"|/usr/bin/x --list=a,b"', [{ kind: 'command', command: '/usr/bin/x --list=a,b' }]],
    ['|/usr/bin/x "a,b"', [{ kind: 'command', command: '/usr/bin/x "a,b"' }]],
    [':include:/etc/mail/staff', [{ kind: 'include', path: '/etc/mail/staff' }]],
    ['INCLUDE:/etc/mail/staff', [{ kind: 'include', path: '/etc/mail/staff' }]],
    ['error:550 5.1.6 moved to example.net', [{ kind: 'error', code: 550, enhanced: '5.1.6', text: 'moved to example.net' }]],
    [':error:421 closed for maintenance', [{ kind: 'error', code: 421, enhanced: '4.0.0', text: 'closed for maintenance' }]],
    ['bob, alice,', [{ kind: 'user', name: 'bob' }, { kind: 'user', name: 'alice' }]],
    ['|/bin/x a\\,b, bob', [{ kind: 'command', command: '/bin/x a,b' }, { kind: 'user', name: 'bob' }]],
  ];
  for (const [value, want] of ok) test(`ok: ${value}`, () => assert.deepEqual(parseAliasValue(value), want));

  const bad: [string, RegExp][] = [
    ['', /no destination/],
    ['bob,,alice', /empty destination/],
    ['Mail/inbox', /absolute path/],
    ['~bob/inbox', /absolute path/],
    ['~bob', /invalid user name/],
    ['bob smith', /invalid user name/],
    ['|', /empty command/],
    [':include:staff', /absolute path/],
    ['error:250 fine', /4xx or 5xx/],
    ['error:550', /4xx or 5xx/],
    ['error:550 4.1.1 mixed', /does not agree/],
    ['"|/bin/x', /unbalanced/],
    ['bob@', /invalid domain/],
    ['@example.org', /invalid address/],
    ['bob@exa mple.org', /invalid domain/],
    ['a..b@example.org', /invalid address/],
    ['/var/mail/x\r\nInjected: 1', /control character/],
    ['bob\0', /control character/],
    ['|/bin/x\n', /control character/],
  ];
  for (const [value, re] of bad) test(`bad: ${JSON.stringify(value)}`, () => assert.match(String(parseAliasValue(value)), re));

  test('lookupAlias: found, not found, unparsable (error), unreadable (error)', () => {
    const t = map({ root: 'calomel', bad: 'Mail/x' }, 'aliases');
    assert.deepEqual(lookupAlias(t, 'ROOT'), { kind: 'found', value: [{ kind: 'user', name: 'calomel' }] });
    assert.deepEqual(lookupAlias(t, 'nobody'), { kind: 'notfound' });
    const r = lookupAlias(t, 'bad');
    assert.equal(r.kind, 'error');
    assert.match(r.kind === 'error' ? r.reason : '', /table aliases: entry "bad": a file destination must be an absolute path/);
    assert.equal(lookupAlias(broken(), 'root').kind, 'error');
  });
});

describe('text-file tables', () => {
  test('an aliases(5) file with continuation lines', () => {
    const p = join(DIR, 'aliases');
    writeFileSync(p, '# seed 002\nroot: calomel\nstaff: bob, alice,\n\tcarol@example.net\n');
    const t = tableFromDecl({ name: 'aliases', pos: { file: 'smtpd.conf', line: 3, col: 1 }, kind: 'file', path: p });
    assert.deepEqual(t.get('staff'), { kind: 'found', value: 'bob, alice, carol@example.net' });
    assert.equal(t.error, undefined);
  });

  test('reload: a bad file keeps the old contents and throws FILE:LINE', () => {
    const p = join(DIR, 'reload');
    writeFileSync(p, 'root: calomel\n');
    const t = new StaticTable('aliases', { kind: 'file', path: p });
    writeFileSync(p, 'root: bob\nroot: alice\n');
    assert.throws(() => t.reload(), (e: Error) => e.message.startsWith(`${p}:2: duplicate entry for "root"`));
    assert.deepEqual(t.get('root'), { kind: 'found', value: 'calomel' });
    writeFileSync(p, 'root: bob\n');
    t.reload();
    assert.deepEqual(t.get('root'), { kind: 'found', value: 'bob' });
  });

  test('a file that cannot be read at start: every lookup is an error', () => {
    const t = broken() as StaticTable;
    assert.match(t.error ?? '', /does-not-exist: no such file/);
    assert.equal(t.get('x').kind, 'error');
  });

  test('the registry: undefined tables are errors; reloadAll lists failures', () => {
    const p = join(DIR, 'reg');
    writeFileSync(p, 'a: 1\n');
    const reg = new TableRegistry();
    reg.add(new StaticTable('good', { kind: 'file', path: p }));
    reg.add(map({ k: 'v' }, 'inline'));
    assert.deepEqual(reg.lookup('inline', 'K'), { kind: 'found', value: 'v' });
    assert.equal(reg.lookup('nope', 'k').kind, 'error');
    writeFileSync(p, '  oops\n');
    assert.deepEqual(reg.reloadAll(), [{ table: 'good', error: `${p}:1: continuation line without an entry before it` }]);
    assert.deepEqual(reg.lookup('good', 'a'), { kind: 'found', value: '1' });
  });
});
