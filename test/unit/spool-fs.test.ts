/*
 * test/unit/spool-fs.test.ts — FsSpool: writing, reading, outcomes, ids.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { RecipientOutcome } from '../../src/mail/envelope.js';
import { DirSyncer } from '../../src/spool/fs/dir-sync.js';
import { FsSpool, SpoolError, newEvpid } from '../../src/spool/fs/fs-spool.js';
import { MsgidAllocator } from '../../src/spool/fs/ids.js';
import { Layout } from '../../src/spool/fs/layout.js';
import { createWriter, type FsMessageWriter } from '../../src/spool/fs/writer.js';
import { bodyOf, envelopeFor, readAll, sha256, tmpSpoolRoot } from '../helpers/spool-fixtures.js';

const KiB = 1024;

function isCode(code: string): (err: unknown) => boolean {
  return (err) => err instanceof SpoolError && err.code === code;
}

describe('FsSpool', () => {
  let tmp: ReturnType<typeof tmpSpoolRoot>;
  let spool: FsSpool;
  let log: string[];

  beforeEach(async () => {
    tmp = tmpSpoolRoot();
    log = [];
    spool = new FsSpool({ root: tmp.root, memoryBufferBytes: 64 * KiB, log: (l) => log.push(l) });
    const report = await spool.open();
    assert.deepEqual(report, { messages: 0, removedIncomplete: 0, corrupt: [] });
  });

  afterEach(async () => {
    try {
      await spool.close();
    } finally {
      tmp.cleanup();
    }
  });

  async function roundTrip(size: number, chunk = 1000): Promise<string> {
    const body = bodyOf(size, `rt${size}`);
    const w = await spool.createMessage();
    assert.match(w.msgid, /^[0-9a-f]{8}$/);
    for (let off = 0; off < size; off += chunk) {
      w.write(body.subarray(off, off + chunk));
      await w.drain();
    }
    assert.equal(w.size, size);
    const fields = envelopeFor(w.msgid);
    const env = await w.commit(fields);
    assert.equal(env.msgid, w.msgid);
    assert.equal(env.size, size);
    assert.equal(env.version, 1);
    const stored = await spool.load(w.msgid);
    assert.deepEqual(stored.envelope, env);
    assert.deepEqual(stored.envelope, JSON.parse(JSON.stringify({ version: 1, msgid: w.msgid, ...fields, size })));
    assert.equal(stored.outcomes.size, 0);
    const got = await readAll(spool.openBody(w.msgid));
    assert.equal(got.length, size);
    assert.ok(got.equals(body), 'body bytes differ');
    assert.deepEqual(await spool.list(), [w.msgid]);
    // Nothing left behind in incoming/.
    assert.deepEqual(readdirSync(join(tmp.root, 'incoming')), []);
    return w.msgid;
  }

  it('round-trips a small message', async () => {
    const msgid = await roundTrip(1234);
    const mode = statSync(join(tmp.root, 'queue', msgid.slice(0, 2), msgid)).mode & 0o777;
    assert.equal(mode, 0o600);
    assert.equal(statSync(tmp.root).mode & 0o777, 0o700);
  });

  it('round-trips an empty body', async () => {
    await roundTrip(0);
  });

  it('round-trips a message of exactly memoryBufferBytes (kept in memory until commit)', async () => {
    const w = (await spool.createMessage()) as FsMessageWriter;
    w.write(bodyOf(64 * KiB, 'x'));
    await w.drain();
    assert.equal(w.buffered, 64 * KiB);
    assert.ok(!existsSync(join(tmp.root, 'incoming', w.msgid)), 'no file before commit');
    await w.abort();
    await roundTrip(64 * KiB, 4096);
  });

  it('round-trips a message one byte over memoryBufferBytes', async () => {
    await roundTrip(64 * KiB + 1, 4096);
  });

  it('streams a 5 MB message with bounded memory and drain() back-pressure', async () => {
    const size = 5 * 1024 * KiB;
    const body = bodyOf(size, 'big');
    const w = (await spool.createMessage()) as FsMessageWriter;
    let maxBuffered = 0;
    let waited = 0;
    for (let off = 0; off < size; off += 16 * KiB) {
      w.write(body.subarray(off, off + 16 * KiB));
      maxBuffered = Math.max(maxBuffered, w.buffered);
      const d = w.drain();
      let settled = false;
      void d.then(() => (settled = true));
      await Promise.resolve();
      if (!settled) waited++;
      await d;
      assert.ok(w.buffered <= 64 * KiB, `buffered ${w.buffered} after drain`);
    }
    assert.ok(waited > 0, 'drain() never made the writer wait');
    assert.ok(maxBuffered <= 64 * KiB + 16 * KiB, `max buffered ${maxBuffered}`);
    const onDisk = statSync(join(tmp.root, 'incoming', w.msgid)).size;
    assert.ok(onDisk >= size - 64 * KiB, `only ${onDisk} bytes on disk before commit`);
    await w.commit(envelopeFor(w.msgid, 1));
    const got = await readAll(spool.openBody(w.msgid));
    assert.equal(sha256(got), sha256(body));
  });

  it('abort() removes the temp file and publishes nothing; it is idempotent', async () => {
    const w = await spool.createMessage();
    w.write(bodyOf(200 * KiB, 'a'));
    await w.drain();
    assert.ok(existsSync(join(tmp.root, 'incoming', w.msgid)));
    await Promise.all([w.abort(), w.abort()]);
    await w.abort();
    assert.deepEqual(readdirSync(join(tmp.root, 'incoming')), []);
    assert.deepEqual(await spool.list(), []);
    await assert.rejects(spool.load(w.msgid), isCode('NOT_FOUND'));
    assert.throws(() => w.write(Buffer.from('x')), isCode('STATE'));
    await assert.rejects(w.commit(envelopeFor(w.msgid)), isCode('STATE'));
  });

  it('abort() after a successful commit keeps the message', async () => {
    const w = await spool.createMessage();
    w.write(Buffer.from('hello\r\n'));
    await w.commit(envelopeFor(w.msgid));
    await w.abort();
    assert.deepEqual(await spool.list(), [w.msgid]);
  });

  it('refuses an invalid envelope at commit, stores nothing, and can then be aborted', async () => {
    const w = await spool.createMessage();
    w.write(Buffer.from('hello\r\n'));
    const fields = envelopeFor(w.msgid);
    const bad = { ...fields, recipients: [{ ...fields.recipients[0]!, evpid: 'deadbeef00000000' }] };
    await assert.rejects(w.commit(bad), isCode('INVALID'));
    await w.abort();
    assert.deepEqual(await spool.list(), []);
    assert.deepEqual(readdirSync(join(tmp.root, 'incoming')), []);
    const w2 = await spool.createMessage();
    await assert.rejects(w2.commit({ ...envelopeFor(w2.msgid), arrival: Number.NaN }), isCode('INVALID'));
    await w2.abort();
  });

  it('ignores msgid/size/version smuggled into commit()', async () => {
    const w = await spool.createMessage();
    w.write(Buffer.from('abc'));
    const env = await w.commit({ ...envelopeFor(w.msgid), msgid: 'ffffffff', size: 99, version: 2 } as never);
    assert.equal(env.msgid, w.msgid);
    assert.equal(env.size, 3);
    assert.equal(env.version, 1);
  });

  it('stores fields carrying CR/LF and other hostile text as data (no injection)', async () => {
    const w = await spool.createMessage();
    w.write(Buffer.from('body\r\n'));
    const base = envelopeFor(w.msgid, 1);
    const evil = '\r\nversion: 2\nrecipients: []\n"},{"evil":1}\u0000\u2028\ud800';
    const fields = {
      ...base,
      sender: `a${evil}@example.net`,
      envid: evil,
      mailAuth: evil,
      recipients: [{ ...base.recipients[0]!, address: `b${evil}@example.org`, orcpt: `rfc822;${evil}` }],
      client: { ...base.client, helo: evil, hostname: evil },
    };
    const env = await w.commit(fields);
    const stored = await spool.load(w.msgid);
    assert.deepEqual(stored.envelope, env);
    assert.equal(stored.envelope.sender, `a${evil}@example.net`);
    assert.equal(stored.envelope.recipients.length, 1);
    assert.equal(stored.envelope.recipients[0]!.address, `b${evil}@example.org`);
    assert.equal(stored.envelope.client.helo, evil);
    assert.equal(stored.envelope.version, 1);
    await spool.appendOutcome(env.recipients[0]!.evpid, { kind: 'failed', at: 1, detail: `550 no\r\n${evil}` });
    const again = await spool.load(w.msgid);
    assert.deepEqual(again.outcomes.get(env.recipients[0]!.evpid), [{ kind: 'failed', at: 1, detail: `550 no\r\n${evil}` }]);
    // The stored record is one line.
    const logText = readFileSync(join(tmp.root, 'queue', w.msgid.slice(0, 2), `${w.msgid}.log`), 'utf8');
    assert.equal(logText.split('\n').length, 2);
  });

  it('records outcomes in order, per evpid, after fsync', async () => {
    const w = await spool.createMessage();
    w.write(Buffer.from('x'));
    const env = await w.commit(envelopeFor(w.msgid, 3));
    const [a, b] = env.recipients.map((r) => r.evpid) as [string, string];
    const o1: RecipientOutcome = { kind: 'deferred', at: 10, detail: '451 later', attempts: 1, nextTry: 70 };
    const o2: RecipientOutcome = { kind: 'delivered', at: 80, detail: '250 ok' };
    const o3: RecipientOutcome = { kind: 'held', at: 90 };
    await spool.appendOutcome(a, o1);
    await Promise.all([spool.appendOutcome(a, o2), spool.appendOutcome(b, o3)]);
    const stored = await spool.load(w.msgid);
    assert.deepEqual(stored.outcomes.get(a), [o1, o2]);
    assert.deepEqual(stored.outcomes.get(b), [o3]);
    assert.equal(stored.outcomes.has(env.recipients[2]!.evpid), false);
  });

  it('batches concurrent outcome records of one message, keeping call order', async () => {
    const w = await spool.createMessage();
    w.write(Buffer.from('x'));
    const env = await w.commit(envelopeFor(w.msgid, 2));
    const [a, b] = env.recipients.map((r) => r.evpid) as [string, string];
    const many: RecipientOutcome[] = Array.from({ length: 50 }, (_, i) => ({ kind: 'deferred', at: i, detail: `try ${i}`, attempts: i, nextTry: i + 1 }));
    await Promise.all(many.map((o, i) => spool.appendOutcome(i % 2 ? a : b, o)));
    const stored = await spool.load(w.msgid);
    assert.deepEqual(stored.outcomes.get(a), many.filter((_, i) => i % 2));
    assert.deepEqual(stored.outcomes.get(b), many.filter((_, i) => !(i % 2)));
    // Concurrent first records for a message that does not exist all fail, and leave no log.
    const ghost = '0badcafe';
    const results = await Promise.allSettled([1, 2, 3].map((i) => spool.appendOutcome(`${ghost}0000000${i}`, { kind: 'held', at: i })));
    assert.ok(results.every((r) => r.status === 'rejected' && isCode('NOT_FOUND')(r.reason)));
    assert.equal(existsSync(join(tmp.root, 'queue', '0b', `${ghost}.log`)), false);
  });

  it('ignores a torn last outcome record and keeps appending after it', async () => {
    const w = await spool.createMessage();
    w.write(Buffer.from('x'));
    const env = await w.commit(envelopeFor(w.msgid, 1));
    const evpid = env.recipients[0]!.evpid;
    const logPath = join(tmp.root, 'queue', w.msgid.slice(0, 2), `${w.msgid}.log`);
    const o1: RecipientOutcome = { kind: 'deferred', at: 1, detail: 'd', attempts: 1, nextTry: 2 };
    await spool.appendOutcome(evpid, o1);
    const full = readFileSync(logPath, 'utf8');
    // A crash in the middle of the second append: half a line, no LF.
    const second = full.replace('"attempts":1', '"attempts":2');
    appendFileSync(logPath, second.slice(0, second.length - 9));
    let stored = await spool.load(w.msgid);
    assert.deepEqual(stored.outcomes.get(evpid), [o1]);
    assert.deepEqual(log, [], 'a torn last record is not worth a log line');
    const o2: RecipientOutcome = { kind: 'delivered', at: 5, detail: '250 ok' };
    await spool.appendOutcome(evpid, o2);
    stored = await spool.load(w.msgid);
    assert.deepEqual(stored.outcomes.get(evpid), [o1, o2]);
    // The torn line, now followed by a record, is a skipped line in the middle.
    assert.equal(log.length, 1);
    assert.match(log[0] ?? '', /skipped 1 unreadable/);
    // A damaged complete line is skipped (and logged), the others still count.
    writeFileSync(logPath, readFileSync(logPath, 'utf8').replace('"at":1,', '"at":7,'));
    stored = await spool.load(w.msgid);
    assert.deepEqual(stored.outcomes.get(evpid), [o2]);
    assert.match(log[1] ?? '', /skipped 2 unreadable/);
  });

  it('refuses outcomes for unknown messages and invalid outcomes', async () => {
    await assert.rejects(spool.appendOutcome('0123456789abcdef', { kind: 'held', at: 1 }), isCode('NOT_FOUND'));
    assert.equal(existsSync(join(tmp.root, 'queue', '01', '01234567.log')), false);
    await assert.rejects(spool.appendOutcome('nope', { kind: 'held', at: 1 }), isCode('INVALID'));
    const w = await spool.createMessage();
    w.write(Buffer.from('x'));
    const env = await w.commit(envelopeFor(w.msgid, 1));
    await assert.rejects(spool.appendOutcome(env.recipients[0]!.evpid, { kind: 'bogus', at: 1 } as never), isCode('INVALID'));
    await assert.rejects(spool.appendOutcome(env.recipients[0]!.evpid, { kind: 'held', at: Number.NaN }), isCode('INVALID'));
  });

  it('remove() deletes message and log; a second remove is NOT_FOUND', async () => {
    const w = await spool.createMessage();
    w.write(Buffer.from('x'));
    const env = await w.commit(envelopeFor(w.msgid, 1));
    await spool.appendOutcome(env.recipients[0]!.evpid, { kind: 'delivered', at: 1, detail: 'ok' });
    await spool.remove(w.msgid);
    assert.deepEqual(readdirSync(join(tmp.root, 'queue', w.msgid.slice(0, 2))), []);
    assert.deepEqual(await spool.list(), []);
    await assert.rejects(spool.remove(w.msgid), isCode('NOT_FOUND'));
    await assert.rejects(spool.load(w.msgid), isCode('NOT_FOUND'));
    await assert.rejects(readAll(spool.openBody(w.msgid)), isCode('NOT_FOUND'));
    await assert.rejects(spool.load('../../etc'), isCode('INVALID'));
  });

  it('openBody() fails, instead of sending the last chunk, on a body that no longer matches its checksum', async () => {
    const w = await spool.createMessage();
    const body = bodyOf(100 * KiB, 'flip');
    w.write(body);
    await w.commit(envelopeFor(w.msgid, 1));
    const path = join(tmp.root, 'queue', w.msgid.slice(0, 2), w.msgid);
    const bytes = readFileSync(path);
    bytes[5000] = (bytes[5000] as number) ^ 0x01;
    writeFileSync(path, bytes);
    await spool.load(w.msgid); // envelope and trailer are intact
    let seen = 0;
    await assert.rejects(
      (async () => {
        for await (const c of spool.openBody(w.msgid)) seen += (c as Buffer).length;
      })(),
      isCode('CORRUPT'),
    );
    assert.ok(seen < body.length, `saw ${seen} of ${body.length} bytes`);
  });

  it('reports free space', async () => {
    assert.ok((await spool.freeSpace()) > 0);
  });

  it('gives unique msgids to many concurrent writers in two processes-worth of spools', async () => {
    const other = new FsSpool({ root: tmp.root, recover: false });
    await other.open();
    const writers = await Promise.all(Array.from({ length: 600 }, (_, i) => (i % 2 ? spool : other).createMessage()));
    const ids = new Set(writers.map((w) => w.msgid));
    assert.equal(ids.size, writers.length);
    await Promise.all(writers.map((w) => w.abort()));
    await other.close();
  });

  it('never reuses a msgid held by a writer or committed in queue/', async () => {
    const layout = new Layout(tmp.root);
    const scripted = (ids: string[]): MsgidAllocator => ({ next: () => ids.shift() ?? 'ffffffff' }) as unknown as MsgidAllocator;
    const syncer = new DirSyncer(0);
    const claimed = new Set<string>();
    const ctx = (ids: string[]) => ({ layout, syncer, allocator: scripted(ids), memoryBufferBytes: 1024, publishing: new Set<string>(), live: new Set<FsMessageWriter>(), committed: () => undefined, claimed, committedId: (id: string) => existsSync(layout.messagePath(id)), journal: undefined });
    const a = await createWriter(ctx(['aaaaaaaa']));
    const b = await createWriter(ctx(['aaaaaaaa', 'bbbbbbbb']));
    assert.equal(a.msgid, 'aaaaaaaa');
    assert.equal(b.msgid, 'bbbbbbbb');
    a.write(Buffer.from('x'));
    await a.commit(envelopeFor('aaaaaaaa', 1));
    const c = await createWriter(ctx(['aaaaaaaa', 'cccccccc']));
    assert.equal(c.msgid, 'cccccccc', 'a committed msgid must not be claimed again');
    await Promise.all([b.abort(), c.abort()]);
    await syncer.close();
  });

  it('newEvpid() makes msgid + 8 hex digits, avoiding taken ones', () => {
    const taken = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const e = newEvpid('0a1b2c3d', taken);
      assert.match(e, /^0a1b2c3d[0-9a-f]{8}$/);
      assert.ok(!taken.has(e));
      taken.add(e);
    }
    assert.throws(() => newEvpid('XYZ'), isCode('INVALID'));
  });

  it('shares folder fsyncs among concurrent commits (group commit)', async () => {
    const n = 100;
    const before = spool.stats();
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const w = await spool.createMessage();
        w.write(bodyOf(1024, `g${i}`));
        await w.commit(envelopeFor(w.msgid, 1));
      }),
    );
    const after = spool.stats();
    assert.equal(after.commits - before.commits, n);
    const fsyncs = after.dirFsyncs - before.dirFsyncs;
    assert.ok(fsyncs < n / 2, `${fsyncs} folder fsyncs for ${n} concurrent commits`);
    assert.equal((await spool.list()).length, n);
  });

  it('hides a renamed message whose folder fsync has not finished', async () => {
    // A 50 ms gathering window keeps the message between rename and fsync long enough to look.
    const slow = new FsSpool({ root: tmp.root, recover: false, groupCommitMs: 50 });
    await slow.open();
    const w = await slow.createMessage();
    w.write(Buffer.from('x'));
    let done = false;
    const p = w.commit(envelopeFor(w.msgid, 1)).then(() => (done = true));
    const final = join(tmp.root, 'queue', w.msgid.slice(0, 2), w.msgid);
    let sawHidden = false;
    while (!done) {
      if (existsSync(final)) {
        const listed = (await slow.list()).includes(w.msgid);
        if (!done) {
          assert.equal(listed, false, 'listed before commit() resolved');
          await assert.rejects(slow.load(w.msgid), isCode('NOT_FOUND'));
          sawHidden = true;
        }
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    await p;
    assert.ok(sawHidden);
    assert.deepEqual(await slow.list(), [w.msgid]);
    await slow.close();
  });

  it('close() lets commits in flight finish and aborts writers that had not committed', async () => {
    const s = new FsSpool({ root: tmp.root, recover: false });
    await s.open();
    const idle = await s.createMessage();
    idle.write(bodyOf(100 * KiB, 'idle'));
    const busy = await s.createMessage();
    busy.write(Buffer.from('x'));
    const committing = busy.commit(envelopeFor(busy.msgid, 1));
    await s.close();
    await committing;
    assert.deepEqual(readdirSync(join(tmp.root, 'incoming')), []);
    assert.deepEqual(await spool.list(), [busy.msgid]);
    await assert.rejects(idle.commit(envelopeFor(idle.msgid, 1)), isCode('STATE'));
  });

  it('refuses use before open() and after close()', async () => {
    const s = new FsSpool({ root: tmp.root, recover: false });
    await assert.rejects(s.list(), isCode('STATE'));
    await assert.rejects(s.createMessage(), isCode('STATE'));
    await s.open();
    await s.close();
    await assert.rejects(s.load('01234567'), isCode('STATE'));
  });
});

describe('DirSyncer', () => {
  it('never answers a request with an fsync that started before it', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const dir = join(tmp.root, '..');
    const s = new DirSyncer(0);
    const p1 = s.sync(dir); // starts fsync #1 at once
    const p2 = s.sync(dir); // must wait for fsync #2
    const p3 = s.sync(dir); // shares fsync #2
    await Promise.all([p1, p2, p3]);
    assert.equal(s.fsyncs, 2);
    await s.close();
    await assert.rejects(s.sync(dir), isCode('STATE'));
  });

  it('gathers requests for groupCommitMs before syncing', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const dir = join(tmp.root, '..');
    const s = new DirSyncer(20);
    const first = s.sync(dir);
    await new Promise((r) => setTimeout(r, 5));
    await Promise.all([first, s.sync(dir), s.sync(dir)]);
    assert.equal(s.fsyncs, 1);
    await s.close();
  });

  it('fails the batch when the folder cannot be opened, and recovers afterwards', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const s = new DirSyncer(0);
    await assert.rejects(s.sync(join(tmp.root, 'missing')), (e: unknown) => (e as { code?: string }).code === 'ENOENT');
    await s.sync(join(tmp.root, '..'));
    await s.close();
  });
});
