/*
 * delivery/local/dotlock.ts — "<mailbox>.lock", the lock every Unix mail
 * program honours (mutt, mailutils, procmail, Python's mailbox, liblockfile).
 *
 * The lock file is created with O_CREAT|O_EXCL|O_NOFOLLOW and holds the
 * locker's pid. A lock older than STALE_MS (mtime) is taken to belong to a
 * crashed program and removed, as liblockfile does after five minutes.
 * Node has no fcntl()/flock(), so no kernel lock is taken beside it (see
 * docs/delivery.md); writes use O_APPEND.
 */
import { constants } from 'node:fs';
import { lstat, open, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export const STALE_MS = 5 * 60_000;
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
      if (Date.now() - st.mtimeMs > staleMs) {
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
