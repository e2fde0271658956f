/*
 * test/helpers/spool-crash-writer.ts — the victim of spool-crash.test.ts.
 *
 * Usage: node spool-crash-writer.js ROOT [CONCURRENCY]
 * Opens the spool at ROOT (without recovery: the test does that; with the
 * journal, checkpointing every 50–450 ms), prints
 * "ready", then runs CONCURRENCY writers forever. Each writes a message
 * (mostly small, some streamed over several hundred KiB or a few MiB, a few
 * aborted), and after commit() resolves prints "m <msgid> <size> <seed>";
 * for some it then appends an outcome and, once that resolves, prints
 * "o <evpid>". The body is crashBody(seed, size) and the envelope's envid is
 * the seed, so any message found on disk can be checked. stdout is a pipe,
 * written synchronously on Linux: a printed line left the process before
 * the next operation started.
 */
import { randomBytes } from 'node:crypto';
import { FsSpool } from '../../src/spool/fs/fs-spool.js';
import { crashBody, envelopeFor } from './spool-fixtures.js';

function pickSize(): number {
  const r = Math.random();
  if (r < 0.7) return Math.floor(Math.random() * 8000);
  if (r < 0.95) return 64 * 1024 + Math.floor(Math.random() * 300_000);
  return 1024 * 1024 + Math.floor(Math.random() * 2 * 1024 * 1024);
}

async function writer(spool: FsSpool): Promise<never> {
  for (;;) {
    const seed = randomBytes(6).toString('hex');
    const size = pickSize();
    const body = crashBody(seed, size);
    const w = await spool.createMessage();
    for (let off = 0; off < size; off += 16 * 1024) {
      w.write(body.subarray(off, off + 16 * 1024));
      await w.drain();
    }
    if (Math.random() < 0.05) {
      await w.abort();
      continue;
    }
    const env = await w.commit(envelopeFor(w.msgid, 1 + Math.floor(Math.random() * 3), { envid: seed }));
    process.stdout.write(`m ${w.msgid} ${size} ${seed}\n`);
    if (Math.random() < 0.3) {
      const evpid = env.recipients[0]!.evpid;
      await spool.appendOutcome(evpid, { kind: 'deferred', at: Date.now(), detail: '451 try later', attempts: 1, nextTry: Date.now() + 60_000 });
      process.stdout.write(`o ${evpid}\n`);
    }
  }
}

async function main(): Promise<void> {
  const [root, conc] = process.argv.slice(2);
  if (root === undefined) throw new Error('usage: spool-crash-writer ROOT [CONCURRENCY]');
  // The journal checkpoints often, so kills land before, during and after checkpoints.
  const spool = new FsSpool({ root, recover: false, journal: { checkpointMs: 50 + Math.floor(Math.random() * 400) } });
  await spool.open();
  process.stdout.write('ready\n');
  await Promise.all(Array.from({ length: Number(conc ?? 8) }, () => writer(spool)));
}

main().catch((err: unknown) => {
  process.stderr.write(`spool-crash-writer: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
