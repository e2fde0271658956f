/*
 * The rules file's `allow` grants what seed 001 means — "allow an SMTP
 * connection": with a plain smtpd.conf (relaying only for this machine),
 * an allowed recipient is relayed, exactly what the file allows and no
 * more; smtpd.conf still decides local domains and its explicit rejects.
 * And the open-relay warning: for a rules file that is open, never for
 * one that refuses what it does not allow.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText, formatDiagnostic } from '../../src/config/load.js';
import { withPolicyFiles } from '../../src/config/policy-files.js';
import { rulesOpenness } from '../../src/config/obtuse/open.js';
import { buildPolicy } from '../../src/policy/build.js';
import { TableRegistry } from '../../src/table/table.js';
import { tableFromDecl } from '../../src/table/table-static.js';
import type { LoadedConfig } from '../../src/config/policy-files.js';
import { LocalNames } from '../../src/rules/localnames.js';
import { SystemUsers } from '../../src/users/system-users.js';
import { facts, mbox, rules, tx } from './obtuse-helpers.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-grant-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

const PLAIN = (rulesFile: string, extra = ''): string => `queue path "${DIR}/spool"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
rules "${rulesFile}"
action "local" mbox
action "relay" relay
${extra}
match from any for domain "test.example" action "local"
match from local for any action "relay"
`;

function load(name: string, rulesText: string, extra = '') {
  const file = join(DIR, name);
  writeFileSync(file, rulesText);
  const r = loadConfigText(PLAIN(file, extra), 'smtpd.conf', { cwd: DIR });
  if (!r.config) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return { diagnostics: r.diagnostics.map(formatDiagnostic), loaded: withPolicyFiles(r.config) };
}

function tables(loaded: LoadedConfig): TableRegistry {
  const t = new TableRegistry();
  t.replace([...loaded.config.tables.values()].map((d) => tableFromDecl(d)));
  return t;
}

const SEED = `allow:192.0.2.0/24:ALL:ALL
allow:ALL:ALL:*@partner.example
noto:ALL:ALL:ALL:550 Relaying to %T denied
`;

test('allow relays exactly what it allows; smtpd.conf keeps local domains and its own rules', async () => {
  const { loaded } = load('seed', SEED);
  const { policy } = buildPolicy(loaded, { tables: tables(loaded), users: new SystemUsers(), local: new LocalNames('mx.test.example') });
  const decide = async (ip: string, to: string): Promise<string> => {
    const d = await policy.rcpt(facts(ip), tx('a@outside.example'), mbox(to));
    return d.kind === 'accept' ? `${d.action} ${d.rule}` : `${d.verdict.reply.code} ${d.verdict.reply.lines.join(' ')}`;
  };
  assert.equal(await decide('192.0.2.7', 'x@elsewhere.example'), `relay ${join(DIR, 'seed')}:1`);
  assert.equal(await decide('198.51.100.1', 'y@partner.example'), `relay ${join(DIR, 'seed')}:2`);
  assert.equal(await decide('198.51.100.1', 'x@elsewhere.example'), '550 Relaying to <x@elsewhere.example> denied');
  // Our own domain: smtpd.conf's rule decides (local delivery), not the grant.
  assert.equal(await decide('192.0.2.7', 'root@test.example'), 'local smtpd.conf:8');
  // The rules file runs first: what it refuses, smtpd.conf's own relay rule does not bring back.
  assert.equal(await decide('127.0.0.1', 'x@elsewhere.example'), '550 Relaying to <x@elsewhere.example> denied');
});

test('no rule matched in the rules file (Obtuse: allow) grants nothing: smtpd.conf decides', async () => {
  const { loaded } = load('partial', 'allow:192.0.2.0/24:ALL:ALL\n');
  const { policy } = buildPolicy(loaded, { tables: tables(loaded), users: new SystemUsers(), local: new LocalNames('mx.test.example') });
  const d = await policy.rcpt(facts('198.51.100.1'), tx('a@outside.example'), mbox('x@elsewhere.example'));
  assert.equal(d.kind === 'reject' && d.verdict.reply.lines.join(' '), 'Relaying denied');
});

test('open relay: warned for an open rules file, not for one that refuses what it does not allow', () => {
  const open = load('open', 'deny:192.0.2.66:ALL:ALL\nallow:ALL EXCEPT 10.0.0.0/8:ALL:ALL\n');
  assert.ok(open.loaded.files.warnings.some((w) => w.endsWith('open:2: this allow rule makes this server an open relay: anyone on the Internet can send mail through it (limit "from" to local or trusted networks, or require auth)')), open.loaded.files.warnings.join('\n'));
  const closed = load('closed', SEED);
  assert.deepEqual(closed.loaded.files.warnings, []);
  // smtpd.conf's own open rule is behind the rules file: closed by it, no warning; open without it.
  const anyRule = 'match from any for any action "relay"';
  assert.ok(!load('closed2', SEED, anyRule).diagnostics.some((d) => /open relay/.test(d)));
  assert.ok(load('through', 'allow:192.0.2.0/24:ALL:ALL\n', anyRule).diagnostics.some((d) => /open relay/.test(d)));
});

test('rulesOpenness', () => {
  const kind = (text: string): string => {
    const o = rulesOpenness(rules(text));
    return o.kind === 'open' ? `open:${o.rule.pos.line}` : o.kind;
  };
  assert.equal(kind(SEED), 'closed');
  assert.equal(kind('allow:ALL:ALL:ALL'), 'open:1');
  assert.equal(kind('allow:0/0:ALL:*@*'), 'open:1');
  assert.equal(kind('allow:KNOWN UNKNOWN:ALL:*'), 'open:1');
  assert.equal(kind('allow:ALL:ALL:*@example.com postmaster\nnoto_delay:ALL:ALL:ALL'), 'closed');
  assert.equal(kind('deny_delay:ALL:ALL:ALL\nallow:ALL:ALL:ALL'), 'closed');
  assert.equal(kind('noto:ALL:*@spam.example:ALL\nallow:10.0.0.0/8:ALL:ALL'), 'falls-through');
  assert.equal(kind('debug:ALL:ALL:ALL\nallow:ALL@ALL:ALL:ALL'), 'open:2');
});
