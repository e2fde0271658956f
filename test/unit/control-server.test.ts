/*
 * test/unit/control-server.test.ts — the control socket on a fake target
 * backed by a real QueueRunner and FsSpool (control-helpers.ts): socket
 * mode and lifecycle, raw garbage, and what each command does to the
 * runner.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ControlClient, RemoteError, updateTableOnDaemon } from '../../src/control/client.js';
import { ControlServer } from '../../src/control/server.js';
import type { QueueEntry } from '../../src/control/queue-view.js';
import { isDigest } from '../../src/control/stats-view.js';
import { bench, type Bench } from './control-helpers.js';

/** A raw connection: write bytes, read reply lines. */
class Raw {
  private buf = '';
  private readonly waiters: (() => void)[] = [];
  closed = false;
  constructor(readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('error', () => undefined);
  }
  static open(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      s.once('connect', () => resolve(new Raw(s)));
      s.once('error', reject);
    });
  }
  write(b: string | Buffer): void {
    this.sock.write(b);
  }
  async lines(n: number, timeoutMs = 5000): Promise<Record<string, unknown>[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ls = this.buf.split('\n').filter((l) => l !== '');
      if (ls.length >= n) {
        const got = ls.slice(0, n);
        const rest = this.buf.split('\n');
        this.buf = rest.slice(n).join('\n');
        return got.map((l) => JSON.parse(l) as Record<string, unknown>);
      }
      if (this.closed || Date.now() > deadline) throw new Error(`wanted ${n} lines, have: ${this.buf}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
  close(): void {
    this.sock.destroy();
  }
}

describe('ControlServer', () => {
  let b: Bench;
  beforeEach(async () => {
    b = await bench({ monitorIntervalMs: 20 });
  });
  afterEach(async () => {
    await b.close();
  });

  it('listens on a socket of mode 0660 and removes it when closed', async () => {
    const st = lstatSync(b.socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660);
    assert.deepEqual(readdirSync(b.dir).filter((n) => n.startsWith('.')), [], 'no temporary folder left');
    await b.server.close();
    assert.equal(existsSync(b.socket), false);
  });

  it('replaces a stale socket, refuses a live one or a file that is not a socket', async () => {
    await b.server.close();
    // stale: a socket file nobody listens on
    // A stale socket, as a crash leaves it: closing a net.Server unlinks its own path, so move it first.
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(join(b.dir, 'dead.sock'), r));
    renameSync(join(b.dir, 'dead.sock'), b.socket);
    await new Promise<void>((r) => dead.close(() => r()));
    assert.ok(lstatSync(b.socket).isSocket(), 'stale socket in place');
    const s2 = new ControlServer(b.socket, b.target);
    await s2.listen();
    const other = new ControlServer(b.socket, b.target);
    await assert.rejects(other.listen(), /another smtpd answers/);
    await s2.close();
    writeFileSync(b.socket, 'not a socket');
    await assert.rejects(new ControlServer(b.socket, b.target).listen(), /not a socket/);
    const again = new ControlServer(join(b.dir, 'x'.repeat(120)), b.target);
    await assert.rejects(again.listen(), /too long/);
    b.server = new ControlServer(join(b.dir, 'other.sock'), b.target);
    await b.server.listen();
  });

  it('answers raw garbage with errors and keeps serving', async () => {
    const raw = await Raw.open(b.socket);
    raw.write('this is not json\n');
    raw.write(Buffer.from([0x00, 0xff, 0xfe, 0x0d, 0x0a]));
    raw.write('{"id":5,"command":["rm","-rf","/"]}\n');
    raw.write('{"id":6,"command":["schedule"],"args":{"target":{"$gt":""}}}\n');
    raw.write(`{"id":7,"command":["show","stats"],"pad":"${'x'.repeat(70 * 1024)}"}\n`);
    raw.write('{"id":8,"command":["show","status"]}\n');
    const replies = await raw.lines(6);
    assert.deepEqual(replies.map((r) => [r['id'], r['ok']]), [
      [null, false],
      [null, false],
      [5, false],
      [6, false],
      [null, false],
      [8, true],
    ]);
    assert.match(String(replies[2]?.['error']), /unknown command "rm -rf \/"/);
    assert.match(String(replies[4]?.['error']), /longer than 65536 bytes/);
    assert.deepEqual(replies[5]?.['data'], { smtp: 'running', mta: 'running', mda: 'running', sessions: 0 });
    // A fresh connection is served too.
    const c = await ControlClient.connect(b.socket);
    assert.ok(Array.isArray(await c.request('show queue')));
    c.close();
    raw.close();
  });

  it('survives a client that leaves in the middle of a line or a stream', async () => {
    const raw = await Raw.open(b.socket);
    raw.write('{"id":1,"command":["mon');
    raw.close();
    const raw2 = await Raw.open(b.socket);
    raw2.write('{"id":1,"command":["monitor"]}\n');
    await raw2.lines(1);
    raw2.close();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(b.server.connections, 0);
    const c = await ControlClient.connect(b.socket);
    assert.deepEqual(await c.request('show status'), { smtp: 'running', mta: 'running', mda: 'running', sessions: 0 });
    c.close();
  });

  it('limits connections and requests in progress', async () => {
    await b.server.close();
    b.server = new ControlServer(b.socket, b.target, { maxConnections: 2, maxInFlight: 1, monitorIntervalMs: 20 });
    await b.server.listen();
    const r1 = await Raw.open(b.socket);
    const r2 = await Raw.open(b.socket);
    const r3 = await Raw.open(b.socket);
    assert.match(String((await r3.lines(1))[0]?.['error']), /too many control connections/);
    r1.write('{"id":1,"command":["monitor"]}\n{"id":2,"command":["show","status"]}\n');
    const got = await r1.lines(2);
    assert.ok(got.some((r) => r['id'] === 2 && r['ok'] === false && /too many requests/.test(String(r['error']))));
    for (const r of [r1, r2, r3]) r.close();
  });

  it('show queue: the runner envelopes still queued, with their state', async () => {
    const env = await b.queue('alice@example.net', ['bob@example.com', 'carol@example.com']);
    await b.queue('alice@example.net', ['dave@example.org']); // delivered at once: gone
    const c = await ControlClient.connect(b.socket);
    const q = (await c.request('show queue')) as QueueEntry[];
    assert.deepEqual(q.map((e) => [e.evpid, e.state, e.agent, e.runstate, e.retry]), env.recipients.map((r) => [r.evpid, 'deferred', 'mta', 'pending', 1]));
    assert.match(q[0]?.error ?? '', /Connection refused/);
    assert.ok((q[0]?.runtime ?? 0) > 200, 'next try minutes away');
    assert.deepEqual(await c.request('show queue', { msgid: env.msgid }), q);
    await assert.rejects(c.request('show queue', { msgid: 'ffffffff' }), (e: Error) => e instanceof RemoteError && /no such message: ffffffff/.test(e.message));
    c.close();
  });

  it('schedule, pause/resume envelope and remove act on the runner', async () => {
    const env = await b.queue('alice@example.net', ['bob@example.com', 'carol@example.com']);
    const [e1, e2] = env.recipients.map((r) => r.evpid) as [string, string];
    const c = await ControlClient.connect(b.socket);
    const state = (evpid: string): string | undefined => b.runner.schedule.get(evpid)?.state;

    assert.deepEqual(await c.request('pause envelope', { target: e1 }), { count: 1 });
    assert.equal(state(e1), 'held');
    assert.equal(state(e2), 'deferred');
    assert.deepEqual(await c.request('schedule', { target: 'all' }), { count: 1 }, 'held envelopes are not scheduled');
    await b.runner.idle();
    assert.equal(b.runner.schedule.get(e2)?.attempts, 2, 'tried again at once');
    assert.deepEqual(await c.request('resume envelope', { target: env.msgid }), { count: 1 });
    assert.equal(state(e1), 'deferred');
    await b.runner.idle();

    assert.deepEqual(await c.request('remove', { target: e2 }), { count: 1 });
    assert.equal(state(e2), 'failed');
    assert.equal(b.stats.get('scheduler.envelope.removed'), 1);
    assert.deepEqual(await c.request('remove', { target: env.msgid }), { count: 1 });
    await b.runner.idle();
    assert.equal(b.runner.schedule.has(env.msgid), false, 'message gone when all removed');
    await assert.rejects(c.request('schedule', { target: e1 }), /no such envelope/);
    await assert.rejects(c.request('remove', { target: 'abcdef12' }), /no such message: abcdef12/);
    assert.ok(b.logs.some((l) => /^control remove target=[0-9a-f]{16} envelopes=1$/.test(l)), b.logs.join('\n'));
    c.close();
  });

  it('pause/resume smtp|mta|mda, log, update table, reload, stop reach the target', async () => {
    const c = await ControlClient.connect(b.socket);
    await c.request('pause mta');
    await c.request('pause smtp');
    assert.deepEqual(await c.request('show status'), { smtp: 'paused', mta: 'paused', mda: 'running', sessions: 0 });
    assert.equal(b.runner.schedule.isPaused('mta'), true);
    await c.request('resume mta');
    assert.equal(b.runner.schedule.isPaused('mta'), false);
    await c.request('log verbose');
    assert.equal(b.target.verbose, true);
    await c.request('log brief');
    assert.equal(b.target.verbose, false);
    assert.deepEqual(await c.request('update table', { name: 'aliases' }), { table: 'aliases' });
    await assert.rejects(c.request('update table', { name: 'nope' }), /no table "nope"/);
    b.target.reloadError = 'smtpd.conf:3:1: unknown keyword "frobnicate"';
    await assert.rejects(c.request('reload'), /unknown keyword/);
    b.target.reloadError = undefined;
    assert.deepEqual(await c.request('reload'), { reloaded: true });
    assert.deepEqual(await c.request('stop'), { stopping: true });
    await new Promise((r) => setImmediate(r));
    assert.equal(b.target.stopped, 1);
    assert.deepEqual(await c.request('show hosts'), [{ host: 'mx.example.net', address: '192.0.2.1', state: 'down', errors: 3 }]);
    assert.deepEqual(await c.request('show routes'), []);
    c.close();
  });

  it('show envelope and show message', async () => {
    const body = `Subject: big\r\n\r\n${'0123456789abcdef'.repeat(8000)}\r\n`;
    const env = await b.queue('alice@example.net', ['bob@example.com'], body);
    const evpid = env.recipients[0]?.evpid as string;
    const c = await ControlClient.connect(b.socket);
    const d = (await c.request('show envelope', { evpid })) as Record<string, unknown>;
    assert.equal(d['state'], 'deferred');
    assert.equal(d['online'], true);
    assert.deepEqual((d['history'] as { kind: string }[]).map((h) => h.kind), ['deferred']);
    await assert.rejects(c.request('show envelope', { evpid: `${env.msgid}ffffffff` }), /no such envelope/);
    const chunks: Buffer[] = [];
    const end = (await c.stream('show message', { id: evpid }, (p) => chunks.push(Buffer.from((p as { chunk: string }).chunk, 'base64')))) as { size: number };
    const got = Buffer.concat(chunks);
    assert.ok(chunks.length > 1, 'streamed in parts');
    assert.equal(end.size, got.length);
    assert.ok(got.toString().endsWith(body), 'the stored message ends with the body');
    await assert.rejects(c.request('show message', { id: 'abcdef12' }), /no such message/);
    c.close();
  });

  it('show stats: counters, derived values and standard keys', async () => {
    b.stats.inc('smtp.session', 4);
    b.stats.inc('smtp.message', 2);
    b.stats.inc('smtp.message.bytes', 1234);
    await b.queue('alice@example.net', ['bob@example.com', 'carol@example.com']);
    const c = await ControlClient.connect(b.socket);
    const s = (await c.request('show stats')) as Record<string, number | string>;
    assert.equal(s['smtp.session'], 4);
    assert.equal(s['smtp.message.bytes'], 1234);
    assert.equal(s['smtp.tls'], 0);
    assert.equal(s['scheduler.delivery.tempfail'], 2);
    assert.equal(s['queue.message'], 1);
    assert.equal(s['queue.envelope'], 2);
    assert.ok(typeof s['uptime'] === 'number' && typeof s['uptime.human'] === 'string');
    assert.ok(typeof s['smtp.message.rate'] === 'number');
    assert.deepEqual(Object.keys(s), Object.keys(s).sort());
    c.close();
  });

  it('monitor streams digests until the client goes away', async () => {
    const c = await ControlClient.connect(b.socket);
    const parts: unknown[] = [];
    void c.stream('monitor', {}, (d) => parts.push(d)).catch(() => undefined);
    await b.queue('alice@example.net', ['bob@example.com']);
    b.stats.inc('smtp.session');
    const deadline = Date.now() + 3000;
    const seen = (): boolean => (parts.at(-1) as { connected?: number } | undefined)?.connected === 1;
    while ((parts.length < 5 || !seen()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(parts.length >= 5, `${parts.length} digests`);
    assert.ok(parts.every(isDigest));
    const last = parts.at(-1) as { envelopes: number; connected: number; tempfail: number };
    assert.equal(last.envelopes, 1);
    assert.equal(last.connected, 1);
    assert.equal(last.tempfail, 1);
    c.close();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(b.server.connections, 0);
  });
});

describe('updateTableOnDaemon', () => {
  it('tells a running daemon, and says when none runs', async () => {
    const b = await bench();
    try {
      assert.deepEqual(await updateTableOnDaemon(b.socket, 'aliases'), { ok: true });
      assert.deepEqual(await updateTableOnDaemon(b.socket, 'nope'), { ok: false, error: 'no table "nope"' });
      await b.server.close();
      assert.equal(await updateTableOnDaemon(b.socket, 'aliases'), 'not-running');
    } finally {
      await b.close();
    }
  });
});
