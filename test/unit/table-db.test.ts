/*
 * Compiled tables: the cdb format, the atomic writer, the `db` backend —
 * including files damaged or replaced under a running reader.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildCdb, cdbHash, CdbReader } from '../../src/table/cdb.js';
import { CompiledTable, DbTable, writeCompiledTable } from '../../src/table/table-db.js';
import { tableFromDecl } from '../../src/table/table-static.js';
import { matchDomain } from '../../src/table/match.js';

const DIR = mkdtempSync(join(tmpdir(), 'postern-tabledb-'));
after(() => rmSync(DIR, { recursive: true, force: true }));
let n = 0;
const file = (name = 't') => join(DIR, `${name}-${++n}.db`);
const rec = (k: string, v: string): [Buffer, Buffer] => [Buffer.from(k), Buffer.from(v)];

describe('cdb', () => {
  test('the hash of the format (djb: h = h * 33 ^ c from 5381)', () => {
    assert.equal(cdbHash(Buffer.from('')), 5381);
    assert.equal(cdbHash(Buffer.from('a')), ((5381 * 33) ^ 97) >>> 0);
  });

  test('byte for byte what the reference tool writes', () => {
    // sha256 of `printf '+3,5:foo->hello\n+3,3:bar->baz\n+1,1:a->1\n\n' | cdb -c v.cdb` (tinycdb 0.78)
    const bytes = Buffer.concat(buildCdb([rec('foo', 'hello'), rec('bar', 'baz'), rec('a', '1')]));
    assert.equal(bytes.length, 2136);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), '2689e2ad5bb9b00fb87008692d5374f96ec9c77c20cca693b135241d9704335a');
  });

  test('5000 records: every key found, others not, file order kept', () => {
    const p = file('cdb');
    const records = Array.from({ length: 5000 }, (_, i) => rec(`key${i}`, `value ${i}`));
    writeFileSync(p, Buffer.concat(buildCdb(records)));
    const r = CdbReader.open(p);
    try {
      for (const [k, v] of records) assert.equal(r.get(k)?.toString(), v.toString());
      assert.equal(r.get(Buffer.from('key5000')), undefined);
      assert.equal(r.get(Buffer.from('')), undefined);
      assert.deepEqual([...r.entries()].map((e) => e.key.toString()), records.map(([k]) => k.toString()));
    } finally {
      r.close();
    }
  });

  test('an empty database', () => {
    const p = file('cdb');
    writeFileSync(p, Buffer.concat(buildCdb([])));
    const r = CdbReader.open(p);
    assert.equal(r.get(Buffer.from('x')), undefined);
    assert.deepEqual([...r.entries()], []);
    r.close();
  });

  test('a damaged file is refused, never misread', () => {
    const p = file('cdb');
    writeFileSync(p, Buffer.concat(buildCdb([rec('a', 'b')])));
    const good = readFileSync(p);
    writeFileSync(p, good.subarray(0, 100));
    assert.throws(() => CdbReader.open(p), /damaged compiled table: shorter than a cdb header/);
    writeFileSync(p, good.subarray(0, good.length - 4));
    assert.throws(() => CdbReader.open(p), /damaged compiled table/);
    writeFileSync(p, Buffer.concat([good, Buffer.from('junk')]));
    assert.throws(() => CdbReader.open(p), /bytes after the last hash table/);
  });
});

describe('compiled tables', () => {
  const entries = [
    { key: 'root', value: 'calomel' },
    { key: 'staff', value: 'bob, alice' },
    { key: 'ünïcode', value: 'välue' },
  ];

  test('written atomically and read back', () => {
    const p = file();
    writeCompiledTable(p, entries, 'aliases');
    const t = new DbTable('aliases', p);
    assert.equal(t.error, undefined);
    assert.deepEqual(t.get('root'), { kind: 'found', value: 'calomel' });
    assert.deepEqual(t.get('ünïcode'), { kind: 'found', value: 'välue' });
    assert.deepEqual(t.get('nobody'), { kind: 'notfound' });
    assert.deepEqual(t.get('\0postern-table'), { kind: 'notfound' }, 'the description record is no entry');
    assert.deepEqual(t.keys(), ['root', 'staff', 'ünïcode']);
    assert.deepEqual(t.meta, { format: 'postern-table', version: 1, type: 'aliases', entries: 3 });
    assert.deepEqual(readdirSync(DIR).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
    t.close();
  });

  test('a rebuilt table keeps the mode the administrator gave it', () => {
    const p = file();
    writeCompiledTable(p, entries, 'map', { mode: 0o600 });
    assert.equal(statSync(p).mode & 0o777, 0o600, 'a new table takes the given mode');
    chmodSync(p, 0o640);
    writeCompiledTable(p, entries.slice(0, 1), 'map', { mode: 0o600 });
    assert.equal(statSync(p).mode & 0o777, 0o640);
  });

  test('a failed build leaves the old table intact', () => {
    const p = file();
    writeCompiledTable(p, entries, 'map');
    const before = readFileSync(p);
    assert.throws(() => writeCompiledTable(p, [{ key: 'a', value: 'b\0c' }], 'map'), /NUL/);
    assert.ok(readFileSync(p).equals(before));
    assert.throws(() => writeCompiledTable(join(DIR, 'no-such-dir', 'x.db'), entries, 'map'), /ENOENT/);
    assert.deepEqual(readdirSync(DIR).filter((f) => f.endsWith('.tmp')), []);
  });

  test('a file replaced by rename is seen after reload(), not before', () => {
    const p = file();
    writeCompiledTable(p, [{ key: 'k', value: 'old' }], 'map');
    const t = new DbTable('t', p);
    const next = file();
    writeCompiledTable(next, [{ key: 'k', value: 'new' }], 'map');
    renameSync(next, p);
    assert.deepEqual(t.get('k'), { kind: 'found', value: 'old' }, 'the open file is still consistent');
    t.reload();
    assert.deepEqual(t.get('k'), { kind: 'found', value: 'new' });
    t.close();
  });

  test('a file truncated in place: lookups fail (defer), the process does not crash', () => {
    const p = file();
    writeCompiledTable(p, Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })), 'map');
    const t = new DbTable('t', p);
    assert.equal(t.get('k7').kind, 'found');
    truncateSync(p, 2100);
    const r = t.get('k150');
    assert.equal(r.kind, 'error');
    assert.match(r.kind === 'error' ? r.reason : '', /damaged compiled table|short read/);
    assert.throws(() => t.reload(), /damaged compiled table/);
    t.close();
  });

  test('reload of a bad file keeps the old contents and throws PATH: reason', () => {
    const p = file();
    writeCompiledTable(p, [{ key: 'k', value: 'v' }], 'map');
    const t = new DbTable('t', p);
    const saved = readFileSync(p);
    const replace = (content: string | Buffer): void => {
      // as any editor or tool that saves safely: a new file renamed over the old one
      writeFileSync(`${p}.new`, content);
      renameSync(`${p}.new`, p);
    };
    replace('k v\n');
    assert.throws(() => t.reload(), new RegExp(`^Error: ${p}: a text file, not a compiled table`));
    assert.deepEqual(t.get('k'), { kind: 'found', value: 'v' });
    rmSync(p);
    assert.throws(() => t.reload(), /no such file/);
    assert.deepEqual(t.get('k'), { kind: 'found', value: 'v' });
    replace(saved);
    t.reload();
    assert.deepEqual(t.get('k'), { kind: 'found', value: 'v' });
    t.close();
  });

  test('a missing file: the table is unusable, lookups defer, the error says how to build it', () => {
    const t = new DbTable('aliases', join(DIR, 'missing.db'));
    assert.match(t.error ?? '', /missing\.db: no such file \(build it with makemap/);
    assert.equal(t.get('root').kind, 'error');
    assert.ok('error' in (t.keys() as object));
  });

  test('a cdb file that makemap did not write is refused', () => {
    const p = file();
    writeFileSync(p, Buffer.concat(buildCdb([rec('a', 'b')])));
    assert.throws(() => CompiledTable.open(p), /not a Postern compiled table/);
    const q = file();
    writeFileSync(q, Buffer.concat(buildCdb([rec('\0postern-table', JSON.stringify({ format: 'postern-table', version: 99, type: 'map', entries: 0 }))])));
    assert.throws(() => CompiledTable.open(q), /format version 99 is not supported/);
  });

  test('the db declaration kind reads compiled tables; services work on them', () => {
    const p = file();
    writeCompiledTable(p, [{ key: 'example.org', value: '' }, { key: '*.example.net', value: '' }], 'set');
    const t = tableFromDecl({ name: 'domains', pos: { file: 'smtpd.conf', line: 1, col: 1 }, kind: 'db', path: p });
    assert.ok(t instanceof DbTable);
    assert.equal(matchDomain(t, 'Example.ORG'), true);
    assert.equal(matchDomain(t, 'mx.example.net'), true);
    assert.equal(matchDomain(t, 'example.net'), false);
  });
});
