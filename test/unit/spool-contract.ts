/*
 * The contract of spool/spool.ts, written once and run against every
 * backend (spool-contract-fs.test.ts today). A backend passes when a
 * caller that knows only the interface gets what spool.ts promises: ids
 * minted by the backend, bodies and envelopes read back as written,
 * outcomes in order, removals, NOT_FOUND as a SpoolError, aborted writers
 * leaving nothing, and the body as a file for outside programs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { EnvelopeDraft, Spool } from '../../src/spool/spool.js';
import { isSpoolError } from '../../src/spool/errors.js';

export interface Backend {
  /** A new, empty spool, not yet opened. */
  make(): Promise<Spool> | Spool;
  /** A second handle on the same storage, as another process would open it (after the first is closed). */
  reopen(): Promise<Spool> | Spool;
  cleanup(): Promise<void> | void;
}

function draft(recipients: string[], extra: Partial<EnvelopeDraft> = {}): EnvelopeDraft {
  return {
    sender: 'sender@example.org',
    recipients: recipients.map((address) => ({ address, action: 'deliver', dest: { kind: 'user', user: address.split('@')[0] ?? 'x' } })),
    body: '8BITMIME',
    smtputf8: false,
    arrival: 1_700_000_000_000,
    client: { address: '192.0.2.1', port: 25000, proto: 'ESMTP', listener: '127.0.0.1:25' },
    ...extra,
  };
}

async function text(r: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const b of r) parts.push(b as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

export function spoolContract(name: string, backend: Backend): void {
  const withSpool = (title: string, fn: (spool: Spool) => Promise<void>): void => {
    test(`${name}: ${title}`, async () => {
      const spool = await backend.make();
      await spool.open();
      try {
        await fn(spool);
      } finally {
        await spool.close();
        await backend.cleanup();
      }
    });
  };

  withSpool('a committed message reads back as written, with ids the spool minted', async (spool) => {
    const w = await spool.createMessage();
    assert.match(w.msgid, /^[0-9a-f]{8}$/);
    w.write(Buffer.from('Subject: hi\r\n\r\n'));
    w.write(Buffer.from('body\r\n'));
    await w.drain();
    assert.equal(w.size, 21);
    const env = await w.commit(draft(['a@example.org', 'b@example.org', 'c@example.org']));
    assert.equal(env.msgid, w.msgid);
    assert.equal(env.size, 21);
    assert.equal(env.version, 1);
    const ids = env.recipients.map((r) => r.evpid);
    assert.equal(new Set(ids).size, 3, 'every recipient has its own evpid');
    for (const id of ids) assert.ok(id.startsWith(env.msgid) && id.length === 16, id);
    assert.deepEqual(await spool.list(), [env.msgid]);
    const stored = await spool.load(env.msgid);
    assert.deepEqual(stored.envelope, env);
    assert.equal(stored.outcomes.size, 0);
    assert.equal(await text(spool.openBody(env.msgid)), 'Subject: hi\r\n\r\nbody\r\n');
  });

  withSpool('a caller cannot set the msgid, the size or the version', async (spool) => {
    const w = await spool.createMessage();
    w.write(Buffer.from('x\r\n'));
    const env = await w.commit({ ...draft(['a@example.org']), msgid: 'ffffffff', size: 99, version: 7 } as EnvelopeDraft);
    assert.equal(env.msgid, w.msgid);
    assert.equal(env.size, 3);
    assert.equal(env.version, 1);
  });

  withSpool('an aborted writer leaves nothing, and a second abort is harmless', async (spool) => {
    const w = await spool.createMessage();
    w.write(Buffer.from('never\r\n'));
    await w.abort();
    await w.abort();
    assert.deepEqual(await spool.list(), []);
    await assert.rejects(spool.load(w.msgid), (e) => isSpoolError(e, 'NOT_FOUND'));
  });

  withSpool('outcomes come back in the order recorded, per recipient', async (spool) => {
    const w = await spool.createMessage();
    w.write(Buffer.from('x\r\n'));
    const env = await w.commit(draft(['a@example.org', 'b@example.org']));
    const [a, b] = env.recipients.map((r) => r.evpid) as [string, string];
    await spool.appendOutcome(a, { kind: 'deferred', at: 1, detail: '4.0.0 later', attempts: 1, nextTry: 2 });
    await spool.appendOutcome(b, { kind: 'held', at: 1 });
    await spool.appendOutcome(a, { kind: 'delivered', at: 3, detail: '2.0.0 ok' });
    const stored = await spool.load(env.msgid);
    assert.deepEqual(stored.outcomes.get(a)?.map((o) => o.kind), ['deferred', 'delivered']);
    assert.deepEqual(stored.outcomes.get(b)?.map((o) => o.kind), ['held']);
  });

  withSpool('a removed message is gone: NOT_FOUND is a SpoolError', async (spool) => {
    const w = await spool.createMessage();
    w.write(Buffer.from('x\r\n'));
    const env = await w.commit(draft(['a@example.org']));
    await spool.remove(env.msgid);
    assert.deepEqual(await spool.list(), []);
    await assert.rejects(spool.load(env.msgid), (e) => isSpoolError(e, 'NOT_FOUND'));
  });

  withSpool('the body so far as a file for an outside program, and the rest after it', async (spool) => {
    const w = await spool.createMessage();
    w.write(Buffer.from('Subject: filtered\r\n\r\n'));
    w.write(Buffer.from('first\r\n'));
    const f = await w.bodyFile();
    assert.ok(!f.name.startsWith('/') && !f.name.includes('..'), f.name);
    assert.equal(readFileSync(join(f.dir, f.name), 'utf8'), 'Subject: filtered\r\n\r\nfirst\r\n');
    w.write(Buffer.from('second\r\n'));
    const env = await w.commit(draft(['a@example.org']));
    assert.equal(await text(spool.openBody(env.msgid)), 'Subject: filtered\r\n\r\nfirst\r\nsecond\r\n');
  });

  withSpool('a write after commit is refused with a SpoolError', async (spool) => {
    const w = await spool.createMessage();
    w.write(Buffer.from('x\r\n'));
    await w.commit(draft(['a@example.org']));
    assert.throws(() => w.write(Buffer.from('late')), (e) => isSpoolError(e, 'STATE'));
  });

  withSpool('concurrent writers get distinct msgids; every commit is kept', async (spool) => {
    const writers = await Promise.all(Array.from({ length: 50 }, () => spool.createMessage()));
    assert.equal(new Set(writers.map((w) => w.msgid)).size, 50);
    const envs = await Promise.all(
      writers.map((w, i) => {
        w.write(Buffer.from(`message ${i}\r\n`));
        return w.commit(draft([`u${i}@example.org`]));
      }),
    );
    assert.deepEqual((await spool.list()).sort(), envs.map((e) => e.msgid).sort());
  });

  withSpool('free space is a number', async (spool) => {
    const n = await spool.freeSpace();
    assert.equal(typeof n, 'number');
    assert.ok(n > 0);
  });

  test(`${name}: what was committed survives a close and a reopen`, async () => {
    const spool = await backend.make();
    await spool.open();
    let msgid: string;
    try {
      const w = await spool.createMessage();
      w.write(Buffer.from('kept\r\n'));
      const env = await w.commit(draft(['a@example.org']));
      msgid = env.msgid;
      await spool.appendOutcome(env.recipients[0]!.evpid, { kind: 'held', at: 5 });
      const gone = await spool.createMessage();
      gone.write(Buffer.from('not committed\r\n'));
      await gone.abort();
    } finally {
      await spool.close();
    }
    const again = await backend.reopen();
    await again.open();
    try {
      assert.deepEqual(await again.list(), [msgid]);
      const stored = await again.load(msgid);
      assert.equal(stored.outcomes.size, 1);
      assert.equal(await text(again.openBody(msgid)), 'kept\r\n');
    } finally {
      await again.close();
      await backend.cleanup();
    }
  });
}
