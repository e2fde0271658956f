/*
 * delivery/local/mbox.ts — append one message to a Unix mbox file.
 *
 *   From alice@example.net Thu Nov 24 18:22:48 2024      ← asctime, local time
 *   Return-Path: <alice@example.net>
 *   Delivered-To: bob@example.org
 *   …the message, LF line ends, /^>*From / lines quoted with one more ">"…
 *                                                          ← a blank line
 *
 * Locking: "<mbox>.lock" (dotlock.ts) around the update, the file opened
 * with O_APPEND. Safety as Postfix's local(8): the last component must not
 * be a symbolic link (O_NOFOLLOW), the file must be a regular file with one
 * link and, when a uid is given, owned by it. A failed write truncates the
 * file back to the size it had, so a mailbox never holds half a message;
 * the data are fsynced before success is reported. New files are 0600.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { dotlock, LockTimeout } from './dotlock.js';
import { asyncCalls, syncFolder } from './file-calls.js';
import { LfFormatter } from './message.js';
import { describe, fromError, ok, permfail, tempfail, type Outcome } from './outcome.js';

const { O_RDWR, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

export interface MboxJob {
  readonly kind: 'mbox';
  readonly path: string;
  /** The "From …" line, without its line end (see fromLine()). */
  readonly fromLine: string;
  /** Header lines written before the message (LF-terminated). */
  readonly prefix: string;
  /** 'optional' for aliases(5) files: go on without a lock when the folder is not writable (as Postfix). */
  readonly lock: 'required' | 'optional';
  /** The mailbox must belong to this uid (deliveries made with root's help). */
  readonly ownerUid?: number;
  /** Wait this long for the lock (ms); default 30 s. */
  readonly lockTimeoutMs?: number;
  /** fchown() a newly created file to these ids (when it is created by root). */
  readonly chownNew?: { readonly uid: number; readonly gid: number };
}

export interface MboxHooks {
  readonly signal?: AbortSignal;
  readonly lockTimeoutMs?: number;
  /** Called once the mailbox is locked and open, before any byte is written (privilege switch). */
  readonly afterOpen?: () => void;
  /** Called before the lock is released (privilege switch back). */
  readonly beforeUnlock?: () => void;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => String(n).padStart(2, '0');

/** asctime(3) of a date in local time: "Thu Nov 24 18:22:48 1986". */
export function asctime(d: Date): string {
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${d.getFullYear()}`;
}

/** The From_ line: the sender (MAILER-DAEMON for <>) as one word, then the date. */
export function fromLine(sender: string, d: Date): string {
  // eslint-disable-next-line no-control-regex
  const s = sender === '' ? 'MAILER-DAEMON' : sender.replace(/[\s\x00-\x1f\x7f]/g, '_');
  return `From ${s} ${asctime(d)}`;
}

const BATCH = 64 * 1024;

/** Deliver one message; never throws. */
export async function deliverMbox(job: MboxJob, input: Readable, hooks: MboxHooks = {}): Promise<Outcome> {
  const what = `mbox ${job.path}`;
  let release: (() => Promise<void>) | undefined;
  try {
    release = await dotlock(job.path, { timeoutMs: job.lockTimeoutMs ?? hooks.lockTimeoutMs, signal: hooks.signal });
  } catch (e) {
    if (e instanceof LockTimeout) return tempfail('4.2.0', `${what}: locked by another program`);
    const code = (e as NodeJS.ErrnoException).code;
    if (!(job.lock === 'optional' && (code === 'EACCES' || code === 'EPERM' || code === 'EROFS'))) return fromError(`${what}: cannot create ${job.path}.lock`, e);
  }
  try {
    return await append(job, input, hooks, what);
  } finally {
    hooks.beforeUnlock?.();
    await release?.();
  }
}

async function openMailbox(job: MboxJob): Promise<{ fh: FileHandle; created: boolean }> {
  for (let attempt = 0; ; attempt++) {
    try {
      return { fh: await open(job.path, O_RDWR | O_APPEND | O_NOFOLLOW), created: false };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 2) throw e;
    }
    try {
      const fh = await open(job.path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
      return { fh, created: true };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw e;
    }
  }
}

async function append(job: MboxJob, input: Readable, hooks: MboxHooks, what: string): Promise<Outcome> {
  let fh: FileHandle;
  let created: boolean;
  try {
    ({ fh, created } = await openMailbox(job));
  } catch (e) {
    input.destroy();
    return fromError(what, e);
  }
  let size0 = -1;
  try {
    const st = await fh.stat();
    if (!st.isFile()) return permfail('5.2.0', `${what}: not a regular file`);
    if (st.nlink !== 1) return permfail('5.2.0', `${what}: has ${st.nlink} hard links`);
    if (created) {
      await fh.chmod(0o600);
      if (job.chownNew) await fh.chown(job.chownNew.uid, job.chownNew.gid);
    } else if (job.ownerUid !== undefined && st.uid !== job.ownerUid) {
      return tempfail('4.2.0', `${what}: not owned by the recipient (uid ${st.uid}, expected ${job.ownerUid})`);
    }
    hooks.afterOpen?.();
    size0 = st.size;
    let lead = '';
    if (size0 > 0) {
      const tail = Buffer.alloc(2);
      const { bytesRead } = await fh.read(tail, 0, Math.min(2, size0), size0 - Math.min(2, size0));
      const t = tail.subarray(0, bytesRead).toString('latin1');
      lead = t.endsWith('\n\n') || (size0 === 1 && t === '\n') ? '' : t.endsWith('\n') ? '\n' : '\n\n';
    }
    const fmt = new LfFormatter(true);
    let pending: Buffer[] = [Buffer.from(`${lead}${job.fromLine}\n${job.prefix}`)];
    let pendingSize = pending[0]?.length ?? 0;
    const flush = async (): Promise<void> => {
      if (pendingSize === 0) return;
      const b = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingSize);
      pending = [];
      pendingSize = 0;
      for (let off = 0; off < b.length; ) off += (await fh.write(b, off, b.length - off)).bytesWritten;
    };
    for await (const chunk of input) {
      hooks.signal?.throwIfAborted();
      for (const b of fmt.push(chunk as Buffer)) {
        pending.push(b);
        pendingSize += b.length;
      }
      if (pendingSize >= BATCH) await flush();
    }
    for (const b of [...fmt.end(), Buffer.from('\n')]) {
      pending.push(b);
      pendingSize += b.length;
    }
    await flush();
    await fh.sync();
    if (created) await syncFolder(asyncCalls, dirname(job.path));
    return ok(`delivered to mbox ${job.path}`);
  } catch (e) {
    input.destroy();
    if (size0 >= 0) {
      try {
        await fh.truncate(size0);
        await fh.sync();
      } catch (e2) {
        return tempfail('4.3.0', `${what}: write failed (${describe(e)}) and could not be undone: ${describe(e2)}`);
      }
    }
    if ((e as Error).name === 'AbortError') return tempfail('4.3.0', `${what}: delivery interrupted`);
    return fromError(what, e);
  } finally {
    input.destroy();
    await fh.close().catch(() => undefined);
  }
}

