/*
 * spool/fs/sync-path.ts — fsync (or fdatasync) a file or folder by path,
 * synchronously: for start-up, the I/O thread, and checkpoints.
 */
import { closeSync, fdatasyncSync, fsyncSync, openSync } from 'node:fs';

export function fsyncPath(path: string, dataOnly = false): void {
  const fd = openSync(path, 'r');
  try {
    if (dataOnly) fdatasyncSync(fd);
    else fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
