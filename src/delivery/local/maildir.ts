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
 */
import { constants } from 'node:fs';
import { mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LfFormatter } from './message.js';
import { syncDir } from './mbox.js';
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

/** A unique maildir file name (the spec's "time.M<usec>P<pid>Q<n>.host"). */
export function uniqueName(now = performance.timeOrigin + performance.now()): string {
  const sec = Math.floor(now / 1000);
  const usec = Math.floor((now - sec * 1000) * 1000);
  const host = hostname().replace(/\//g, '\\057').replace(/:/g, '\\072');
  return `${sec}.M${usec}P${process.pid}Q${++sequence}.${host}`;
}

async function makeMaildir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const sub of ['cur', 'new', 'tmp']) {
    try {
      await mkdir(join(dir, sub), { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

async function writeAll(fh: FileHandle, b: Buffer): Promise<void> {
  for (let off = 0; off < b.length; ) off += (await fh.write(b, off, b.length - off)).bytesWritten;
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Deliver one message; never throws. With `syncLater`, new/ is not fsynced here: the caller must do it before reporting "delivered". */
export async function deliverMaildir(job: MaildirJob, input: Readable, signal?: AbortSignal, syncLater?: (dir: string) => void): Promise<Outcome> {
  let target = job.dir;
  let tmpPath: string | undefined;
  try {
    // The folders are made when the first open in tmp/ finds them missing (ENOENT), not before every
    // delivery: four mkdir calls (three failing with EEXIST) per message otherwise.
    if (job.junk) await makeMaildir(join(job.dir, '.Junk'));
    if (job.junk && job.spam) target = join(job.dir, '.Junk');
    else if (job.folder !== undefined && (await isDirectory(join(job.dir, job.folder)))) {
      target = join(job.dir, job.folder);
      await makeMaildir(target);
    }
    let name = uniqueName();
    let fh: FileHandle;
    let made = false;
    for (let attempt = 0; ; attempt++) {
      tmpPath = join(target, 'tmp', name);
      try {
        fh = await open(tmpPath, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0o600);
        break;
      } catch (e) {
        tmpPath = undefined;
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && !made) {
          made = true;
          await makeMaildir(target);
          continue;
        }
        if (code !== 'EEXIST' || attempt > 5) throw e;
        name = uniqueName();
      }
    }
    try {
      const fmt = new LfFormatter(false);
      await fh.write(job.prefix);
      for await (const chunk of input) {
        signal?.throwIfAborted();
        await writeAll(fh, Buffer.concat(fmt.push(chunk as Buffer)));
      }
      await writeAll(fh, Buffer.concat(fmt.end()));
      await fh.sync();
    } finally {
      await fh.close();
    }
    const final = join(target, 'new', name);
    try {
      await rename(tmpPath, final);
    } catch (e) {
      // tmp/ was there but new/ (or cur/) was not: make them, once.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || made) throw e;
      await makeMaildir(target);
      await rename(tmpPath, final);
    }
    tmpPath = undefined;
    if (syncLater) syncLater(join(target, 'new'));
    else await syncDir(join(target, 'new'));
    return ok(`delivered to maildir ${final}`);
  } catch (e) {
    if ((e as Error).name === 'AbortError') return tempfail('4.3.0', `maildir ${target}: delivery interrupted`);
    return fromError(`maildir ${target}`, e);
  } finally {
    input.destroy();
    if (tmpPath !== undefined) await unlink(tmpPath).catch(() => undefined);
  }
}
