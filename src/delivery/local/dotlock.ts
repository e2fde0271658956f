/*
 * delivery/local/dotlock.ts — "<mailbox>.lock", the lock every Unix mail
 * program honours (mutt, mailutils, procmail, Python's mailbox, liblockfile).
 *
 * The lock file is created with O_CREAT|O_EXCL|O_NOFOLLOW and holds the
 * locker's pid. A lock is taken to belong to a crashed program, and removed,
 * when the pid in it names no process (and the lock is not brand new: its
 * creator may not have written the pid yet), or when it is older than
 * STALE_MS (mtime), as liblockfile does after five minutes.
 * Node has no fcntl()/flock(), so no kernel lock is taken beside it (see
 * docs/delivery.md); writes use O_APPEND.
 */
import { constants } from 'node:fs';
import { lstat, open, readFile, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export const STALE_MS = 5 * 60_000;
/** A lock younger than this may still be waiting for its pid. */
const FRESH_MS = 2000;
const { O_CREAT, O_EXCL, O_WRONLY, O_NOFOLLOW } = constants;

export interface DotlockOptions {
  /** Give up after this long (ms). Default 30 s. */
  readonly timeoutMs?: number;
  readonly staleMs?: number;
  readonly signal?: AbortSignal;
}

export class LockTimeout extends Error {
  constructor(path: string) {
    super(`${path}: mailbox is locked by another program`);
  }
}

/** Take the lock; resolves to a function that releases it. */
export async function dotlock(mailbox: string, opts: DotlockOptions = {}): Promise<() => Promise<void>> {
  const lockPath = `${mailbox}.lock`;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const staleMs = opts.staleMs ?? STALE_MS;
  let delay = 20;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      const fh = await open(lockPath, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0o600);
      try {
        await fh.write(`${process.pid}\n`);
      } finally {
        await fh.close();
      }
      return async () => {
        await unlink(lockPath).catch(() => undefined);
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    try {
      const st = await lstat(lockPath);
      const age = Date.now() - st.mtimeMs;
      if (age > staleMs || (age > FRESH_MS && (await holderGone(lockPath)))) {
        await unlink(lockPath).catch(() => undefined);
        continue;
      }
    } catch {
      continue; // vanished between open and lstat: try again at once
    }
    if (Date.now() >= deadline) throw new LockTimeout(mailbox);
    await sleep(delay + Math.floor(Math.random() * delay));
    delay = Math.min(delay * 2, 500);
  }
}

/** Does the lock name a pid that no longer exists? (ESRCH; EPERM means it exists under another user.) */
async function holderGone(lockPath: string): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(lockPath, 'utf8');
  } catch {
    return false;
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
