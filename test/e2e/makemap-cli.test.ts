/*
 * `makemap` and `newaliases` as real processes (dist/src/cli/makemap.js;
 * newaliases through `postern newaliases`, what the installed link runs):
 * round trips, seed 002's command lines, errors with FILE:LINE and the old
 * table left intact, bad flags.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { REPO, tempDir } from '../helpers/daemon.js';
import { run, type RunResult } from '../helpers/tools.js';
import { DbTable } from '../../src/table/table-db.js';
import { parseTableEntries } from '../../src/table/text-format.js';

const MAKEMAP = join(REPO, 'dist/src/cli/makemap.js');
const DIR = tempDir('postern-makemap-');
after(() => rmSync(DIR, { recursive: true, force: true }));
const NEWALIASES = join(DIR, 'newaliases');
symlinkSync(MAKEMAP, NEWALIASES);

const makemap = (args: string[], input?: string): Promise<RunResult> => run(process.execPath, [MAKEMAP, ...args], { input });
const newaliases = (args: string[]): Promise<RunResult> => run(process.execPath, [NEWALIASES, ...args]);

let n = 0;
function folder(): string {
  const d = join(DIR, `t${++n}`);
  mkdirSync(d, { recursive: true });
  return d;
}

const ALIASES = `# /etc/mail/aliases
root: calomel
postmaster:   root
staff: bob, alice,
\tcarol@example.net,
   "|/usr/local/bin/archive --list staff"
"mailer daemon": root          # a quoted key
bob+lists: /home/bob/lists
`;

describe('makemap', () => {
  test('round trip: text → compiled → -U text → compiled gives the same table', async () => {
    const d = folder();
    const src = join(d, 'aliases');
    writeFileSync(src, ALIASES);
    const r1 = await makemap(['-t', 'aliases', src]);
    assert.equal(r1.status, 0, r1.stderr);
    assert.equal(r1.stdout, '');
    assert.equal(r1.stderr, '');
    const db = `${src}.db`;
    assert.ok(existsSync(db), 'default output is FILE.db');

    const dump = await makemap(['-U', db]);
    assert.equal(dump.status, 0, dump.stderr);
    const original = parseTableEntries(ALIASES, src).map((e) => [e.key, e.value]);
    assert.deepEqual(
      parseTableEntries(dump.stdout, 'dump').map((e) => [e.key, e.value]),
      original,
    );
    assert.match(dump.stdout, /^root\tcalomel$/m);
    assert.match(dump.stdout, /^"mailer daemon"\troot$/m);

    writeFileSync(join(d, 'dump'), dump.stdout);
    const r2 = await makemap(['-t', 'aliases', '-o', join(d, 'again.db'), join(d, 'dump')]);
    assert.equal(r2.status, 0, r2.stderr);
    const dump2 = await makemap(['-U', join(d, 'again.db')]);
    assert.equal(dump2.stdout, dump.stdout);

    const t = new DbTable('aliases', db);
    assert.deepEqual(t.get('staff'), { kind: 'found', value: 'bob, alice, carol@example.net, "|/usr/local/bin/archive --list staff"' });
    t.close();
    assert.deepEqual(readdirSync(d).sort(), ['again.db', 'aliases', 'aliases.db', 'dump']);
  });

  test('seed 002: makemap -t aliases -o /etc/mail/aliases.db /etc/mail/aliases (in a temporary root)', async () => {
    const etc = join(folder(), 'etc/mail');
    mkdirSync(etc, { recursive: true });
    writeFileSync(join(etc, 'aliases'), 'root: calomel\n');
    const r = await makemap(['-t', 'aliases', '-o', join(etc, 'aliases.db'), join(etc, 'aliases')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await makemap(['-U', join(etc, 'aliases.db')])).stdout, 'root\tcalomel\n');

    writeFileSync(join(etc, 'virtual'), 'bob_smith@example.org:  robert\nsupport@example.org:    becky\nabuse@example.org:      bob\n');
    const v = await makemap(['-t', 'aliases', '-o', join(etc, 'virtual.db'), join(etc, 'virtual')]);
    assert.equal(v.status, 0, v.stderr);
    assert.equal((await makemap(['-U', join(etc, 'virtual.db')])).stdout, 'bob_smith@example.org\trobert\nsupport@example.org\tbecky\nabuse@example.org\tbob\n');
  });

  test('seed 002: the secrets map keeps its 0600 mode', async () => {
    const d = folder();
    const src = join(d, 'secrets');
    writeFileSync(src, 'smtp.gmail.com GMAIL_USERNAME@gmail.com:GMAIL_PASSWORD\n');
    chmodSync(src, 0o600);
    const r = await makemap(['-o', join(d, 'secrets.db'), src]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(statSync(join(d, 'secrets.db')).mode & 0o777, 0o600);
    chmodSync(join(d, 'secrets.db'), 0o640);
    assert.equal((await makemap(['-o', join(d, 'secrets.db'), src])).status, 0);
    assert.equal(statSync(join(d, 'secrets.db')).mode & 0o777, 0o640, 'a rebuilt table keeps the mode it was given');
  });

  test('a bad line: "makemap: FILE:LINE: message", exit 1, the old table intact', async () => {
    const d = folder();
    const src = join(d, 'aliases');
    writeFileSync(src, 'root: calomel\n');
    assert.equal((await makemap(['-t', 'aliases', src])).status, 0);
    const before = readFileSync(`${src}.db`);
    const bad: [string, string, RegExp][] = [
      ['root: calomel\nstaff: bob,\n  Mail/inbox\n', '2', /invalid entry for "staff": a file destination must be an absolute path/],
      ['root: calomel\nROOT: bob\n', '2', /duplicate entry for "root" \(first at line 1\)/],
      ['  root: calomel\n', '1', /continuation line without an entry/],
      ['root: calomel\npostmaster\n', '2', /missing value for "postmaster"/],
      ['root: error:250 ok\n', '1', /4xx or 5xx/],
    ];
    for (const [text, line, re] of bad) {
      writeFileSync(src, text);
      const r = await makemap(['-t', 'aliases', src]);
      assert.equal(r.status, 1, text);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.ok(lines[0]?.startsWith(`makemap: ${src}:${line}: `), r.stderr);
      assert.match(r.stderr, re);
      assert.ok(readFileSync(`${src}.db`).equals(before), 'old table unchanged');
    }
    assert.deepEqual(readdirSync(d).sort(), ['aliases', 'aliases.db'], 'no temporary file left behind');
  });

  test('-t set: keys only', async () => {
    const d = folder();
    writeFileSync(join(d, 'domains'), 'example.org\n*.example.net\n');
    assert.equal((await makemap(['-t', 'set', join(d, 'domains')])).status, 0);
    assert.equal((await makemap(['-U', join(d, 'domains.db')])).stdout, 'example.org\n*.example.net\n');
    writeFileSync(join(d, 'domains'), 'example.org yes\n');
    const r = await makemap(['-t', 'set', join(d, 'domains')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^makemap: .*domains:1: unexpected value after "example.org"/);
  });

  test('standard input, sendmail\'s "makemap dbtype file" form, -d', async () => {
    const d = folder();
    const r1 = await makemap(['-o', join(d, 'a.db'), '-'], 'k v\n');
    assert.equal(r1.status, 0, r1.stderr);
    assert.equal((await makemap(['-U', join(d, 'a.db')])).stdout, 'k\tv\n');
    const r2 = await makemap(['hash', join(d, 'access')], '192.0.2.1 REJECT\n');
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal((await makemap(['-U', join(d, 'access.db')])).stdout, '192.0.2.1\tREJECT\n');
    assert.equal((await makemap(['-d', 'btree', '-o', join(d, 'b.db'), '-'], 'x y\n')).status, 0);
    const bad = await makemap(['-d', 'gdbm', '-o', join(d, 'c.db'), '-'], 'x y\n');
    assert.equal(bad.status, 1);
    assert.equal(bad.stderr, "makemap: unsupported DB type 'gdbm' (one of: hash, btree, cdb)\n");
    const noOut = await makemap(['-'], 'x y\n');
    assert.equal(noOut.status, 1);
    assert.match(noOut.stderr, /-o is required/);
  });

  test('an empty map is built, with a warning', async () => {
    const d = folder();
    writeFileSync(join(d, 'empty'), '# nothing yet\n');
    const r = await makemap([join(d, 'empty')]);
    assert.equal(r.status, 0);
    assert.equal(r.stderr, `makemap: warning: empty map created: ${join(d, 'empty.db')}\n`);
  });

  test('missing files, -U on a text file: one line, exit 1', async () => {
    const d = folder();
    const missing = await makemap([join(d, 'nope')]);
    assert.equal(missing.status, 1);
    assert.equal(missing.stderr, `makemap: ${join(d, 'nope')}: no such file or directory\n`);
    writeFileSync(join(d, 'text'), 'a b\n');
    const u = await makemap(['-U', join(d, 'text')]);
    assert.equal(u.status, 1);
    assert.match(u.stderr, /^makemap: .*text: a text file, not a compiled table/);
  });

  test('unknown flags and bad usage: one line with the usage, exit 1', async () => {
    const cases: [string[], string][] = [
      [['-x', 'f'], 'makemap: unknown option -- x (usage: makemap [-hU] [-d dbtype] [-o dbfile] [-t aliases|set] file)\n'],
      [['-o'], 'makemap: option requires an argument -- o (usage: makemap [-hU] [-d dbtype] [-o dbfile] [-t aliases|set] file)\n'],
      [[], 'makemap: missing file (usage: makemap [-hU] [-d dbtype] [-o dbfile] [-t aliases|set] file)\n'],
      [['-t', 'hash', 'f'], "makemap: unsupported type 'hash' (aliases or set)\n"],
    ];
    for (const [args, want] of cases) {
      const r = await makemap(args);
      assert.equal(r.status, 1, args.join(' '));
      assert.equal(r.stderr, want);
    }
    const h = await makemap(['-h']);
    assert.equal(h.status, 0);
    assert.equal(h.stdout, 'usage: makemap [-hU] [-d dbtype] [-o dbfile] [-t aliases|set] file\n');
  });
});

describe('newaliases', () => {
  test('seed 002: "/etc/mail/aliases: 3 aliases" for the config\'s aliases map (legacy db source)', async () => {
    const d = folder();
    writeFileSync(join(d, 'aliases'), 'root: calomel\npostmaster: root\nabuse: root\n');
    const conf = join(d, 'smtpd.conf');
    writeFileSync(conf, `listen on lo0\n\nmap "aliases" { source db "${d}/aliases.db" }\n\naccept for local deliver to mbox\naccept for all relay\n`);
    const r = await newaliases(['-f', conf]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${d}/aliases: 3 aliases\n`);
    assert.equal((await makemap(['-U', join(d, 'aliases.db')])).stdout, 'root\tcalomel\npostmaster\troot\nabuse\troot\n');
  });

  test('a modern "table aliases file:…" is checked and compiled beside it', async () => {
    const d = folder();
    writeFileSync(join(d, 'aliases'), 'root: calomel\n');
    const conf = join(d, 'smtpd.conf');
    writeFileSync(conf, `table aliases file:${d}/aliases\naction "local" mbox alias <aliases>\nmatch for local action "local"\n`);
    const r = await newaliases(['-f', conf]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${d}/aliases: 1 aliases\n`);
    assert.ok(existsSync(join(d, 'aliases.db')));
  });

  test('`postern newaliases` (what the installed newaliases runs) is the same command', async () => {
    const d = folder();
    writeFileSync(join(d, 'aliases'), 'root: calomel\n');
    const conf = join(d, 'smtpd.conf');
    writeFileSync(conf, `map "aliases" { source db "${d}/aliases.db" }\naccept for local deliver to mbox\n`);
    const r = await run(process.execPath, [join(REPO, 'bin/postern.js'), 'newaliases', '-f', conf]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${d}/aliases: 1 aliases\n`);
  });

  test('a bad aliases file: "newaliases: FILE:LINE: message", exit 1, old table intact', async () => {
    const d = folder();
    writeFileSync(join(d, 'aliases'), 'root: calomel\n');
    const conf = join(d, 'smtpd.conf');
    writeFileSync(conf, `map "aliases" { source db "${d}/aliases.db" }\naccept for local deliver to mbox\n`);
    assert.equal((await newaliases(['-f', conf])).status, 0);
    const before = readFileSync(join(d, 'aliases.db'));
    writeFileSync(join(d, 'aliases'), 'root: calomel\nstaff: |\n');
    const r = await newaliases(['-f', conf]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `newaliases: ${d}/aliases:2: invalid entry for "staff": empty command after "|"\n`);
    assert.ok(readFileSync(join(d, 'aliases.db')).equals(before));
  });

  test('a configuration with errors, bad flags', async () => {
    const d = folder();
    const conf = join(d, 'smtpd.conf');
    writeFileSync(conf, 'lisen on lo0\n');
    const r = await newaliases(['-f', conf]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /smtpd\.conf:1:1: .*lisen/);
    assert.match(r.stderr, /newaliases: .*smtpd\.conf: configuration has errors\n$/);
    const x = await newaliases(['-t', 'aliases']);
    assert.equal(x.status, 1);
    assert.equal(x.stderr, 'newaliases: unknown option -- t (usage: newaliases [-h] [-f config])\n');
  });
});
