/*
 * delivery/local/maildir.ts — deliver one message into a maildir
 * (https://cr.yp.to/proto/maildir.html, with Maildir++ sub-folders).
 *
 * The file is written in tmp/ under a unique name
 *   <seconds>.M<microseconds>P<pid>Q<n>.<host>
 * fsynced, renamed into new/, and new/ is fsynced — or, in a delivery
 * worker's batch (deliver-worker.ts), new/ is handed to `syncLater` and
 * fsynced once for the batch before any of its outcomes is reported (group
 * commit: one folder fsync for several messages). Folders are created as
 * needed with mode 0700. As OpenSMTPD's mail.maildir: with `junk`, a
 * ".Junk" sub-folder is created and messages marked X-Spam: yes go there;
 * a recipient's +extension selects the sub-folder ".<extension>" when the
 * user has created it (a sender cannot make folders appear). The message
 * is stored with LF line ends after the Return-Path/Delivered-To lines.
 *
 * The message comes as a stream, or whole (a delivery worker's small
 * messages: a list of Buffers); either way the bytes are written in pieces
 * of up to WRITE_AT, so a small message is one write(2) with its header
 * lines. The file calls are the daemon's asynchronous ones or a worker's
 * synchronous ones (file-calls.ts).
 */
import { constants } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { asyncCalls, syncFolder, type FileCalls } from './file-calls.js';
import { LfFormatter } from './message.js';
import { fromError, ok, tempfail, type Outcome } from './outcome.js';

const { O_CREAT, O_EXCL, O_WRONLY, O_NOFOLLOW } = constants;

export interface MaildirJob {
  readonly kind: 'maildir';
  /** The maildir (already expanded and checked). */
  readonly dir: string;
  /** The action's `junk` option. */
  readonly junk: boolean;
  /** The message is marked as spam. */
  readonly spam: boolean;
  /** ".<extension>" sub-folder wanted by the recipient's address, if any. */
  readonly folder?: string;
  /** Header lines written before the message (LF-terminated). */
  readonly prefix: string;
}

let sequence = 0;
/** This host's name as maildir file names spell it, read again after HOST_TTL_MS (not a uname(2) per message). */
let host: { readonly name: string; readonly until: number } | undefined;
const HOST_TTL_MS = 60_000;

/** A unique maildir file name (the spec's "time.M<usec>P<pid>Q<n>.host"). */
export function uniqueName(now = performance.timeOrigin + performance.now()): string {
  const sec = Math.floor(now / 1000);
  const usec = Math.floor((now - sec * 1000) * 1000);
  if (!host || host.until < now) host = { name: hostname().replace(/\//g, '\\057').replace(/:/g, '\\072'), until: now + HOST_TTL_MS };
  return `${sec}.M${usec}P${process.pid}Q${++sequence}.${host.name}`;
}

async function makeMaildir(fs: FileCalls, dir: string): Promise<void> {
  await fs.mkdir(dir, true);
  for (const sub of ['cur', 'new', 'tmp']) {
    try {
      await fs.mkdir(join(dir, sub), false);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** Formatted bytes are gathered up to this much before a write. */
const WRITE_AT = 64 * 1024;

/** Where the message comes from and how the files are written; `syncLater`: see deliverMaildir(). */
export interface MaildirIo {
  readonly signal?: AbortSignal;
  /** new/ is not fsynced here: the caller must do it before reporting "delivered" (a worker's batch). */
  readonly syncLater?: (dir: string) => void;
  /** Default: asyncCalls. */
  readonly calls?: FileCalls;
}

/** Deliver one message (a stream, or whole: its Buffers); never throws. */
export async function deliverMaildir(job: MaildirJob, input: Readable | readonly Buffer[], io: MaildirIo = {}): Promise<Outcome> {
  const { signal, syncLater } = io;
  const fs = io.calls ?? asyncCalls;
  let target = job.dir;
  let tmpPath: string | undefined;
  try {
    // The folders are made when the first open in tmp/ finds them missing (ENOENT), not before every
    // delivery: four mkdir calls (three failing with EEXIST) per message otherwise.
    if (job.junk) await makeMaildir(fs, join(job.dir, '.Junk'));
    if (job.junk && job.spam) target = join(job.dir, '.Junk');
    else if (job.folder !== undefined && (await fs.isDirectory(join(job.dir, job.folder)))) {
      target = join(job.dir, job.folder);
      await makeMaildir(fs, target);
    }
    let name = uniqueName();
    let fd: number;
    let made = false;
    for (let attempt = 0; ; attempt++) {
      tmpPath = join(target, 'tmp', name);
      try {
        fd = await fs.open(tmpPath, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0o600);
        break;
      } catch (e) {
        tmpPath = undefined;
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && !made) {
          made = true;
          await makeMaildir(fs, target);
          continue;
        }
        if (code !== 'EEXIST' || attempt > 5) throw e;
        name = uniqueName();
      }
    }
    try {
      const fmt = new LfFormatter(false);
      let out: Buffer[] = [Buffer.from(job.prefix)];
      let size = out[0]?.length ?? 0;
      for await (const chunk of input) {
        signal?.throwIfAborted();
        for (const b of fmt.push(chunk as Buffer)) {
          out.push(b);
          size += b.length;
        }
        if (size >= WRITE_AT) {
          await fs.writeAll(fd, Buffer.concat(out, size));
          out = [];
          size = 0;
        }
      }
      out.push(...fmt.end());
      await fs.writeAll(fd, Buffer.concat(out));
      await fs.fsync(fd);
    } finally {
      await fs.close(fd);
    }
    const final = join(target, 'new', name);
    try {
      await fs.rename(tmpPath, final);
    } catch (e) {
      // tmp/ was there but new/ (or cur/) was not: make them, once.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || made) throw e;
      await makeMaildir(fs, target);
      await fs.rename(tmpPath, final);
    }
    tmpPath = undefined;
    if (syncLater) syncLater(join(target, 'new'));
    else await syncFolder(fs, join(target, 'new'));
    return ok(`delivered to maildir ${final}`);
  } catch (e) {
    if ((e as Error).name === 'AbortError') return tempfail('4.3.0', `maildir ${target}: delivery interrupted`);
    return fromError(`maildir ${target}`, e);
  } finally {
    if (!Array.isArray(input)) (input as Readable).destroy();
    if (tmpPath !== undefined) {
      try {
        await fs.unlink(tmpPath);
      } catch {
        /* gone already */
      }
    }
  }
}
