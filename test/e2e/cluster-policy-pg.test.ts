/*
 * test/e2e/cluster-policy-pg.test.ts — two Postern nodes (127.0.24.2–3)
 * sharing one queue and one policy state in a real PostgreSQL made for the
 * test (test/helpers/postgres.ts, on 127.0.24.1; schema by `postern db
 * migrate`), clients from other addresses of 127.0.24.0/24 (Python's
 * smtplib and plain sockets with a chosen source address):
 *
 *  1. a client over its connection rate limit on one node is refused on
 *     the other;
 *  2. a client at its simultaneous-connection limit on one node is refused
 *     on the other;
 *  3. a greylisting triplet deferred on one node passes on the other once
 *     retried after the delay;
 *  4. smtpctl on one node holds, releases, schedules and removes a message
 *     whose lease the other node holds, and says which node holds it;
 *  5. with PostgreSQL stopped: greylisting passes new triplets (fails
 *     open), rate limits hold per node, and connections are still taken;
 *  6. `postern db import-spool` SIGKILLed in the middle of moving a file
 *     spool, then run again: every message is in the shared queue, none is
 *     left behind (a message in both after the kill is moved twice: a
 *     duplicate at worst, never a loss).
 * The nodes run with deliveries paused (smtpd -P mda -P mta): a queued
 * message stays leased by the node that accepted it.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startDaemon, tempDir } from '../helpers/daemon.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { python, run } from '../helpers/tools.js';
import { FsSpool } from '../../src/spool/fs/fs-spool.js';
import { POSTERN, migrate, type ClusterNode as Node } from './cluster-helpers.js';
import { waitFor } from './deliver-helpers.js';

let server: PgServer;
let root: string;
const nodes: Node[] = [];

function config(n: Node): string {
  return `queue path "${n.dir}/spool"
queue postgresql "${server.url}"
queue node ${n.name}
queue lease 3s
mbox path "${root}/mail"
hostname "${n.name}.test.example"
listen on ${n.address} port 0
smtp limit max-connections-per-address 2
greylist delay 2s allowlist-after 0
rate-limit connections 5 per 1h by client
action "relay" relay host smtp+notls://127.0.24.9:2525
match from any for domain "test.example" action "relay"
`;
}

/** One transaction from SRC to node N up to RCPT (and DATA when `data`): prints the first refusal's "CODE", or "ok". */
async function rcpt(n: Node, src: string, opts: { from?: string; to?: string; data?: boolean } = {}): Promise<string> {
  const script = `
import smtplib, sys
try:
    with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), local_hostname='client.test', source_address=(sys.argv[3], 0), timeout=20) as s:
        s.ehlo()
        s.mail(sys.argv[4])
        code, msg = s.rcpt(sys.argv[5])
        if code != 250:
            print(code); sys.exit(0)
        if sys.argv[6] == '1':
            code, msg = s.data(b'Subject: cluster\\r\\n\\r\\nbody\\r\\n')
            if code != 250:
                print(code); sys.exit(0)
        print('ok')
except smtplib.SMTPResponseException as e:
    print(e.smtp_code)
except smtplib.SMTPServerDisconnected as e:
    print('disconnected')
`;
  const r = await run(python(), ['-c', script, n.address, String(n.d?.port), src, opts.from ?? 'a@remote.example', opts.to ?? 'u@test.example', opts.data === true ? '1' : '0'], { timeoutMs: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/** Open a connection from SRC and read the greeting's code; the socket stays open until close(). */
async function greet(n: Node, src: string): Promise<{ code: string; close: () => void }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: n.address, port: n.d?.port ?? 0, localAddress: src });
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) resolve({ code: buf.slice(0, 3), close: () => s.destroy() });
    });
    s.on('error', reject);
    s.on('close', () => resolve({ code: buf.slice(0, 3) || 'closed', close: () => undefined }));
  });
}

async function query<R extends Record<string, unknown>>(sql: string, args: unknown[] = []): Promise<R[]> {
  const pool = new pg.Pool({ connectionString: server.url, max: 1 });
  try {
    return (await pool.query<R>(sql, args)).rows;
  } finally {
    await pool.end();
  }
}

async function smtpctl(n: Node, ...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [POSTERN, 'smtpctl', '-f', join(n.dir, 'smtpd.conf'), ...args], { timeoutMs: 15_000 });
}

/** The policy state is shared once a second. */
const shared = (): Promise<void> => new Promise((r) => setTimeout(r, 2200));

describe('two nodes sharing their policy state in PostgreSQL', { concurrency: false }, () => {
  before(async () => {
    root = tempDir('postern-cluster-policy-');
    server = await startPostgres({ host: '127.0.24.1' });
    assert.match(await migrate(root, server.url), /schema version 2 applied/);
    for (const [i, name] of ['n1', 'n2'].entries()) {
      const n: Node = { name, address: `127.0.24.${i + 2}`, dir: join(root, name) };
      mkdirSync(n.dir, { recursive: true });
      n.d = await startDaemon(config(n), { dir: n.dir });
      nodes.push(n);
    }
  });

  after(async () => {
    for (const n of nodes) await n.d?.kill();
    server?.cleanup();
  });

  it('a client over its connection rate on one node is refused on the other', async () => {
    const [n1, n2] = nodes as [Node, Node];
    for (let i = 0; i < 5; i++) {
      const g = await greet(n1, '127.0.24.20');
      g.close();
      assert.equal(g.code, '220');
    }
    const fourth = await greet(n1, '127.0.24.20');
    fourth.close();
    assert.equal(fourth.code, '421', 'the sixth connection in the hour on the same node');
    await shared();
    const other = await greet(n2, '127.0.24.20');
    other.close();
    assert.equal(other.code, '421', 'throttled on n1, so throttled on n2');
    const stranger = await greet(n2, '127.0.24.21');
    stranger.close();
    assert.equal(stranger.code, '220', 'another client is not');
  });

  it('simultaneous connections from one client count across the nodes', async () => {
    const [n1, n2] = nodes as [Node, Node];
    const a = await greet(n1, '127.0.24.40');
    const b = await greet(n1, '127.0.24.40');
    try {
      assert.equal(a.code, '220');
      assert.equal(b.code, '220');
      await shared();
      const c = await greet(n2, '127.0.24.40');
      c.close();
      assert.equal(c.code, '421', 'two open on n1, limit 2: the third on n2 is refused');
    } finally {
      a.close();
      b.close();
    }
    await shared();
    const d = await greet(n2, '127.0.24.40');
    d.close();
    assert.equal(d.code, '220', 'once they close, n2 takes the client again');
  });

  it('a greylisting triplet deferred on one node passes on the other after the delay', async () => {
    const [n1, n2] = nodes as [Node, Node];
    assert.equal(await rcpt(n1, '127.0.24.30'), '450');
    assert.equal(await rcpt(n2, '127.0.24.30'), '450', 'too early on the other node too');
    await new Promise((r) => setTimeout(r, 2200));
    assert.equal(await rcpt(n2, '127.0.24.30'), 'ok', 'retried on another node after the delay: passes');
    const rows = await query<{ passed: boolean }>(`SELECT passed FROM postern_greylist WHERE key LIKE '127.0.24.0/24|%'`);
    assert.deepEqual(rows.map((r) => r.passed), [true]);
  });

  it('smtpctl on one node acts on a message the other node holds, and names the holder', async () => {
    const [n1, n2] = nodes as [Node, Node];
    // The triplet (client /24, sender, recipient) passed above: the message is queued on n1 at once, and n1 holds its lease.
    assert.equal(await rcpt(n1, '127.0.24.31', { data: true }), 'ok');
    const [m] = await query<{ msgid: string; holder: string }>(`SELECT msgid, lease_holder AS holder FROM postern_message WHERE state = 'queued'`);
    assert.ok(m, 'one message queued');
    assert.equal(m.holder, 'n1');
    const outcomes = async (): Promise<string[]> => (await query<{ kind: string }>(`SELECT outcome ->> 'kind' AS kind FROM postern_outcome WHERE msgid = $1 ORDER BY id`, [m.msgid])).map((r) => r.kind);

    const hold = await smtpctl(n2, 'pause', 'envelope', m.msgid);
    assert.equal(hold.status, 0, hold.stderr);
    assert.match(hold.stdout, /^0 envelopes paused$/m);
    assert.match(hold.stdout, /^1 message\(s\) leased by node n1: asked to act/m);
    await waitFor('n1 holds the message', async () => ((await outcomes()).includes('held') ? true : undefined));
    await n1.d?.waitForLog(/cluster: hold [0-9a-f]{8} asked on n2: 1 envelope\(s\) here/);

    const release = await smtpctl(n2, 'resume', 'envelope', m.msgid);
    assert.equal(release.status, 0, release.stderr);
    await waitFor('n1 releases it', async () => ((await outcomes()).includes('released') ? true : undefined));

    const schedule = await smtpctl(n2, 'schedule', m.msgid);
    assert.equal(schedule.status, 0, schedule.stderr);
    assert.match(schedule.stdout, /leased by node n1/);
    await n1.d?.waitForLog(/cluster: schedule [0-9a-f]{8} asked on n2: 1 envelope\(s\) here/);

    const json = await smtpctl(n2, '--json', 'remove', m.msgid);
    assert.equal(json.status, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), { count: 0, direct: 0, elsewhere: [{ node: 'n1', messages: 1 }] });
    await waitFor('the message removed from the shared queue', async () => ((await query(`SELECT 1 FROM postern_message WHERE msgid = $1`, [m.msgid])).length === 0 ? true : undefined));

    const none = await smtpctl(n2, 'remove', 'abcdef12');
    assert.notEqual(none.status, 0);
    assert.match(none.stderr, /no such message in the cluster's queue: abcdef12/);
  });

  it('with PostgreSQL down: greylisting fails open, rate limits hold per node, connections are taken', async () => {
    const [n1, n2] = nodes as [Node, Node];
    server.stop();
    try {
      assert.equal(await rcpt(n1, '127.0.24.50', { from: 'new@remote.example' }), 'ok', 'a new triplet passes RCPT while the store is away');
      await n1.d?.waitForLog(/greylist store failed \(passed\)/);
      for (let i = 0; i < 5; i++) {
        const g = await greet(n1, '127.0.24.60');
        g.close();
        assert.equal(g.code, '220');
      }
      const sixth = await greet(n1, '127.0.24.60');
      sixth.close();
      assert.equal(sixth.code, '421', 'the per-node rate limit still holds');
      const elsewhere = await greet(n2, '127.0.24.61');
      elsewhere.close();
      assert.equal(elsewhere.code, '220', 'the other node takes new clients');
    } finally {
      server.start();
    }
  });

  it('import-spool killed mid-way and run again: every message of the file spool in the shared queue', async () => {
    const old = join(root, 'old-spool');
    const fs = new FsSpool({ root: old, journal: false });
    await fs.open();
    const subjects = Array.from({ length: 300 }, (_, i) => `import-${String(i).padStart(3, '0')}`);
    for (const subject of subjects) {
      const w = await fs.createMessage();
      w.write(Buffer.from(`From: <a@remote.example>\r\nSubject: ${subject}\r\n\r\nbody\r\n`));
      await w.commit({ sender: 'a@remote.example', recipients: [{ address: 'u@test.example', action: 'relay', dest: { kind: 'remote' } }], body: '8BITMIME', smtputf8: false, arrival: Date.now(), client: { address: '192.0.2.1', port: 1, proto: 'ESMTP', listener: 'old' } });
    }
    await fs.close();
    const conf = join(root, 'db.conf');
    // The first run is killed once it has moved a few messages.
    const first = spawn(process.execPath, [POSTERN, 'db', '-f', conf, 'import-spool', old], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let moved = 0;
      first.stdout.on('data', (d: Buffer) => {
        moved += (d.toString().match(/: moved \(/g) ?? []).length;
        if (moved >= 20 && first.exitCode === null) first.kill('SIGKILL');
      });
      first.on('exit', () => resolve());
      first.on('error', reject);
    });
    assert.equal(first.signalCode, 'SIGKILL', 'the first run was killed before it finished');
    const again = await run(process.execPath, [POSTERN, 'db', '-f', conf, 'import-spool', old], { timeoutMs: 120_000 });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, / message\(s\) moved, 0 left/);
    const left = new FsSpool({ root: old, journal: false });
    await left.open();
    assert.deepEqual(await left.list(), [], 'nothing left in the file spool');
    await left.close();
    const rows = await query<{ body: Buffer }>(
      `SELECT c.data AS body FROM postern_message m JOIN postern_body_chunk c ON c.msgid = m.msgid WHERE m.state = 'queued' AND m.origin = 'import'`,
    );
    const found = new Set(rows.map((r) => /Subject: (import-\d+)/.exec(r.body.toString())?.[1]));
    assert.deepEqual(subjects.filter((x) => !found.has(x)), [], 'every message of the file spool is in the shared queue');
    assert.ok(rows.length <= subjects.length + 1, `at most the one message in flight at the kill twice (${rows.length})`);
  });
});
