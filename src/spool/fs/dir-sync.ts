/*
 * spool/fs/dir-sync.ts — shared directory fsyncs (group commit).
 *
 * A rename is durable only once its destination folder is fsynced. Every
 * commit needs that, but one fsync of a folder covers every rename done in
 * it before the fsync started, so concurrent commits can share it:
 *
 *   sync(dir) joins the next batch of `dir`. If no fsync of `dir` is running,
 *   the batch starts at once (groupCommitMs = 0) or after groupCommitMs,
 *   gathering whoever arrives meanwhile. If one is running, the batch starts
 *   when it ends: a request made while an fsync runs can never be answered
 *   by that fsync (its rename may have come too late), only by the next one.
 *
 * Folder handles stay open (a few, least recently used first out) so that a
 * batch costs one fsync() and nothing else. An fsync error fails the whole
 * batch and is not retried: after a failed fsync the kernel may have dropped
 * the dirty state, so a retry could "succeed" without writing anything.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { SpoolError } from '../errors.js';

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

interface DirState {
  handle: Promise<FileHandle> | undefined;
  /** A batch is running or its timer is set. */
  busy: boolean;
  next: Waiter[];
}

export class DirSyncer {
  /** fsync() calls made on folders, for measurements. */
  fsyncs = 0;
  private readonly dirs = new Map<string, DirState>();
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly groupCommitMs: number,
    private readonly maxOpenDirs = 32,
  ) {}

  /** Resolves after an fsync of `dir` that started after this call. */
  sync(dir: string): Promise<void> {
    if (this.closed) return Promise.reject(new SpoolError('STATE', 'spool is closed'));
    let st = this.dirs.get(dir);
    if (st === undefined) {
      st = { handle: undefined, busy: false, next: [] };
      this.evictIdle();
    } else {
      this.dirs.delete(dir); // re-insert: most recently used last
    }
    this.dirs.set(dir, st);
    const p = new Promise<void>((resolve, reject) => (st as DirState).next.push({ resolve, reject }));
    if (!st.busy) this.schedule(dir, st);
    return p;
  }

  /** Refuse new requests, wait for running batches, close folder handles. */
  async close(): Promise<void> {
    this.closed = true;
    while ([...this.dirs.values()].some((s) => s.busy)) {
      await new Promise<void>((r) => this.idleWaiters.push(r));
    }
    const handles = [...this.dirs.values()].map((s) => s.handle);
    this.dirs.clear();
    await Promise.all(handles.map((h) => h?.then((fh) => fh.close()).catch(() => undefined)));
  }

  private schedule(dir: string, st: DirState): void {
    st.busy = true;
    if (this.groupCommitMs > 0) setTimeout(() => void this.run(dir, st), this.groupCommitMs);
    else void this.run(dir, st);
  }

  private async run(dir: string, st: DirState): Promise<void> {
    const batch = st.next;
    st.next = [];
    try {
      st.handle ??= open(dir, 'r');
      const fh = await st.handle.catch((err: unknown) => {
        st.handle = undefined;
        throw err;
      });
      this.fsyncs++;
      await fh.sync();
      for (const w of batch) w.resolve();
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
    if (st.next.length > 0) {
      this.schedule(dir, st);
      return;
    }
    st.busy = false;
    if (this.idleWaiters.length > 0 && ![...this.dirs.values()].some((s) => s.busy)) {
      for (const r of this.idleWaiters.splice(0)) r();
    }
  }

  /** Close least recently used idle handles beyond maxOpenDirs. */
  private evictIdle(): void {
    if (this.dirs.size < this.maxOpenDirs) return;
    for (const [dir, st] of this.dirs) {
      if (this.dirs.size < this.maxOpenDirs) break;
      if (st.busy) continue;
      this.dirs.delete(dir);
      st.handle?.then((fh) => fh.close()).catch(() => undefined);
    }
  }
}
