/*
 * policy/build.ts: the phases in order, what a ZMailer file changes in
 * sessions and connections, the style flags, and how Policy combines the
 * commit phases. (Reading the files and merging their PARAMs into the
 * configuration: config-policy-files.test.ts.)
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText, formatDiagnostic } from '../../src/config/load.js';
import type { Config } from '../../src/config/model.js';
import { buildPolicy, type PolicyDeps } from '../../src/policy/build.js';
import { withPolicyFiles, type LoadedConfig } from '../../src/config/policy-files.js';
import { Policy, type PolicyNote, type PolicyPhase } from '../../src/policy/policy.js';
import { RuleEngine } from '../../src/rules/rules.js';
import { TableRegistry } from '../../src/table/table.js';
import { tableFromDecl } from '../../src/table/table-static.js';
import { LocalNames } from '../../src/rules/localnames.js';
import { SystemUsers } from '../../src/users/system-users.js';
import { reply } from '../../src/mail/reply.js';
import { facts, mbox, tx } from './obtuse-helpers.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-pb-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

function config(extra = ''): Config {
  const text = `queue path "${DIR}/spool"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
smtp max-message-size 1M
smtp limit max-rcpt 500
smtp vrfy
smtp disable SMTPUTF8
${extra}
action "local" mbox
match from any for domain "test.example" action "local"
match from local for any action "local"
`;
  const r = loadConfigText(text, 'test.conf', { cwd: DIR });
  if (!r.config) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.config;
}

/** smtpd.conf naming the policy files, and the configuration loaded with them. */
function files(name: string, zmailer?: string, rules?: string): { config: Config; loaded: LoadedConfig } {
  let extra = '';
  if (zmailer !== undefined) {
    writeFileSync(join(DIR, `${name}.zm`), zmailer);
    extra += `smtpserver-conf "${DIR}/${name}.zm"\n`;
  }
  if (rules !== undefined) {
    writeFileSync(join(DIR, `${name}.rules`), rules);
    extra += `rules "${DIR}/${name}.rules"\n`;
  }
  const c = config(extra);
  return { config: c, loaded: withPolicyFiles(c, { env: { MAILBIN: '/bin' } }) };
}

function deps(extra: Partial<PolicyDeps> = {}): PolicyDeps {
  return { tables: new TableRegistry(), users: new SystemUsers(), local: new LocalNames('mx.test.example'), ...extra };
}

test('without policy files: only smtpd.conf, Postern\'s limits (local clients exempt from the per-address one)', () => {
  const c = config();
  const b = buildPolicy(withPolicyFiles(c), deps());
  assert.deepEqual(b.policy.phaseNames, []);
  assert.equal(b.connection.limits.maxPerClient, 50);
  assert.equal(b.connection.limits.refusalCode, 421);
  assert.equal(b.connection.limits.exempt?.('127.0.0.1'), true);
  assert.equal(b.connection.limits.exempt?.('127.0.0.2'), false);
  assert.equal(b.connection.tarpit.initialSec, 0);
  assert.equal(b.session.style, undefined);
  assert.equal(b.session.greeting, undefined);
});

test('the phases run in order: load average, smtpserver.conf, rules file, content filter', () => {
  const { loaded: f } = files('order', 'PARAM contentfilter /bin/true\n*  ve\n', 'allow:ALL:ALL:ALL\n');
  const b = buildPolicy(f, deps({ maxLoadAverage: 5, loadAverage: () => 0.5 }));
  assert.deepEqual(b.policy.phaseNames, ['load-average', 'smtpserver.conf', 'rules-file', 'content-filter']);
  assert.ok(b.contentFilter && b.obtuse && b.zmailer);
});

test('a ZMailer file brings its connection limits (450), tarpit, backlog and greeting', () => {
  const { loaded: f } = files('limits', 'PARAM MaxSameIpSource 7\nPARAM MaxParallelConnections 70\nPARAM tarpit 1 2 30\nPARAM ListenQueueSize 33\nPARAM hdr220 %H hi %i %p\nPARAM NoEHLO\nPARAM no-multiline-replies\n');
  const b = buildPolicy(f, deps());
  assert.deepEqual({ ...b.connection.limits }, { maxPerClient: 7, maxTotal: 70, silentDropFactor: 4, silentDropExtra: 100, refusalCode: 450 });
  assert.deepEqual(b.connection.tarpit, { initialSec: 1, multiplier: 2, capSec: 30 });
  assert.equal(b.connection.backlog, 33);
  assert.deepEqual(b.session.greeting?.({ hostname: 'mx', clientAddress: '192.0.2.1', localPort: 25 }), ['mx hi [192.0.2.1] 25']);
  assert.equal(b.session.ehlo, false);
  assert.equal(b.session.multilineReplies, false);
});

test('style flags: the HELO pattern\'s, else the default "ve"; -s sloppy adds S, -s strict forces strict paths', () => {
  const { loaded: f } = files('style', 'loose.example  veS\nquiet.example  -\n');
  const b = buildPolicy(f, deps());
  const flags = (helo?: string): string => [...(b.session.style?.(helo) ?? [])].sort().join('');
  assert.equal(flags('loose.example'), 'Sev');
  assert.equal(flags('quiet.example'), '');
  assert.equal(flags('other.example'), 'ev');
  assert.equal(flags(undefined), 'ev');
  const sloppy = buildPolicy(f, deps({ style: { kind: 'sloppy' } }));
  assert.equal([...(sloppy.session.style?.(undefined) ?? [])].sort().join(''), 'Sev');
  const strict = buildPolicy(f, deps({ style: { kind: 'strict' } }));
  assert.equal(strict.session.strict, true);
  // -s without a ZMailer file applies to every session.
  const plain = config();
  const s2 = buildPolicy(withPolicyFiles(plain), deps({ style: { kind: 'flags', flags: new Set(['v']) } }));
  assert.equal([...(s2.session.style?.('anything') ?? [])].join(''), 'v');
});

test('PARAMs that do nothing in this mode are listed with FILE:LINE (smtp-auth now does something: AUTH on the listeners)', () => {
  const { loaded: f } = files('notes', 'PARAM BindPort 2525\nPARAM smtp-auth\nPARAM maxsize 10\nPARAM use-tls\n');
  const b = buildPolicy(f, deps());
  assert.deepEqual(
    b.notes.map((n) => n.replace(`${DIR}/`, '').replace(/: PARAM (\S+) has no effect here: .*$/, ' $1')),
    ['notes.zm:1 BindPort', 'notes.zm:4 use-tls'],
  );
});

test('the observer hears each phase\'s reason: HELO pattern, rules file rule, smtpd.conf rule', async () => {
  const { loaded: f } = files('observe', '*.bad.example !no\n*  ve\n', 'noto:ALL:ALL:*@elsewhere.example:550 no relaying to %T\nallow:ALL:ALL:ALL\n');
  const notes: PolicyNote[] = [];
  const tables = new TableRegistry();
  for (const decl of f.config.tables.values()) tables.add(tableFromDecl(decl));
  const b = buildPolicy(f, deps({ tables, observer: (n) => notes.push(n) }));
  await b.policy.helo(facts('192.0.2.1'), 'x.bad.example');
  await b.policy.helo(facts('192.0.2.1'), 'good.example');
  const d1 = await b.policy.rcpt(facts('192.0.2.1'), tx('a@b.example'), mbox('c@elsewhere.example'));
  assert.equal(d1.kind, 'reject');
  const d2 = await b.policy.rcpt(facts('127.0.0.1'), tx('a@b.example'), mbox('root@mx.test.example'));
  assert.equal(d2.kind, 'accept');
  const text = notes.map((n) => `${n.phase} ${n.source}: ${n.why.replaceAll(`${DIR}/`, '')}`);
  assert.deepEqual(text, [
    'helo smtpserver.conf: observe.zm:1: *.bad.example !…',
    'helo smtpserver.conf: observe.zm:2: * style "ve"',
    'rcpt rules file: noto: observe.rules:1: noto:ALL:ALL:*@elsewhere.example:550 no relaying to %T',
    'rcpt rules file: allow: observe.rules:2: allow:ALL:ALL:ALL',
    'rcpt smtpd.conf: rule test.conf:13 matches: action "local"',
  ]);
});

test('Policy.commit: a reject or discard ends the check; a hold is kept; the last reply of its own wins', async () => {
  const c = config();
  const phase = (name: string, v: Awaited<ReturnType<NonNullable<PolicyPhase['commit']>>>): PolicyPhase => ({ name, commit: () => v });
  const policy = (...p: PolicyPhase[]): Policy => new Policy(p, new RuleEngine(c, new TableRegistry(), new LocalNames('mx')), { config: c, tables: new TableRegistry(), users: new SystemUsers() }, new LocalNames('mx'));
  const s = facts('192.0.2.1');
  const t = tx('a@b.example');
  const cf = { size: 10, receivedHeaders: 1, msgid: '0123abcd' };
  assert.deepEqual(await policy().commit(s, t, cf), { kind: 'accept' });
  const held = await policy(phase('a', { kind: 'hold', reason: 'frozen' }), phase('b', { kind: 'accept', reason: 'ok', reply: reply(250, '2.6.0', 'fine') })).commit(s, t, cf);
  assert.deepEqual(held, { kind: 'accept', hold: 'frozen', reply: reply(250, '2.6.0', 'fine') });
  const rej = await policy(phase('a', { kind: 'hold', reason: 'frozen' }), phase('b', { kind: 'reject', reply: reply(550, '5.7.1', 'no'), reason: 'spam' }), phase('c', { kind: 'discard', reason: 'x', reply: reply(250, '2.0.0', 'y') })).commit(s, t, cf);
  assert.equal(rej.kind, 'reject');
  const dis = await policy(phase('a', { kind: 'discard', reason: 'x', reply: reply(250, '2.0.0', 'y') }), phase('b', { kind: 'reject', reply: reply(550, '5.7.1', 'no'), reason: 'spam' })).commit(s, t, cf);
  assert.deepEqual(dis, { kind: 'discard', reply: reply(250, '2.0.0', 'y'), reason: 'x' });
});
