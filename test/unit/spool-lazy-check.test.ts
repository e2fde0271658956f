/*
 * test/unit/spool-lazy-check.test.ts — FsSpool with checkAtOpen: false (the
 * daemon's large-queue start): open() looks at names only, load() checks
 * each file the first time it reads it and moves a corrupt one (and its
 * outcome log) to corrupt/; outcome logs without a message still go at open.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FsSpool, SpoolError } from '../../src/spool/fs/fs-spool.js';
import { bodyOf, envelopeFor, tmpSpoolRoot } from '../helpers/spool-fixtures.js';

function qpath(root: string, name: string): string {
  return join(root, 'queue', name.slice(0, 2), name);
}

describe('FsSpool checkAtOpen: false', () => {
  it('opens by names, checks a file when it is loaded, and sets a corrupt one aside then', async (t) => {
    const { root } = tmpSpoolRoot(t);
    const first = new FsSpool({ root });
    await first.open();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const w = await first.createMessage();
      w.write(bodyOf(2000, `m${i}`));
      ids.push((await w.commit(envelopeFor(w.msgid, 1))).msgid);
    }
    const [good, bad, orphan] = ids as [string, string, string];
    const env = await first.load(bad);
    await first.appendOutcome(env.envelope.recipients[0]?.evpid as string, { kind: 'held', at: 1 });
    const o = await first.load(orphan);
    await first.appendOutcome(o.envelope.recipients[0]?.evpid as string, { kind: 'held', at: 1 });
    await first.close();
    // Damage inside the envelope of one; remove the message of another, leaving its outcome log.
    const p = qpath(root, bad);
    const b = readFileSync(p);
    b[b.length - 88 - 10] = (b[b.length - 88 - 10] as number) ^ 0x10;
    writeFileSync(p, b);
    rmSync(qpath(root, orphan));

    const lines: string[] = [];
    const s = new FsSpool({ root, checkAtOpen: false, log: (l) => lines.push(l) });
    assert.deepEqual(await s.open(), { messages: 2, removedIncomplete: 0, corrupt: [] }, 'names only: the damage is not seen yet');
    assert.equal(existsSync(`${qpath(root, orphan)}.log`), false, 'an outcome log without its message goes at open');
    assert.deepEqual((await s.list()).sort(), [good, bad].sort());
    assert.equal((await s.load(good)).envelope.msgid, good);
    await assert.rejects(s.load(bad), (e: unknown) => e instanceof SpoolError && e.code === 'CORRUPT');
    assert.equal(existsSync(p), false);
    assert.deepEqual(readdirSync(join(root, 'corrupt')).sort(), [bad, `${bad}.log`].sort(), 'the message and its log, set aside');
    assert.ok(lines.some((l) => l === `spool: moved queue/${bad.slice(0, 2)}/${bad} to corrupt/${bad}: trailer: envelope checksum mismatch`), lines.join('\n'));
    await assert.rejects(s.load(bad), (e: unknown) => e instanceof SpoolError && e.code === 'NOT_FOUND');
    assert.deepEqual(await s.list(), [good]);
    await s.close();
  });
});
