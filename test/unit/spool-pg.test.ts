/*
 * What the PostgreSQL spool does beyond the shared contract, on a real
 * PostgreSQL (test/helpers/postgres.ts): schema versions (never migrated
 * by open()), large bodies in chunks, leases shared by nodes in bounded
 * batches, taken over after they expire, reported lost to the old holder,
 * given back at close; and moving a file spool into it without loss.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { isSpoolError } from '../../src/spool/errors.js';
import { FsSpool } from '../../src/spool/fs/fs-spool.js';
import { moveSpool } from '../../src/spool/move.js';
import { PgSpool, type PgSpoolOptions } from '../../src/spool/pg/pg-spool.js';
import { SCHEMA_VERSION, migrate, schemaVersion } from '../../src/spool/pg/schema.js';
import type { EnvelopeDraft, Spool } from '../../src/spool/spool.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';

let server: PgServer;
let admin: pg.Pool;

before(async () => {
  server = await startPostgres();
  admin = new pg.Pool({ connectionString: server.url, max: 2 });
});

after(async () => {
  await admin?.end();
  server?.cleanup();
});

const draft = (to: string[]): EnvelopeDraft => ({
  sender: 's@example.org',
  recipients: to.map((address) => ({ address, action: 'relay', dest: { kind: 'remote' } })),
  body: '8BITMIME',
  smtputf8: false,
  arrival: 1_700_000_000_000,
  client: { address: '192.0.2.1', port: 1, proto: 'ESMTP', listener: 'x' },
});

async function put(spool: Spool, body: string | Buffer, to = ['a@example.org']): Promise<string> {
  const w = await spool.createMessage();
  w.write(Buffer.isBuffer(body) ? body : Buffer.from(body));
  return (await w.commit(draft(to))).msgid;
}

async function text(spool: Spool, msgid: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of spool.openBody(msgid)) parts.push(b as Buffer);
  return Buffer.concat(parts);
}

function node(name: string, extra: Partial<PgSpoolOptions> = {}): PgSpool {
  return new PgSpool({ url: server.url, node: name, ...extra });
}

test('open() refuses a database that was not migrated; migrate() is versioned and idempotent', async () => {
  const s = node('n1');
  await assert.rejects(s.open(), (e) => isSpoolError(e, 'VERSION') && /postern db migrate/.test((e as Error).message));
  await s.close();
  assert.equal(await schemaVersion(admin), 0);
  assert.deepEqual(await migrate(admin), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
  assert.deepEqual(await migrate(admin), []);
  assert.equal(await schemaVersion(admin), SCHEMA_VERSION);
});

test('a body larger than memory goes in chunks and reads back whole, also as a file', async () => {
  const s = node('n1', { spillBytes: 300 * 1024 });
  await s.open();
  try {
    const big = Buffer.alloc(1_500_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const w = await s.createMessage();
    for (let i = 0; i < big.length; i += 100_000) {
      w.write(big.subarray(i, i + 100_000));
      await w.drain();
    }
    const f = await w.bodyFile();
    const { readFileSync } = await import('node:fs');
    assert.ok(readFileSync(join(f.dir, f.name)).equals(big));
    const env = await w.commit(draft(['a@example.org']));
    assert.equal(env.size, big.length);
    assert.ok((await text(s, env.msgid)).equals(big));
    const r = await admin.query<{ n: string }>('SELECT count(*) AS n FROM postern_body_chunk WHERE msgid = $1', [env.msgid]);
    assert.equal(Number(r.rows[0]?.n), Math.ceil(big.length / (256 * 1024)));
    await s.remove(env.msgid);
  } finally {
    await s.close();
  }
});

test('leases: committed work is its node\'s; free work is shared in bounded batches; nobody takes a live lease', async () => {
  await admin.query('TRUNCATE postern_message CASCADE');
  const plain = node('import', { leases: false });
  await plain.open();
  const free: string[] = [];
  for (let i = 0; i < 10; i++) free.push(await put(plain, `free ${i}\r\n`));
  await plain.close();
  const a = node('a', { leases: { ttlMs: 60_000, batch: 4 } });
  const b = node('b', { leases: { ttlMs: 60_000, batch: 4 } });
  await a.open();
  await b.open();
  try {
    const own = await put(a, 'a\'s own\r\n');
    const heldA = await a.list();
    assert.ok(heldA.includes(own), 'what a node commits is its own');
    assert.equal(heldA.length, 1 + 4, 'its own, and a bounded batch of free work');
    const heldB = await b.list();
    assert.equal(heldB.length, 4, 'a bounded batch');
    assert.equal(new Set([...heldA, ...heldB]).size, heldA.length + heldB.length, 'no message held twice');
    await a.leases?.renew();
    await b.leases?.renew();
    await a.leases?.renew();
    assert.equal(a.leases?.nodes(), 2, 'the renewals are heartbeats: two nodes share the per-destination limits');
    const all = new Set([...(await a.list()), ...(await b.list())]);
    assert.equal(all.size, 11, 'after enough polls, every message is held by one node');
    assert.ok(free.every((m) => all.has(m)));
  } finally {
    await a.close();
    await b.close();
  }
  const r = await admin.query<{ n: string }>('SELECT count(*) AS n FROM postern_message WHERE lease_holder IS NOT NULL');
  assert.equal(Number(r.rows[0]?.n), 0, 'close() gives the leases back');
});

test('leases: an expired lease goes to another node, and the old holder hears it lost', async () => {
  await admin.query('TRUNCATE postern_message CASCADE');
  const a = node('a', { leases: { ttlMs: 1_000, batch: 10 } });
  const b = node('b', { leases: { ttlMs: 1_000, batch: 10 } });
  await a.open();
  await b.open();
  try {
    const m = await put(a, 'x\r\n');
    assert.deepEqual(await b.list(), [], 'a live lease is not taken');
    a.leases?.stop(); // a stops renewing (as if cut off)
    const lost: string[] = [];
    a.leases?.onLost((ids) => lost.push(...ids));
    const deadline = Date.now() + 10_000;
    let taken: string[] = [];
    while (taken.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      taken = await b.list();
    }
    assert.deepEqual(taken, [m], 'b takes it after the lease expired');
    assert.equal(a.leases?.fresh(), false, 'a knows its leases are stale');
    await a.leases?.renew();
    assert.deepEqual(lost, [m], 'a hears that it lost it');
    assert.deepEqual(a.leases?.holding(), []);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a file spool moves into the shared queue: bodies, envelopes and outcomes, nothing left behind', async () => {
  await admin.query('TRUNCATE postern_message CASCADE');
  const root = mkdtempSync(join(tmpdir(), 'postern-move-'));
  try {
    const fs = new FsSpool({ root, journal: false });
    await fs.open();
    const m1 = await put(fs, 'one\r\n', ['a@example.org', 'b@example.org']);
    const m2 = await put(fs, 'two\r\n');
    const e1 = (await fs.load(m1)).envelope;
    await fs.appendOutcome(e1.recipients[0]!.evpid, { kind: 'delivered', at: 5, detail: '2.0.0 ok' });
    const to = node('import', { leases: false });
    await to.open();
    const lines: string[] = [];
    const r = await moveSpool(fs, to, (l) => lines.push(l));
    assert.deepEqual(r, { moved: 2, failed: 0 }, lines.join('\n'));
    assert.deepEqual(await fs.list(), []);
    const moved = await to.list();
    assert.equal(moved.length, 2);
    const bodies = (await Promise.all(moved.map((m) => text(to, m)))).map(String).sort();
    assert.deepEqual(bodies, ['one\r\n', 'two\r\n']);
    const withTwo = await Promise.all(moved.map((m) => to.load(m)));
    const one = withTwo.find((s) => s.envelope.recipients.length === 2);
    assert.ok(one);
    assert.deepEqual(one.envelope.recipients.map((x) => x.address), ['a@example.org', 'b@example.org']);
    assert.deepEqual(one.outcomes.get(one.envelope.recipients[0]!.evpid)?.map((o) => o.kind), ['delivered']);
    assert.equal(one.outcomes.get(one.envelope.recipients[1]!.evpid), undefined);
    void m2;
    await to.close();
    await fs.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
