/*
 * delivery/local/file-calls.ts — the file system calls of a maildir
 * delivery (maildir.ts), in two flavours:
 *
 *   asyncCalls  Node's asynchronous calls, each run on libuv's thread pool:
 *               the daemon delivering as itself (not root), whose event
 *               loop must not wait on a disk;
 *   syncCalls   the synchronous ones, on the calling thread: a delivery
 *               worker (deliver-worker.ts), which runs one job at a time
 *               anyway, so a hand-off to a pool thread and back per call
 *               (six or seven per message) is only cost — and a worker that
 *               makes no asynchronous file call never starts libuv's pool,
 *               whose thread glibc would signal at every set*id call.
 *
 * Both have the same shape (a value or a promise of it), so one delivery
 * function serves both: `await` on a plain value costs a microtask, not a
 * thread hand-off.
 */
import { close, closeSync, constants, fsync, fsyncSync, mkdirSync, open, openSync, renameSync, statSync, unlinkSync, write, writeSync } from 'node:fs';
import { mkdir, rename, stat, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';

const { O_RDONLY, O_DIRECTORY } = constants;

type Maybe<T> = T | Promise<T>;

export interface FileCalls {
  open(path: string, flags: number, mode?: number): Maybe<number>;
  /** Write every byte of `b` at the file's position. */
  writeAll(fd: number, b: Buffer): Maybe<void>;
  fsync(fd: number): Maybe<void>;
  close(fd: number): Maybe<void>;
  rename(from: string, to: string): Maybe<void>;
  /** mkdir (0700 unless said), `recursive` as Node's; EEXIST thrown when not recursive. */
  mkdir(path: string, recursive: boolean): Maybe<unknown>;
  isDirectory(path: string): Maybe<boolean>;
  unlink(path: string): Maybe<void>;
}

const openP = promisify(open);
const writeP = promisify(write);
const fsyncP = promisify(fsync);
const closeP = promisify(close);

export const asyncCalls: FileCalls = {
  open: (path, flags, mode) => openP(path, flags, mode),
  async writeAll(fd, b) {
    for (let off = 0; off < b.length; ) off += (await writeP(fd, b, off, b.length - off)).bytesWritten;
  },
  fsync: (fd) => fsyncP(fd),
  close: (fd) => closeP(fd),
  rename: (from, to) => rename(from, to),
  mkdir: (path, recursive) => mkdir(path, { recursive, mode: 0o700 }),
  isDirectory: (path) => stat(path).then((s) => s.isDirectory(), () => false),
  unlink: (path) => unlink(path),
};

export const syncCalls: FileCalls = {
  open: (path, flags, mode) => openSync(path, flags, mode),
  writeAll(fd, b) {
    for (let off = 0; off < b.length; ) off += writeSync(fd, b, off, b.length - off);
  },
  fsync: (fd) => fsyncSync(fd),
  close: (fd) => closeSync(fd),
  rename: (from, to) => renameSync(from, to),
  mkdir: (path, recursive) => mkdirSync(path, { recursive, mode: 0o700 }),
  isDirectory(path) {
    try {
      return statSync(path).isDirectory();
    } catch {
      return false;
    }
  },
  unlink: (path) => unlinkSync(path),
};

/** fsync a folder (its entries: a file renamed or created in it). */
export async function syncFolder(calls: FileCalls, dir: string): Promise<void> {
  const fd = await calls.open(dir, O_RDONLY | O_DIRECTORY);
  try {
    await calls.fsync(fd);
  } finally {
    await calls.close(fd);
  }
}
