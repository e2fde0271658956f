/*
 * config/policy-files.ts: the policy files read with the configuration,
 * every error of both as FILE:LINE: message, smtpserver.conf's PARAMs
 * merged into the one configuration (only the PARAMs the file gives), and
 * the result deeply frozen.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText, formatDiagnostic } from '../../src/config/load.js';
import type { Config } from '../../src/config/model.js';
import { withPolicyFiles, PolicyFileError, type LoadedConfig } from '../../src/config/policy-files.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-cpf-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

function config(extra = ''): Config {
  const text = `queue path "${DIR}/spool"
hostname "mx.test.example"
listen on 127.0.0.1 port 0
listen on 127.0.0.1 port 25
smtp max-message-size 1M
smtp limit max-rcpt 500
smtp vrfy
smtp disable SMTPUTF8
${extra}
action "local" mbox
match from any for domain "test.example" action "local"
`;
  const r = loadConfigText(text, 'test.conf', { cwd: DIR });
  if (!r.config) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.config;
}

/** smtpd.conf naming a smtpserver.conf with `zmailer`, loaded with it. */
function load(name: string, zmailer: string): { smtpd: Config; loaded: LoadedConfig } {
  writeFileSync(join(DIR, `${name}.zm`), zmailer);
  const smtpd = config(`smtpserver-conf "${DIR}/${name}.zm"\n`);
  return { smtpd, loaded: withPolicyFiles(smtpd, { env: {} }) };
}

test('without policy files the configuration is smtpd.conf\'s, the same object', () => {
  const c = config();
  const l = withPolicyFiles(c);
  assert.equal(l.config, c);
  assert.equal(l.files.rules, undefined);
  assert.equal(l.files.zmailer, undefined);
});

test('a ZMailer file changes only the smtp options whose PARAMs it gives, in the one configuration', () => {
  const { smtpd: c, loaded } = load('merge', 'PARAM RcptLimitCount 200\nPARAM NoDSN\nPARAM help hello\nPARAM maxsize 0\n');
  const s = loaded.config.smtp;
  assert.equal(s.maxRcpt, 200);
  assert.equal(s.maxMessageSize, 1024 * 1024, 'maxsize 0 (no limit in ZMailer) keeps smtpd.conf\'s limit');
  assert.equal(s.vrfy, true, 'no VRFYcmd/no-vrfycmd: smtpd.conf decides');
  assert.equal(s.maxUnknownCommands, c.smtp.maxUnknownCommands);
  assert.deepEqual([...s.disabledExtensions].sort(), ['DSN', 'SMTPUTF8']);
  assert.deepEqual(s.help, ['hello']);
  assert.equal(loaded.config.queue.minFreeSpace, c.queue.minFreeSpace, 'min-availspace not given');
  assert.equal(loaded.files.zmailer?.rcptLimitCount, 200, 'the parsed file comes with the configuration');
  const g = load('merge2', 'PARAM maxsize 5000\nPARAM no-vrfycmd\nPARAM min-availspace 2000\nPARAM max-unknown-commands 4\n').loaded.config;
  assert.equal(g.smtp.maxMessageSize, 5000);
  assert.equal(g.smtp.vrfy, false);
  assert.equal(g.smtp.maxUnknownCommands, 4);
  assert.equal(g.queue.minFreeSpace, 2000 * 1024);
});

test('AUTH PARAMs: smtpd.conf\'s auth options, and smtp-auth offers AUTH on listeners without it (not port 25 with no-smtp-auth-on-25)', () => {
  const { loaded } = load('auth', 'PARAM smtp-auth\nPARAM no-smtp-auth-on-25\nPARAM AUTH-LOGIN-also-without-TLS\nPARAM auth-failrate 7\nPARAM smtp-auth-username-prompt Who\n');
  const c = loaded.config;
  assert.deepEqual(c.listeners.map((l) => `${l.port} ${l.auth}`), ['0 optional', '25 none']);
  assert.equal(c.smtp.authWithoutTls, true);
  assert.equal(c.smtp.authFailRate, 7);
  assert.equal(c.smtp.authUsernamePrompt, 'Who');
});

test('the loaded configuration is deeply frozen: no nested object changes, no Set or Map takes a member', () => {
  const { loaded } = load('frozen', 'PARAM NoPIPELINING\nPARAM smtp-auth\nPARAM help hi\n*.example  veS\n');
  const c = loaded.config;
  const zm = loaded.files.zmailer;
  assert.ok(zm);
  for (const o of [loaded, loaded.files, c, c.smtp, c.queue, c.listeners, c.listeners[0], c.listeners[0]?.pos, c.smtp.help, zm, zm.auth, zm.heloPatterns, zm.heloPatterns[0], zm.heloPatterns[0]?.pos]) {
    assert.ok(Object.isFrozen(o), JSON.stringify(o));
  }
  assert.throws(() => {
    (c.smtp as { maxRcpt: number }).maxRcpt = 1;
  }, TypeError);
  assert.throws(() => {
    (c.queue as { minFreeSpace: number }).minFreeSpace = 1;
  }, TypeError);
  assert.throws(() => {
    (c.listeners[0] as { auth: string }).auth = 'none';
  }, TypeError);
  assert.throws(() => (c.smtp.help as string[]).push('more'), TypeError);
  assert.throws(() => (c.smtp.disabledExtensions as Set<string>).add('SIZE'), TypeError);
  assert.throws(() => (c.smtp.disabledExtensions as Set<string>).delete('PIPELINING'), TypeError);
  assert.throws(() => (zm.disabledExtensions as Set<string>).add('DSN'), TypeError);
  const action = zm.heloPatterns[0]?.action;
  assert.ok(action?.kind === 'style');
  assert.throws(() => (action.flags as Set<string>).add('R'), TypeError);
  assert.throws(() => (c.tables as Map<string, unknown>).set('x', {}), TypeError);
  assert.deepEqual([...c.smtp.disabledExtensions].sort(), ['PIPELINING', 'SMTPUTF8']);
  assert.equal(c.smtp.maxRcpt, 500);
});

test('every error of both files, as FILE:LINE: message; warnings kept apart', () => {
  writeFileSync(join(DIR, 'bad.zm'), 'PARAM maxsise 1\n  PARAM indented 1\n');
  writeFileSync(join(DIR, 'bad.rules'), 'permit:ALL:ALL:ALL\n');
  const c = config(`smtpserver-conf "${DIR}/bad.zm"\nrules "${DIR}/bad.rules"\n`);
  assert.throws(
    () => withPolicyFiles(c),
    (e: Error) => {
      assert.ok(e instanceof PolicyFileError);
      const lines = e.message.split('\n');
      assert.equal(lines.length, 2, e.message);
      assert.match(lines[0] ?? '', new RegExp(`^${DIR}/bad\\.rules:1: unknown action "permit"`));
      assert.match(lines[1] ?? '', new RegExp(`^${DIR}/bad\\.zm:1: .*maxsise`));
      return true;
    },
  );
  const missing = config(`rules "${DIR}/nowhere"\n`);
  assert.throws(() => withPolicyFiles(missing), /test\.conf:\d+: rules ".*nowhere": ENOENT/);
  writeFileSync(join(DIR, 'warn.zm'), '  PARAM indented 1\n');
  const w = withPolicyFiles(config(`smtpserver-conf "${DIR}/warn.zm"\n`));
  assert.equal(w.files.warnings.length, 1);
  assert.match(w.files.warnings[0] ?? '', /warn\.zm:1: warning: line starts with white space/);
});
