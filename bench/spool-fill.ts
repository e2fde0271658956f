/*
 * bench/spool-fill.ts — write N messages straight into a Postern spool, in
 * its own format, without an SMTP session: a large queue for the
 * large-queue benchmark (bench/large-queue.ts) and its tests in seconds
 * rather than hours.
 *
 * Usage: node dist/bench/spool-fill.js --spool DIR --count N
 *          [--to user@domain] [--action NAME] [--size BYTES]
 *          [--concurrency C] [--from sender@domain] [--rcpts R] [--owner USER]
 *
 * It writes through the spool's own writer (FsSpool.createMessage() →
 * write() → commit(), the path the front door takes for every accepted
 * message: ids, journal, message file, trailer and checksums are the
 * daemon's), so what it leaves is exactly what the daemon would have
 * written — only the SMTP conversation, the policy and the Received:
 * header's origin are skipped. Many commits in flight share each journal
 * batch (one fdatasync), so a million 1 KB messages take minutes, not hours.
 * Stop the daemon first: the spool has one owner (it recovers and journals).
 * --owner USER (as root): the spool is then given to USER as smtpd's
 * privileged parent gives it to its SMTP side (prepareSpool()) — what the
 * daemon run as root would have written — so that the daemon's start does
 * not begin by changing the owner of every file (once, a walk of the whole
 * spool).
 *
 * Not a user-facing command: a development and benchmark tool.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { prepareSpool } from '../src/daemon/privsep/spool-owner.js';
import { privsepUser } from '../src/daemon/privsep/parent.js';
import { FsSpool } from '../src/spool/fs/fs-spool.js';

export interface FillOptions {
  /** The spool folder (created if missing; the daemon's `queue path`). */
  readonly spool: string;
  readonly count: number;
  /** Recipient address, and the smtpd.conf action that will deliver it (a relay action here). */
  readonly to: string;
  readonly action: string;
  readonly from?: string;
  /** Recipients per message (to, then r2-to, r3-to …, all for the same destination). */
  readonly rcpts?: number;
  /** Approximate message size in bytes (headers included). */
  readonly size?: number;
  /** Commits in flight at once. */
  readonly concurrency?: number;
  /** As root: give the filled spool to this user (smtpd's `privsep user`), as its privileged parent would. */
  readonly owner?: string;
  /** Called now and then with the number written so far. */
  readonly progress?: (written: number) => void;
}

/** One message: a short header section and a body padded to about `size` bytes. */
function messageBytes(from: string, to: string, size: number, n: number): Buffer {
  const id = randomBytes(8).toString('hex');
  const head =
    `Received: from spool-fill (localhost [127.0.0.1])\r\n\tby postern.bench.localhost with ESMTP id ${id}\r\n` +
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: large queue ${n}\r\nMessage-ID: <${id}.${n}@spool-fill.localhost>\r\n` +
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}\r\n\r\n`;
  const line = 'x'.repeat(76) + '\r\n';
  let body = '';
  while (head.length + body.length + line.length <= size) body += line;
  return Buffer.from(head + body + 'end\r\n', 'latin1');
}

/** Write `count` messages into the spool through its own writer; resolves with the number written. */
export async function fillSpool(o: FillOptions): Promise<number> {
  const spool = new FsSpool({ root: o.spool });
  await spool.open();
  const from = o.from ?? 'bench@spool-fill.localhost';
  const rcpts = o.rcpts ?? 1;
  const size = o.size ?? 1024;
  // The body is the same bytes for every message but its ids; build a few and reuse them.
  const bodies = Array.from({ length: 16 }, (_, i) => messageBytes(from, o.to, size, i));
  const recipients = Array.from({ length: rcpts }, (_, i) => ({ address: i === 0 ? o.to : `r${i + 1}-${o.to}`, action: o.action, dest: { kind: 'remote' as const } }));
  let next = 0;
  let written = 0;
  const writer = async (): Promise<void> => {
    while (next < o.count) {
      const n = next++;
      const w = await spool.createMessage();
      w.write(bodies[n % bodies.length] as Buffer);
      await w.commit({
        sender: from,
        recipients,
        body: '8BITMIME',
        smtputf8: false,
        arrival: Date.now(),
        client: { address: '127.0.0.1', port: 0, hostname: 'localhost', helo: 'spool-fill', proto: 'ESMTP', listener: 'spool-fill' },
      });
      written++;
      if (o.progress && written % 10_000 === 0) o.progress(written);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency ?? 512, o.count)) }, writer));
  } finally {
    await spool.close();
  }
  if (o.owner !== undefined) {
    const u = privsepUser(o.owner);
    if ('error' in u) throw new Error(u.error);
    prepareSpool(o.spool, u);
  }
  return written;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      spool: { type: 'string' },
      count: { type: 'string', default: '1000' },
      to: { type: 'string', default: 'user@down.test' },
      from: { type: 'string', default: 'bench@spool-fill.localhost' },
      action: { type: 'string', default: 'bench' },
      size: { type: 'string', default: '1024' },
      rcpts: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '512' },
      owner: { type: 'string' },
    },
  });
  if (values.spool === undefined) {
    process.stderr.write('usage: spool-fill --spool DIR --count N [--to ADDR] [--action NAME] [--size BYTES] [--rcpts R] [--concurrency C] [--owner USER]\n');
    process.exit(2);
  }
  const t0 = performance.now();
  const n = await fillSpool({
    spool: values.spool,
    count: Number(values.count),
    to: values.to,
    from: values.from,
    action: values.action,
    size: Number(values.size),
    rcpts: Number(values.rcpts),
    concurrency: Number(values.concurrency),
    ...(values.owner !== undefined ? { owner: values.owner } : {}),
    progress: (k) => process.stderr.write(`spool-fill: ${k} written\r`),
  });
  const secs = (performance.now() - t0) / 1000;
  process.stderr.write(`\nspool-fill: ${n} message(s) written in ${secs.toFixed(1)} s (${(n / secs).toFixed(0)}/s)\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
