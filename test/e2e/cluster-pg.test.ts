/*
 * test/e2e/cluster-pg.test.ts — three Postern nodes (127.0.18.2–4) sharing
 * one queue in a real PostgreSQL made for the test (test/helpers/
 * postgres.ts; schema by `postern db migrate`), mail sent by Python's
 * smtplib, delivered by a slow mda that writes down which node ran it.
 * In each case every message acknowledged with 250 must be delivered (at
 * least once; twice only for what was in flight), counted by subject:
 *
 *  1. a node SIGKILLed in the middle of its deliveries: another node
 *     delivers what it held, once its leases expire;
 *  2. PostgreSQL SIGKILLed while nodes receive: they answer 4xx (never 250
 *     for what they could not store) and, once it is back, deliver every
 *     message they acknowledged;
 *  3. a node cut off from the database (its connections go through a relay
 *     the test closes, see partitionable()): once its leases are stale it
 *     starts no delivery, and the others deliver its messages.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { freePort as freeTcpPort, startSmtpSink } from '../helpers/mta-peers.js';
import { partitionable, startPostgres, type Partition, type PgServer } from '../helpers/postgres.js';
import { python, run } from '../helpers/tools.js';
import { FsSpool } from '../../src/spool/fs/fs-spool.js';
import { POSTERN, migrate, type ClusterNode as Node } from './cluster-helpers.js';
import { fileLines, usersTable, waitFor } from './deliver-helpers.js';

const USERS = ['u1', 'u2', 'u3', 'u4'];
const LEASE = '3s';

/** Logs "start SUBJECT NODE" when it begins, "SUBJECT NODE" once the message is written. */
const SLOW_SH = `#!/bin/sh
node="$1"
msg=$(cat)
subject=$(printf '%s\\n' "$msg" | sed -n 's/^Subject: //p' | head -n 1)
echo "start $subject $node" >> "$DIR/started"
sleep 1
echo "$subject $node" >> "$DIR/delivered"
`;

/** Send each message on its own connection; prints [{subject, code}] (code 0: the connection failed). */
const SENDER = String.raw`
import json, smtplib, sys
host, port, specs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
out = []
for m in specs:
    code = 0
    try:
        with smtplib.SMTP(host, port, local_hostname='client.test', timeout=30) as s:
            data = ('From: <sender@remote.example>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nbody of %s\r\n' % (m['to'], m['subject'], m['subject'])).encode()
            try:
                s.sendmail('sender@remote.example', [m['to']], data)
                code = 250
            except smtplib.SMTPResponseException as e:
                code = e.smtp_code
            except smtplib.SMTPRecipientsRefused as e:
                code = list(e.recipients.values())[0][0]
    except Exception:
        code = 0
    out.append({'subject': m['subject'], 'code': code})
print(json.dumps(out))
`;

let server: PgServer;
let root: string;
/** Where "etrn.example" is relayed: nothing listens there until the ETRN test starts smtp-sink. */
const SINK = '127.0.18.5';
let sinkPort = 0;
const nodes: Node[] = [];

function config(n: Node, url: string): string {
  return `queue path "${n.dir}/spool"
queue postgresql "${url}"
queue node ${n.name}
queue lease ${LEASE}
mbox path "${root}/mail"
hostname "${n.name}.test.example"
listen on ${n.address} port 0
table users file:${root}/users
action "slow" mda "${root}/bin/slow.sh ${n.name}" userbase <users>
action "relay" relay host smtp+notls://${SINK}:${sinkPort}
match from any for domain "slow.example" action "slow"
match from any for domain "etrn.example" action "relay"
`;
}

async function startNode(n: Node, url = server.url): Promise<DaemonHandle> {
  mkdirSync(n.dir, { recursive: true });
  n.d = await startDaemon(config(n, url), { dir: n.dir, deliver: true });
  return n.d;
}

async function send(n: Node, subjects: readonly string[], domain = 'slow.example'): Promise<{ subject: string; code: number }[]> {
  const specs = subjects.map((subject, i) => ({ subject, to: `${USERS[i % USERS.length]}@${domain}` }));
  const r = await run(python(), ['-c', SENDER, n.address, String(n.d?.port), JSON.stringify(specs)], { timeoutMs: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { subject: string; code: number }[];
}

function lines(name: 'started' | 'delivered'): { subject: string; node: string }[] {
  return fileLines(join(root, name)).map((l) => {
    const parts = l.replace(/^start /, '').split(' ');
    return { subject: parts[0] ?? '', node: parts[1] ?? '' };
  });
}

/** A count from the shared database. */
async function count(sql: string): Promise<number> {
  const pool = new pg.Pool({ connectionString: server.url, max: 1 });
  try {
    const r = await pool.query<{ n: string }>(sql);
    return Number(r.rows[0]?.n);
  } finally {
    await pool.end();
  }
}

const queueCount = (): Promise<number> => count(`SELECT count(*) AS n FROM postern_message WHERE state = 'queued'`);

/** Every acknowledged subject is delivered; the queue ends empty. Returns the deliveries. */
async function allDelivered(acked: readonly string[], what: string): Promise<{ subject: string; node: string }[]> {
  await waitFor(`${what}: every acknowledged message delivered`, () => {
    const done = new Set(lines('delivered').map((l) => l.subject));
    return acked.every((s) => done.has(s)) ? true : undefined;
  }, { timeoutMs: 90_000 });
  await waitFor(`${what}: the shared queue empty`, async () => ((await queueCount()) === 0 ? true : undefined), { timeoutMs: 30_000 });
  return lines('delivered');
}

describe('three nodes sharing a queue in PostgreSQL', { concurrency: false }, () => {
  before(async () => {
    root = tempDir('postern-cluster-');
    writeFileSync(join(root, 'users'), usersTable(root, USERS));
    mkdirSync(join(root, 'bin'));
    writeFileSync(join(root, 'bin', 'slow.sh'), SLOW_SH.replaceAll('$DIR', root), { mode: 0o755 });
    server = await startPostgres();
    sinkPort = await freeTcpPort([SINK]);
    for (const [i, name] of ['n1', 'n2', 'n3'].entries()) nodes.push({ name, address: `127.0.18.${i + 2}`, dir: join(root, name) });
    // The schema, by the command an administrator runs; a node refuses an unmigrated database.
    assert.match(await migrate(root, server.url), /schema version 1 applied/);
    for (const n of nodes) await startNode(n);
  });

  after(async () => {
    for (const n of nodes) await n.d?.kill();
    server?.cleanup();
  });

  it('a node killed mid-delivery: another node delivers what it held; nothing acknowledged is lost', async () => {
    const [n1] = nodes as [Node];
    const subjects = Array.from({ length: 16 }, (_, i) => `kill-${String(i).padStart(2, '0')}`);
    const replies = await send(n1, subjects);
    const acked = replies.filter((r) => r.code === 250).map((r) => r.subject);
    assert.equal(acked.length, subjects.length, JSON.stringify(replies));
    await waitFor('n1 delivering', () => {
      const started = lines('started').filter((l) => l.subject.startsWith('kill-') && l.node === 'n1').length;
      return started >= 2 ? true : undefined;
    });
    await n1.d?.kill();
    const killedAt = lines('delivered').length;
    const done = await allDelivered(acked, 'after SIGKILL of n1');
    const after = done.slice(killedAt).filter((l) => l.subject.startsWith('kill-'));
    assert.ok(after.some((l) => l.node !== 'n1'), 'another node delivered some of n1\'s messages');
    // Duplicates only for what n1 had started and not recorded.
    const startedByN1 = new Set(lines('started').filter((l) => l.node === 'n1').map((l) => l.subject));
    const counts = new Map<string, number>();
    for (const l of done.filter((x) => x.subject.startsWith('kill-'))) counts.set(l.subject, (counts.get(l.subject) ?? 0) + 1);
    for (const [s, c] of counts) if (c > 1) assert.ok(startedByN1.has(s), `${s} delivered ${c} times without being in flight on n1`);
  });

  it('PostgreSQL killed while nodes receive: 4xx for what could not be stored, every 250 delivered', async () => {
    const [, n2, n3] = nodes as [Node, Node, Node];
    const before = Array.from({ length: 6 }, (_, i) => `pgdown-a${i}`);
    const acked: string[] = [];
    for (const r of await send(n2, before)) if (r.code === 250) acked.push(r.subject);
    assert.equal(acked.length, before.length);
    server.kill();
    const during = await send(n3, Array.from({ length: 4 }, (_, i) => `pgdown-b${i}`));
    for (const r of during) {
      assert.ok(r.code !== 250, `${r.subject} acknowledged while the database was down`);
      assert.ok(r.code === 0 || (r.code >= 400 && r.code < 500), `${r.subject}: ${r.code}`);
    }
    assert.ok(during.some((r) => r.code === 451), `451 for mail that cannot be stored: ${JSON.stringify(during)}`);
    server.start();
    // The nodes reconnect by themselves.
    const again = await waitFor('a node accepting mail again', async () => {
      const r = await send(n3, ['pgdown-c0']);
      return r[0]?.code === 250 ? r : undefined;
    }, { timeoutMs: 30_000 });
    acked.push(...again.map((r) => r.subject));
    await allDelivered(acked, 'after the database came back');
  });

  it('ETRN on one node runs the queue of the node that holds the mail', async () => {
    const [, n2, n3] = nodes as [Node, Node, Node];
    const [r] = await send(n2, ['etrn-0'], 'etrn.example');
    assert.equal(r?.code, 250);
    // Deferred (nothing listens): the next try would be minutes away.
    await waitFor('the message deferred', async () => {
      return (await count(`SELECT count(*) AS n FROM postern_outcome WHERE outcome ->> 'kind' = 'deferred'`)) > 0 ? true : undefined;
    }, { timeoutMs: 30_000 });
    // Any node shows the whole cluster's queue, and who holds the lease.
    const view = await run(process.execPath, [POSTERN, 'smtpctl', '-f', join(n3.dir, 'smtpd.conf'), '--json', 'show', 'cluster'], { timeoutMs: 15_000 });
    assert.equal(view.status, 0, view.stderr);
    const entries = JSON.parse(view.stdout) as { msgid: string; origin: string; holder: string; lease: number }[];
    assert.ok(entries.some((e) => e.origin === 'n2' && e.holder === 'n2' && e.lease > 0), view.stdout);
    const status = await run(process.execPath, [POSTERN, 'db', '-f', join(root, 'db.conf'), 'status'], { timeoutMs: 15_000 });
    assert.match(status.stdout, /^ +1 +queued +n2$/m, status.stdout);
    const sink = await startSmtpSink(SINK, sinkPort);
    try {
      const e = await run(python(), ['-c', `import smtplib,sys\ns=smtplib.SMTP(sys.argv[1], int(sys.argv[2]))\ns.ehlo('client.test')\nprint(s.docmd('ETRN', 'etrn.example')[0])\ns.quit()`, n3.address, String(n3.d?.port)]);
      assert.equal(e.stdout.trim(), '250', `ETRN on n3, which holds nothing: the cluster's queue has it (${e.stderr})`);
      await waitFor('the message relayed after ETRN on another node', () => (sink.messages().some((m) => m.includes('Subject: etrn-0')) ? true : undefined), { timeoutMs: 30_000 });
      await waitFor('the shared queue empty', async () => ((await queueCount()) === 0 ? true : undefined), { timeoutMs: 30_000 });
    } finally {
      await sink.close();
    }
  });

  it('a stopped node\'s file spool, moved in with postern db import-spool, is delivered by the cluster', async () => {
    const old = join(root, 'old-spool');
    const fs = new FsSpool({ root: old, journal: false });
    await fs.open();
    const w = await fs.createMessage();
    w.write(Buffer.from('From: <a@remote.example>\r\nSubject: moved-0\r\n\r\nbody\r\n'));
    await w.commit({ sender: 'a@remote.example', recipients: [{ address: 'u1@slow.example', action: 'slow', dest: { kind: 'user', user: 'u1' } }], body: '8BITMIME', smtputf8: false, arrival: Date.now(), client: { address: '192.0.2.1', port: 1, proto: 'ESMTP', listener: 'old' } });
    await fs.close();
    const r = await run(process.execPath, [POSTERN, 'db', '-f', join(root, 'db.conf'), 'import-spool', old], { timeoutMs: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /1 message\(s\) moved, 0 left/);
    await allDelivered(['moved-0'], 'after import-spool');
  });

  it('a node cut off from the database starts no delivery once its leases are stale; the others deliver its mail', async () => {
    const n3 = nodes[2] as Node;
    await n3.d?.stop();
    const relay: Partition = await partitionable(server);
    try {
      const d = await startNode(n3, relay.url);
      const subjects = Array.from({ length: 16 }, (_, i) => `cut-${String(i).padStart(2, '0')}`);
      const acked = (await send(n3, subjects)).filter((r) => r.code === 250).map((r) => r.subject);
      assert.equal(acked.length, subjects.length);
      await waitFor('n3 delivering', () => (lines('started').some((l) => l.subject.startsWith('cut-') && l.node === 'n3') ? true : undefined));
      await relay.cut();
      await d.waitForLog(/leases could not be renewed/, 30_000);
      const startsWhenStale = lines('started').filter((l) => l.node === 'n3' && l.subject.startsWith('cut-')).length;
      const done = await allDelivered(acked, 'n3 cut off');
      assert.ok(done.some((l) => l.subject.startsWith('cut-') && l.node !== 'n3'), 'other nodes delivered n3\'s messages');
      assert.equal(lines('started').filter((l) => l.node === 'n3' && l.subject.startsWith('cut-')).length, startsWhenStale, 'n3 started deliveries with stale leases');
    } finally {
      await relay.close();
    }
  });
});
