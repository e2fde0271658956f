/*
 * test/unit/spool-journal.test.ts — the spool journal: its record format
 * (cut at every byte), replay after a crash (missing, torn and removed
 * messages), checkpoints with syncfs and with the per-file fallback, and
 * group commit (many commits, few fdatasyncs).
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FsSpool } from '../../src/spool/fs/fs-spool.js';
import { encodeRecordHeader, parseSegment, segmentName } from '../../src/spool/fs/journal-format.js';
import { checkMessageBytes } from '../../src/spool/fs/message-file.js';
import { bodyOf, envelopeFor, readAll, tmpSpoolRoot } from '../helpers/spool-fixtures.js';

function qpath(root: string, msgid: string): string {
  return join(root, 'queue', msgid.slice(0, 2), msgid);
}

async function commit(spool: FsSpool, body: Buffer): Promise<string> {
  const w = await spool.createMessage();
  w.write(body);
  await w.commit(envelopeFor(w.msgid, 1));
  return w.msgid;
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function segments(root: string): string[] {
  return readdirSync(join(root, 'journal'));
}

describe('spool journal: record format', () => {
  it('parses what it encodes, and stops cleanly wherever the last record is cut', () => {
    const payload = Buffer.from('a message file, more or less');
    const whole = Buffer.concat([encodeRecordHeader('M', '0a1b2c3d', payload.length), payload, encodeRecordHeader('T', '0a1b2c3d', 0)]);
    const parsed = parseSegment(whole);
    assert.deepEqual(
      parsed.records.map((r) => [r.type, r.msgid, r.payload.toString()]),
      [
        ['M', '0a1b2c3d', payload.toString()],
        ['T', '0a1b2c3d', ''],
      ],
    );
    assert.equal(parsed.trailing, 0);
    const firstEnd = 20 + payload.length;
    for (let cut = 0; cut < whole.length; cut++) {
      const p = parseSegment(whole.subarray(0, cut));
      assert.equal(p.records.length, cut < firstEnd ? 0 : 1, `cut at ${cut}`);
      assert.equal(p.trailing, cut < firstEnd ? cut : cut - firstEnd);
    }
  });

  it('stops at damage rather than reading garbage as records', () => {
    const good = Buffer.concat([encodeRecordHeader('M', '0a1b2c3d', 3), Buffer.from('abc')]);
    for (const [at, byte] of [
      [0, 0x58],
      [4, 0x58],
      [5, 1],
      [8, 0x5a],
    ] as const) {
      const bad = Buffer.from(good);
      bad[at] = byte;
      assert.equal(parseSegment(bad).records.length, 0, `byte ${at}`);
    }
    const tomb = encodeRecordHeader('T', '0a1b2c3d', 0);
    tomb.writeUInt32BE(5, 16);
    assert.equal(parseSegment(Buffer.concat([tomb, Buffer.alloc(5)])).records.length, 0, 'a tombstone with a payload');
    assert.throws(() => encodeRecordHeader('M', 'nope', 1), RangeError);
  });
});

describe('spool journal: commits and checkpoints', () => {
  it('makes concurrent commits durable in shared batches, then checkpoints and drops the segment', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const spool = new FsSpool({ root: tmp.root, journal: { checkpointMs: 100 } });
    await spool.open();
    const ids = await Promise.all(Array.from({ length: 200 }, (_, i) => commit(spool, bodyOf(500 + i, `m${i}`))));
    const st = spool.stats();
    assert.equal(st.commits, 200);
    assert.ok(st.journalBatches < 200, `200 commits took ${st.journalBatches} batches`);
    for (const [i, id] of ids.entries()) {
      await spool.load(id); // waits for the I/O thread to have written the file
      assert.equal(checkMessageBytes(readFileSync(qpath(tmp.root, id)), id), null);
      assert.ok((await readAll(spool.openBody(id))).equals(bodyOf(500 + i, `m${i}`)));
    }
    await waitFor(() => spool.stats().checkpoints > 0 && segments(tmp.root).length === 1);
    assert.equal(parseSegment(readFileSync(join(tmp.root, 'journal', segments(tmp.root)[0] as string))).records.length, 0, 'the new segment is empty');
    await spool.close();
    assert.deepEqual(segments(tmp.root), [], 'close checkpoints and removes every segment');
  });

  it('falls back to fsyncing each file when syncfs is not available', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const lines: string[] = [];
    const spool = new FsSpool({ root: tmp.root, journal: { checkpointMs: 50, syncCommand: ['/nonexistent/sync'] }, log: (l) => lines.push(l) });
    await spool.open();
    await Promise.all(Array.from({ length: 20 }, (_, i) => commit(spool, bodyOf(100, `f${i}`))));
    await waitFor(() => spool.stats().checkpoints > 0);
    assert.ok(lines.some((l) => /fsyncing each message file instead/.test(l)), lines.join('\n'));
    await spool.close();
    assert.deepEqual(segments(tmp.root), []);
  });

  it('keeps the bodies of recent commits in memory for deliveries, and forgets them at removal', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const spool = new FsSpool({ root: tmp.root, journal: { checkpointMs: 60_000 } });
    await spool.open();
    const id = await commit(spool, bodyOf(700, 'cached'));
    await spool.load(id);
    // The file is not read: even gone from the disk, the body is served.
    unlinkSync(qpath(tmp.root, id));
    assert.ok((await readAll(spool.openBody(id))).equals(bodyOf(700, 'cached')));
    await assert.rejects(spool.remove(id), /no message/);
    await assert.rejects(readAll(spool.openBody(id)), /no message/);
    await spool.close();
  });

  it('makes removals durable with a checkpoint of their own, with nothing else written', async (t) => {
    for (const syncCommand of [undefined, ['/nonexistent/sync']]) {
      const tmp = tmpSpoolRoot(t);
      const spool = new FsSpool({ root: tmp.root, journal: { checkpointMs: 50, ...(syncCommand ? { syncCommand } : {}) } });
      await spool.open();
      const id = await commit(spool, bodyOf(300, 'to remove'));
      await waitFor(() => spool.stats().checkpoints > 0);
      const before = spool.stats().checkpoints;
      await spool.remove(id); // checkpointed already: no tombstone, only the unlink
      await waitFor(() => spool.stats().checkpoints > before);
      assert.ok(!existsSync(qpath(tmp.root, id)));
      await spool.close();
    }
  });

  it('takes each commit buffer back from the I/O thread for the next one, while cached bodies stay intact', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const spool = new FsSpool({ root: tmp.root, journal: { checkpointMs: 60_000 } });
    await spool.open();
    const a = await commit(spool, bodyOf(5000, 'first'));
    await spool.load(a); // its file is written, so its buffer is back
    assert.equal(spool.stats().pooledBytes, 8192);
    const b = await commit(spool, bodyOf(5100, 'second')); // same size class: the same buffer again
    await spool.load(b);
    assert.equal(spool.stats().pooledBytes, 8192);
    assert.ok((await readAll(spool.openBody(a))).equals(bodyOf(5000, 'first')));
    assert.ok(readFileSync(qpath(tmp.root, a)).subarray(0, 5000).equals(bodyOf(5000, 'first')));
    assert.ok(readFileSync(qpath(tmp.root, b)).subarray(0, 5100).equals(bodyOf(5100, 'second')));
    assert.equal(checkMessageBytes(readFileSync(qpath(tmp.root, b)), b), null);
    await spool.close();
  });

  it('keeps large messages out of the journal (they fsync their own file)', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const spool = new FsSpool({ root: tmp.root, memoryBufferBytes: 1024, journal: { checkpointMs: 60_000 } });
    await spool.open();
    const id = await commit(spool, bodyOf(10_000, 'big'));
    const seg = segments(tmp.root)[0] as string;
    assert.equal(parseSegment(readFileSync(join(tmp.root, 'journal', seg))).records.length, 0);
    assert.ok((await readAll(spool.openBody(id))).equals(bodyOf(10_000, 'big')));
    await spool.close();
  });

  it('removes outcome logs with their messages, whether this process or an earlier one started them', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const logOf = (msgid: string): string => `${qpath(tmp.root, msgid)}.log`;
    const defer = async (spool: FsSpool, msgid: string): Promise<void> => {
      const { envelope } = await spool.load(msgid);
      await spool.appendOutcome(envelope.recipients[0]!.evpid, { kind: 'deferred', at: 1, detail: '451 later', attempts: 1, nextTry: 2 });
    };
    const first = new FsSpool({ root: tmp.root, journal: { checkpointMs: 60_000 } });
    await first.open();
    const old = await commit(first, bodyOf(100, 'old'));
    await defer(first, old);
    await first.close();
    const spool = new FsSpool({ root: tmp.root, journal: { checkpointMs: 60_000 } });
    await spool.open();
    const plain = await commit(spool, bodyOf(100, 'plain')); // never an outcome: no log to unlink
    const logged = await commit(spool, bodyOf(100, 'logged'));
    await defer(spool, logged);
    assert.ok(existsSync(logOf(old)) && existsSync(logOf(logged)));
    for (const id of [plain, logged, old]) await spool.remove(id);
    for (const id of [plain, logged, old]) assert.ok(!existsSync(qpath(tmp.root, id)) && !existsSync(logOf(id)), id);
    await spool.close();
  });
});

describe('spool journal: replay after a crash', () => {
  /** A spool folder holding a journal segment as a crashed process would leave it. */
  async function crashedSpool(t: { after(fn: () => void): void }) {
    const tmp = tmpSpoolRoot(t);
    // Messages made by a real spool, then the segment written by hand around them.
    const maker = new FsSpool({ root: tmp.root, journal: false });
    await maker.open();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await commit(maker, bodyOf(300 + i, `r${i}`)));
    await maker.close();
    const files = ids.map((id) => readFileSync(qpath(tmp.root, id)));
    const [a, b, c, d] = ids as [string, string, string, string];
    const seg = join(tmp.root, 'journal', segmentName(4242, 1));
    mkdirSync(join(tmp.root, 'journal'), { recursive: true });
    const rec = (i: number): Buffer[] => [encodeRecordHeader('M', ids[i] as string, (files[i] as Buffer).length), files[i] as Buffer];
    writeFileSync(seg, Buffer.concat([...rec(0), ...rec(1), ...rec(2), encodeRecordHeader('T', c, 0), ...rec(3)]));
    // The crash: a's file never reached the disk, b's was cut short, c was removed (tombstone), d is whole.
    unlinkSync(qpath(tmp.root, a));
    truncateSync(qpath(tmp.root, b), 100);
    unlinkSync(qpath(tmp.root, c));
    return { tmp, ids: { a, b, c, d }, files, seg };
  }

  it('restores missing and torn files, keeps removed ones removed, and drops the segments', async (t) => {
    const { tmp, ids, files } = await crashedSpool(t);
    const lines: string[] = [];
    const spool = new FsSpool({ root: tmp.root, log: (l) => lines.push(l) });
    const report = await spool.open();
    assert.deepEqual(report.corrupt, []);
    assert.deepEqual((await spool.list()).sort(), [ids.a, ids.b, ids.d].sort());
    assert.ok(readFileSync(qpath(tmp.root, ids.a)).equals(files[0] as Buffer));
    assert.ok(readFileSync(qpath(tmp.root, ids.b)).equals(files[1] as Buffer));
    assert.ok(!existsSync(qpath(tmp.root, ids.c)), 'a tombstoned message stays removed');
    assert.ok(lines.some((l) => /restored 2 message file/.test(l)), lines.join('\n'));
    assert.deepEqual(segments(tmp.root).filter((n) => n.startsWith('4242-')), []);
    await spool.close();
  });

  it('ignores a batch cut short by the crash', async (t) => {
    const { tmp, ids, files, seg } = await crashedSpool(t);
    // A fifth record whose payload never fully arrived.
    appendFileSync(seg, Buffer.concat([encodeRecordHeader('M', 'feedface', 5000), Buffer.alloc(100)]));
    const lines: string[] = [];
    const spool = new FsSpool({ root: tmp.root, log: (l) => lines.push(l) });
    await spool.open();
    assert.ok(!(await spool.list()).includes('feedface'));
    assert.ok(readFileSync(qpath(tmp.root, ids.a)).equals(files[0] as Buffer));
    assert.ok(lines.some((l) => /ignored the last 120 byte/.test(l)), lines.join('\n'));
    await spool.close();
  });

  it('a message removed after its commit is not brought back (tombstone)', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const spool = new FsSpool({ root: tmp.root, journal: { checkpointMs: 60_000 } });
    await spool.open();
    const keep = await commit(spool, bodyOf(200, 'keep'));
    const gone = await commit(spool, bodyOf(200, 'gone'));
    await spool.remove(gone);
    // The tombstone rides with the next batch.
    await commit(spool, bodyOf(200, 'next'));
    const seg = join(tmp.root, 'journal', segments(tmp.root)[0] as string);
    const recs = parseSegment(readFileSync(seg)).records.map((r) => `${r.type} ${r.msgid}`);
    assert.ok(recs.includes(`T ${gone}`), recs.join(', '));
    // Crash now (no close): copy the folder as it is, and open the copy.
    const copy = tmpSpoolRoot(t);
    await import('node:fs/promises').then((fs) => fs.cp(tmp.root, copy.root, { recursive: true }));
    const after = new FsSpool({ root: copy.root });
    await after.open();
    const listed = await after.list();
    assert.ok(listed.includes(keep));
    assert.ok(!listed.includes(gone));
    await after.close();
    await spool.close();
  });
});
