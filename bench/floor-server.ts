/*
 * bench/floor-server.ts — the floor: the least a Node.js process can do
 * for the maildir scenario's work, to tell what the language and this
 * machine's kernel cost before any MTA logic. Not an MTA and not part of
 * Postern; the harness runs it as the server "floor" (bench/servers/floor.ts).
 *
 *   node dist/bench/floor-server.js --port N --spool DIR --homes DIR
 *
 * One process, three threads, as Postern's hot path but with nothing else:
 *   main     SMTP with PIPELINING: replies of a turn in one write; no
 *            policy, no address checks, no log, no privilege separation;
 *   journal  the message appended to one file and one fdatasync per batch
 *            of concurrent commits before the 250s (Postern's journal);
 *   deliver  each recipient's file written into HOMES/<local-part>/Maildir/tmp,
 *            fsynced, renamed into new/, each new/ fsynced once per batch
 *            (Postern's group commit), then a "done" record appended to
 *            the journal without a sync.
 * It writes as root (no switch to the user's ids: that costs more, so the
 * floor stays a floor) and keeps no queue file: the journal is all.
 */
import { closeSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync, writevSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

interface Commit {
  readonly id: number;
  readonly message: Buffer;
  readonly rcpts: readonly string[];
}
type Role = { role: 'journal' | 'deliver'; spool: string; homes: string };

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string' }, spool: { type: 'string' }, homes: { type: 'string' } } });
  const spool = values.spool ?? '/tmp/floor-spool';
  const homes = values.homes ?? '/var/tmp/postern-bench-users';
  mkdirSync(spool, { recursive: true });
  const thread = (role: Role['role']): Worker => new Worker(new URL(import.meta.url), { workerData: { role, spool, homes } satisfies Role });
  const journal = thread('journal');
  const deliver = thread('deliver');
  const waiting = new Map<number, { done: () => void; commit: Commit }>();
  let nextId = 0;
  let batch: Commit[] = [];
  journal.on('message', (ids: number[]) => {
    const done: Commit[] = [];
    for (const id of ids) {
      const w = waiting.get(id);
      if (!w) continue;
      waiting.delete(id);
      w.done();
      done.push(w.commit);
    }
    deliver.postMessage(done);
  });
  const commit = (message: Buffer, rcpts: string[], done: () => void): void => {
    const c = { id: ++nextId, message, rcpts };
    waiting.set(c.id, { done, commit: c });
    if (batch.push(c) === 1)
      setImmediate(() => {
        journal.postMessage(batch);
        batch = [];
      });
  };
  net
    .createServer({ noDelay: true }, (s) => {
      let inData = false;
      let buf: Buffer = Buffer.alloc(0);
      let rcpts: string[] = [];
      let out = '';
      const reply = (r: string): void => {
        if (out === '')
          process.nextTick(() => {
            s.write(out);
            out = '';
          });
        out += r;
      };
      s.on('error', () => undefined);
      s.write('220 floor ESMTP\r\n');
      s.on('data', (chunk: Buffer) => {
        buf = buf.length > 0 ? Buffer.concat([buf, chunk]) : chunk;
        for (;;) {
          if (inData) {
            const end = buf.indexOf('\r\n.\r\n');
            if (end < 0) return;
            const message = Buffer.from(buf.subarray(0, end + 2));
            buf = buf.subarray(end + 5);
            inData = false;
            commit(message, rcpts, () => reply('250 2.0.0 queued\r\n'));
            rcpts = [];
            continue;
          }
          const nl = buf.indexOf('\r\n');
          if (nl < 0) return;
          const line = buf.toString('latin1', 0, nl);
          buf = buf.subarray(nl + 2);
          const verb = line.slice(0, 4).toUpperCase();
          if (verb === 'EHLO') reply('250-floor\r\n250-PIPELINING\r\n250 8BITMIME\r\n');
          else if (verb === 'RCPT') {
            rcpts.push(/<([^@>]*)/.exec(line)?.[1] ?? 'nobody');
            reply('250 2.1.5 ok\r\n');
          } else if (verb === 'DATA') {
            inData = true;
            reply('354 go\r\n');
          } else if (verb === 'QUIT') {
            reply('221 2.0.0 bye\r\n');
            s.end();
            return;
          } else reply('250 2.0.0 ok\r\n');
        }
      });
    })
    .listen(Number(values.port ?? 2599), '127.0.0.1');
}

function journalThread(r: Role): void {
  const fd = openSync(join(r.spool, 'journal'), 'a', 0o600);
  parentPort!.on('message', (batch: Commit[]) => {
    writevSync(
      fd,
      batch.map((c) => c.message),
    );
    fdatasyncSync(fd);
    parentPort!.postMessage(batch.map((c) => c.id));
  });
}

function deliverThread(r: Role): void {
  const fd = openSync(join(r.spool, 'journal'), 'a', 0o600);
  const made = new Set<string>();
  let seq = 0;
  parentPort!.on('message', (batch: Commit[]) => {
    const dirs = new Set<string>();
    for (const c of batch) {
      for (const user of c.rcpts) {
        const md = join(r.homes, user.replace(/[^a-z0-9]/g, ''), 'Maildir');
        if (!made.has(md)) {
          for (const sub of ['tmp', 'new', 'cur']) mkdirSync(join(md, sub), { recursive: true, mode: 0o700 });
          made.add(md);
        }
        const name = `${Date.now()}.P${process.pid}Q${++seq}.floor`;
        const f = openSync(join(md, 'tmp', name), 'wx', 0o600);
        writeSync(f, c.message);
        fsyncSync(f);
        closeSync(f);
        renameSync(join(md, 'tmp', name), join(md, 'new', name));
        dirs.add(join(md, 'new'));
      }
    }
    for (const d of dirs) {
      const f = openSync(d, 'r');
      fsyncSync(f);
      closeSync(f);
    }
    writeSync(fd, `done ${batch.map((c) => c.id).join(' ')}\n`);
  });
}

if (isMainThread) main();
else if ((workerData as Role).role === 'journal') journalThread(workerData as Role);
else deliverThread(workerData as Role);
