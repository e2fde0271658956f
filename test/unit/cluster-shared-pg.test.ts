/*
 * The cluster's shared state on a real PostgreSQL (test/helpers/
 * postgres.ts, on 127.0.24.1), below the daemon: a version-1 database
 * upgraded to version 2 by migrate() keeps its queue; smtpctl's actions on
 * messages no node holds are done in the database under row locks, and on
 * messages another node holds become a request naming it; rate counts
 * reach the other node at the next sync; TLS-RPT counts of two nodes make
 * one report, sent by one node, after the grace time; the MTA-STS cache is
 * shared, and answers from memory once the database is gone.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { ClusterQueueControl } from '../../src/cluster/queue-control.js';
import { ClusterRateCounters } from '../../src/cluster/rates.js';
import { PgSpool } from '../../src/spool/pg/pg-spool.js';
import { SCHEMA_VERSION, migrate, schemaVersion } from '../../src/spool/pg/schema.js';
import { PgStsCache } from '../../src/transport-security/sts-cache-pg.js';
import { clusterReports } from '../../src/transport-security/tlsrpt-pg.js';
import { TlsRptStore } from '../../src/transport-security/tlsrpt-store.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';

let server: PgServer;
let admin: pg.Pool;

before(async () => {
  server = await startPostgres({ host: '127.0.24.1' });
  admin = new pg.Pool({ connectionString: server.url, max: 2 });
  // The last test stops the server: idle connections then end with an error, expected.
  admin.on('error', () => undefined);
});

after(async () => {
  await admin?.end().catch(() => undefined);
  server?.cleanup();
});

const rows = async <R extends Record<string, unknown>>(sql: string, args: unknown[] = []): Promise<R[]> => (await admin.query<R>(sql, args)).rows;

test('a version-1 database is upgraded to the current version by migrate(), its queue kept', async () => {
  assert.deepEqual(await migrate(admin, () => undefined, 1), [1]);
  await admin.query(`INSERT INTO postern_message (msgid, state, origin) VALUES ('0000beef', 'writing', 'old')`);
  const applied = await migrate(admin);
  assert.deepEqual(applied, Array.from({ length: SCHEMA_VERSION - 1 }, (_, i) => i + 2));
  assert.equal(await schemaVersion(admin), SCHEMA_VERSION);
  assert.equal((await rows(`SELECT 1 FROM postern_message WHERE msgid = '0000beef'`)).length, 1);
  await admin.query(`DELETE FROM postern_message`);
});

test('smtpctl actions: done in the database for messages no node holds, asked of the node holding a lease', async () => {
  const spool = new PgSpool({ url: server.url, node: 'tool' });
  await spool.open();
  const put = async (to: string[]): Promise<{ msgid: string; evpids: string[] }> => {
    const w = await spool.createMessage();
    w.write(Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    const env = await w.commit({ sender: 's@example.org', recipients: to.map((address) => ({ address, action: 'relay', dest: { kind: 'remote' as const } })), body: '8BITMIME', smtputf8: false, arrival: Date.now(), client: { address: '192.0.2.1', port: 1, proto: 'ESMTP', listener: 'x' } });
    return { msgid: env.msgid, evpids: env.recipients.map((r) => r.evpid) };
  };
  const applied: string[] = [];
  const q = new ClusterQueueControl({ pool: admin, node: 'n1', pollMs: 1000, apply: async (a, t) => (applied.push(`${a} ${t}`), 0), log: () => undefined });
  try {
    const free = await put(['a@example.org', 'b@example.org']);
    await admin.query('UPDATE postern_message SET lease_holder = NULL, lease_until = NULL WHERE msgid = $1', [free.msgid]);
    const kinds = async (msgid: string): Promise<string[]> => (await rows<{ k: string }>(`SELECT outcome ->> 'kind' AS k FROM postern_outcome WHERE msgid = $1 ORDER BY id`, [msgid])).map((r) => r.k);

    assert.deepEqual(await q.act('hold', free.msgid), { found: true, direct: 2, asked: [] });
    assert.deepEqual(await kinds(free.msgid), ['held', 'held']);
    assert.deepEqual(await q.act('release', free.msgid), { found: true, direct: 2, asked: [] });
    assert.deepEqual(await q.act('remove', free.evpids[0] as string), { found: true, direct: 1, asked: [] });
    assert.deepEqual(await kinds(free.msgid), ['held', 'held', 'released', 'released', 'failed']);
    // What the next node to claim it reads: the held and removed records, as the scheduler wrote them.
    const loaded = await spool.load(free.msgid);
    assert.equal(loaded.outcomes.get(free.evpids[0] as string)?.at(-1)?.kind, 'failed');
    assert.deepEqual(await q.act('remove', free.msgid), { found: true, direct: 2, asked: [] });
    assert.equal((await rows(`SELECT 1 FROM postern_message WHERE msgid = $1`, [free.msgid])).length, 0, 'removed: gone with its outcomes');

    const held = await put(['c@example.org']);
    await admin.query(`UPDATE postern_message SET lease_holder = 'n9', lease_until = now() + interval '1 minute' WHERE msgid = $1`, [held.msgid]);
    assert.deepEqual(await q.act('hold', held.msgid), { found: true, direct: 0, asked: [{ node: 'n9', messages: 1 }] });
    assert.deepEqual(await kinds(held.msgid), [], 'nothing written for a message another node holds');
    assert.deepEqual(await rows(`SELECT action, target, origin FROM postern_request`), [{ action: 'hold', target: held.msgid, origin: 'n1' }]);

    assert.deepEqual(await q.act('remove', 'abcdef12'), { found: false, direct: 0, asked: [] });
  } finally {
    await spool.close();
    await admin.query('DELETE FROM postern_message; DELETE FROM postern_request');
  }
});

test('rate counts: a key over its limit on one node is over it on the other after a sync', async () => {
  const a = new ClusterRateCounters(admin);
  const b = new ClusterRateCounters(admin);
  const now = Date.now();
  for (let i = 0; i < 4; i++) a.hit('k', 3_600_000, now, 3);
  assert.equal(b.hit('k', 3_600_000, now, 3), 1, 'not shared yet');
  await a.sync();
  await b.sync();
  assert.ok(b.hit('k', 3_600_000, now, 3) > 3, 'over the limit on b too');
  assert.equal(b.hit('other', 3_600_000, now, 3), 1);
});

test('TLS-RPT: two nodes\' counts of a day are sent once, merged, by one node, after the grace time', async () => {
  const day = Date.UTC(2026, 0, 10, 12);
  const end = Date.UTC(2026, 0, 11);
  const policy = { type: 'sts' as const, strings: ['version: STSv1', 'mode: enforce'], mxHost: ['mx.example.org'] };
  let clock = day;
  const a = new TlsRptStore(undefined, () => clock);
  const b = new TlsRptStore(undefined, () => clock);
  a.record({ domain: 'example.org', policy });
  a.record({ domain: 'example.org', policy, failure: { resultType: 'certificate-expired', receivingMx: 'mx.example.org' } });
  b.record({ domain: 'example.org', policy });
  b.record({ domain: 'example.org', policy, failure: { resultType: 'certificate-expired', receivingMx: 'mx.example.org' } });
  const sent: { node: string; day: string; domain: string; success: number; failure: number; failures: number }[] = [];
  const run = (node: string, local: TlsRptStore, at: number): Promise<void> => {
    clock = at;
    return clusterReports({ pool: admin, node, local, log: () => undefined, now: () => at }, async (store) => {
      for (const d of store.finishedDays()) {
        for (const [domain, counts] of store.day(d)) {
          for (const c of counts) sent.push({ node, day: d, domain, success: c.success, failure: c.failure, failures: c.failures[0]?.count ?? 0 });
          store.forget(d, domain);
        }
      }
    });
  };
  await run('a', a, end + 3_600_000);
  await run('b', b, end + 5_400_000);
  assert.deepEqual(sent, [], 'within the grace time nothing is sent');
  assert.equal(a.finishedDays().length + b.finishedDays().length, 0, 'both nodes pushed their counts');
  assert.equal((await rows('SELECT 1 FROM postern_tlsrpt')).length, 2);
  await run('a', a, end + 3 * 3_600_000);
  await run('b', b, end + 3 * 3_600_000);
  assert.deepEqual(sent, [{ node: 'a', day: '2026-01-10', domain: 'example.org', success: 2, failure: 2, failures: 2 }]);
  assert.equal((await rows('SELECT 1 FROM postern_tlsrpt')).length, 0, 'sent: the rows are gone');

  // The database away: the node sends its own counts, as a single node does.
  clock = day;
  const c = new TlsRptStore(undefined, () => clock);
  c.record({ domain: 'example.net', policy });
  clock = end + 60_000;
  const down = { query: async () => Promise.reject(new Error('connection refused')) } as unknown as pg.Pool;
  const own: string[] = [];
  await clusterReports({ pool: down, node: 'c', local: c, log: () => undefined, now: () => end + 60_000 }, async (store) => {
    for (const d of store.finishedDays()) for (const [domain] of store.day(d)) own.push(domain);
  });
  assert.deepEqual(own, ['example.net']);
});

test('the MTA-STS cache is shared, and answers from memory when the database is away', async () => {
  const warnings: string[] = [];
  const pool1 = new pg.Pool({ connectionString: server.url, max: 1 });
  const pool2 = new pg.Pool({ connectionString: server.url, max: 1 });
  pool1.on('error', () => undefined);
  pool2.on('error', () => undefined);
  const one = new PgStsCache(pool1, (l) => warnings.push(l));
  const two = new PgStsCache(pool2, (l) => warnings.push(l));
  const entry = { id: 'abc', fetched: Date.now(), policy: { version: 'STSv1', mode: 'enforce', mx: ['mx.example.org'], maxAge: 86400 } } as unknown as Parameters<PgStsCache['put']>[1];
  try {
    await one.put('Example.ORG', entry);
    assert.deepEqual(await two.get('example.org'), entry, 'fetched on one node, known on the other');
    server.stop();
    assert.deepEqual(await two.get('example.org'), entry, 'kept in memory');
    assert.equal(await one.get('unknown.example'), undefined);
    assert.ok(warnings.some((w) => /shared cache unavailable/.test(w)), warnings.join('\n'));
  } finally {
    server.start();
    await pool1.end().catch(() => undefined);
    await pool2.end().catch(() => undefined);
  }
});
