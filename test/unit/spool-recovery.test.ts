/*
 * test/unit/spool-recovery.test.ts — FsSpool.open(): VERSION, leftovers, corrupt files.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FsSpool, SpoolError } from '../../src/spool/fs/fs-spool.js';
import { encodeTrailer } from '../../src/spool/fs/message-file.js';
import { bodyOf, envelopeFor, readAll, tmpSpoolRoot } from '../helpers/spool-fixtures.js';

function isCode(code: string): (err: unknown) => boolean {
  return (err) => err instanceof SpoolError && err.code === code;
}

async function commitOne(spool: FsSpool, size: number, seed: string): Promise<string> {
  const w = await spool.createMessage();
  w.write(bodyOf(size, seed));
  await w.commit(envelopeFor(w.msgid, 2));
  return w.msgid;
}

function qpath(root: string, name: string): string {
  return join(root, 'queue', name.slice(0, 2), name);
}

describe('FsSpool recovery', () => {
  it('creates a fresh spool with VERSION and the folders', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const s = new FsSpool({ root: tmp.root });
    assert.deepEqual(await s.open(), { messages: 0, removedIncomplete: 0, corrupt: [] });
    assert.equal(readFileSync(join(tmp.root, 'VERSION'), 'utf8'), 'postern-spool 1\n');
    for (const d of ['incoming', 'queue', 'corrupt', 'offline', 'queue/00', 'queue/ff']) assert.ok(existsSync(join(tmp.root, d)), d);
    await s.close();
  });

  it('refuses a spool of another format version', async (t) => {
    const tmp = tmpSpoolRoot(t);
    await new FsSpool({ root: tmp.root }).open();
    writeFileSync(join(tmp.root, 'VERSION'), 'postern-spool 2\n');
    await assert.rejects(new FsSpool({ root: tmp.root }).open(), (e: unknown) => isCode('VERSION')(e) && /postern-spool 2/.test((e as Error).message));
  });

  it('refuses a non-empty folder without VERSION', async (t) => {
    const tmp = tmpSpoolRoot(t);
    mkdirSync(tmp.root);
    writeFileSync(join(tmp.root, 'something'), 'x');
    await assert.rejects(new FsSpool({ root: tmp.root }).open(), isCode('VERSION'));
  });

  it('removes leftovers in incoming/, keeps good messages, quarantines bad files with reasons', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const root = tmp.root;
    const first = new FsSpool({ root });
    await first.open();
    const good = await commitOne(first, 3000, 'good');
    const goodWithLog = await commitOne(first, 100, 'goodlog');
    const bodyFlip = await commitOne(first, 5000, 'bodyflip');
    const truncated = await commitOne(first, 3000, 'trunc');
    const envFlip = await commitOne(first, 3000, 'envflip');
    const lenFlip = await commitOne(first, 3000, 'lenflip');
    const badWithLog = await commitOne(first, 3000, 'badlog');
    const moved = await commitOne(first, 100, 'moved');
    const orphan = await commitOne(first, 100, 'orphan');
    const loaded = await first.load(goodWithLog);
    await first.appendOutcome(loaded.envelope.recipients[0]!.evpid, { kind: 'delivered', at: 1, detail: 'ok' });
    const bad = await first.load(badWithLog);
    await first.appendOutcome(bad.envelope.recipients[0]!.evpid, { kind: 'delivered', at: 1, detail: 'ok' });
    const orphanLoaded = await first.load(orphan);
    await first.appendOutcome(orphanLoaded.envelope.recipients[0]!.evpid, { kind: 'held', at: 1 });
    await first.close();
    // Writes that never committed (the process died; see spool-crash.test.ts for the real thing).
    writeFileSync(join(root, 'incoming', '0badf00d'), bodyOf(300 * 1024, 'w1'));
    writeFileSync(join(root, 'incoming', '0badf00e'), 'small');

    // Damage.
    const flip = (name: string, fromEnd: number): void => {
      const p = qpath(root, name);
      const b = readFileSync(p);
      const i = b.length - fromEnd;
      b[i] = (b[i] as number) ^ 0x10;
      writeFileSync(p, b);
    };
    flip(bodyFlip, readFileSync(qpath(root, bodyFlip)).length - 100); // byte 100 of the body
    truncateSync(qpath(root, truncated), 3000 + 50);
    flip(envFlip, 88 + 20); // inside the envelope JSON
    flip(lenFlip, 88 - 12); // envelope length field
    flip(badWithLog, 88 - 60); // envelope checksum
    // A garbled file, an empty file, a valid-checksum file with a bad envelope, a stray name.
    writeFileSync(qpath(root, 'abcdef01'), bodyOf(700, 'garbage'));
    writeFileSync(qpath(root, 'abcdef02'), '');
    const envJson = Buffer.from(JSON.stringify({ ...envelopeFor('abcdef03', 1), version: 1, msgid: 'abcdef03', size: 3, recipients: [] }));
    writeFileSync(qpath(root, 'abcdef03'), Buffer.concat([Buffer.from('abc'), envJson, encodeTrailer(3, Buffer.alloc(32), envJson)]));
    writeFileSync(join(root, 'queue', '00', 'notes.txt'), 'hello');
    // A good message under another name in its own bucket, and one in the wrong bucket.
    const copyName = `${good.slice(0, 2)}${good.slice(2) === '000000' ? '000001' : '000000'}`;
    writeFileSync(qpath(root, copyName), readFileSync(qpath(root, good)));
    const wrongBucket = moved.slice(0, 2) === '00' ? '01' : '00';
    renameSync(qpath(root, moved), join(root, 'queue', wrongBucket, moved));
    // A message whose log survives it (removed by hand).
    renameSync(qpath(root, orphan), join(root, 'orphan-message'));
    // Leftover in incoming from an older crash, with a name that is not a msgid.
    writeFileSync(join(root, 'incoming', 'junk'), 'x');

    const log: string[] = [];
    const second = new FsSpool({ root, log: (l) => log.push(l) });
    const report = await second.open();

    assert.equal(report.removedIncomplete, 3);
    const reasons = new Map(report.corrupt.map((c) => [c.name.split('/').pop() ?? '', c.reason]));
    assert.match(reasons.get(truncated) ?? '', /!= file size|no trailer/);
    assert.match(reasons.get(envFlip) ?? '', /envelope checksum mismatch/);
    assert.match(reasons.get(lenFlip) ?? '', /!= file size|out of range/);
    assert.match(reasons.get(badWithLog) ?? '', /envelope checksum mismatch/);
    assert.match(reasons.get('abcdef01') ?? '', /magic missing|no trailer/);
    assert.match(reasons.get('abcdef02') ?? '', /no trailer: file is 0 bytes/);
    assert.match(reasons.get('abcdef03') ?? '', /recipients: not a non-empty list/);
    assert.match(reasons.get('notes.txt') ?? '', /unexpected file name/);
    assert.match(reasons.get(copyName) ?? '', /does not match/);
    assert.match(reasons.get(moved) ?? '', /belongs in bucket/);
    assert.equal(report.corrupt.length, 10, JSON.stringify(report.corrupt, null, 1));
    // good, goodWithLog, bodyFlip (body damage is found when the body is read, not at open).
    assert.equal(report.messages, 3);
    assert.deepEqual((await second.list()).sort(), [good, goodWithLog, bodyFlip].sort());

    const corruptDir = readdirSync(join(root, 'corrupt')).sort();
    assert.ok(corruptDir.includes(truncated));
    assert.ok(corruptDir.includes(`${badWithLog}.log`), 'the log went along with its message');
    assert.ok(!existsSync(join(root, 'queue', orphan.slice(0, 2), `${orphan}.log`)), 'orphan log removed');
    assert.deepEqual(readdirSync(join(root, 'incoming')), []);
    assert.ok(log.some((l) => l.includes('removed incomplete incoming/')));
    assert.ok(log.some((l) => l.includes(`moved queue/${envFlip.slice(0, 2)}/${envFlip} to corrupt/${envFlip}`)));
    assert.ok(log.some((l) => l.includes('outcome log without a message')));

    const kept = await second.load(goodWithLog);
    assert.equal(kept.outcomes.size, 1);
    assert.ok((await readAll(second.openBody(good))).equals(bodyOf(3000, 'good')));
    await second.close();

    // A second open finds nothing more to do.
    const third = new FsSpool({ root });
    assert.deepEqual(await third.open(), { messages: 3, removedIncomplete: 0, corrupt: [] });
    await third.close();
  });

  it('moves a quarantined file under a free name when corrupt/ already has one', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const s = new FsSpool({ root: tmp.root });
    await s.open();
    await s.close();
    for (let i = 0; i < 2; i++) {
      writeFileSync(qpath(tmp.root, 'abcdef01'), 'garbage');
      const r = await new FsSpool({ root: tmp.root }).open();
      assert.equal(r.corrupt.length, 1);
    }
    assert.deepEqual(readdirSync(join(tmp.root, 'corrupt')).sort(), ['abcdef01', 'abcdef01.1']);
  });

  it('leaves incoming/ alone with recover: false', async (t) => {
    const tmp = tmpSpoolRoot(t);
    const a = new FsSpool({ root: tmp.root });
    await a.open();
    const w = await a.createMessage();
    w.write(Buffer.from('in progress'));
    const b = new FsSpool({ root: tmp.root, recover: false });
    assert.deepEqual(await b.open(), { messages: 0, removedIncomplete: 0, corrupt: [] });
    await w.commit(envelopeFor(w.msgid, 1));
    await a.list(); // the owner's I/O thread writes the file just after the commit resolves
    assert.deepEqual(await b.list(), [w.msgid]);
    await Promise.all([a.close(), b.close()]);
  });
});
