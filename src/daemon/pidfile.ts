/*
 * daemon/pidfile.ts — one daemon per spool.
 *
 * The pid file is created with O_EXCL; when one exists, the pid in it is
 * checked: a live process means "already running" (with its pid), a dead
 * one means a stale file from a crash, which is replaced.
 */
import { openSync, writeSync, closeSync, readFileSync, unlinkSync, fsyncSync } from 'node:fs';

export class PidFileError extends Error {}

export function acquirePidFile(path: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      fsyncSync(fd);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
        } catch {
          /* already gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new PidFileError(`cannot create pid file ${path}: ${(e as Error).message}`);
      const pid = Number.parseInt(readSafe(path), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new PidFileError(`another smtpd is already running on this spool (pid ${pid}, pid file ${path})`);
      }
      try {
        unlinkSync(path);
      } catch {
        /* raced with another cleaner */
      }
    }
  }
  throw new PidFileError(`cannot take pid file ${path}`);
}

function readSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Is there a process with this pid (ours to signal or not)? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
