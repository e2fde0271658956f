/*
 * auth/hash-pool.ts — password hashing off the event loop.
 *
 * bcrypt (~80 ms at cost 10) and SHA-crypt (13–20 ms at 5000 rounds) are
 * pure CPU work; done on the event loop they stall every session. This
 * pool runs them in a few worker threads (hash-worker.ts): at most
 * min(4, cores) at once, the rest queued in order (at most MAX_QUEUED;
 * beyond that a check fails as a temporary error, so a flood of AUTH
 * cannot grow memory without bound). Idle workers do not keep the process
 * alive. A worker that dies fails its job (a temporary error, never a
 * success) and is replaced at the next job.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { HashJob } from './hash-worker.js';

export const MAX_QUEUED = 1000;

interface Pending {
  readonly job: HashJob;
  readonly resolve: (ok: boolean) => void;
  readonly reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy?: Pending;
}

export class HashPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;

  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism()))) {}

  verify(kind: HashJob['kind'], password: string, stored: string): Promise<boolean> {
    if (this.queue.length >= MAX_QUEUED) return Promise.reject(new Error('password checks: too many waiting'));
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { id: this.nextId++, kind, password, stored }, resolve, reject });
      this.pump();
    });
  }

  /** Stop every worker (tests; the daemon just exits). */
  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.busy === undefined);
      if (!slot) {
        if (this.slots.length >= this.size) return;
        slot = this.spawn();
      }
      const p = this.queue.shift() as Pending;
      slot.busy = p;
      slot.worker.ref();
      slot.worker.postMessage(p.job);
    }
  }

  private spawn(): Slot {
    const worker = new Worker(new URL('./hash-worker.js', import.meta.url));
    const slot: Slot = { worker };
    worker.unref();
    worker.on('message', (m: { id: number; ok: boolean }) => {
      const p = slot.busy;
      if (p === undefined || p.job.id !== m.id) return;
      slot.busy = undefined;
      worker.unref();
      p.resolve(m.ok === true);
      this.pump();
    });
    const lost = (why: string): void => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      const p = slot.busy;
      slot.busy = undefined;
      p?.reject(new Error(`password check worker ${why}`));
      this.pump();
    };
    worker.on('error', (e) => lost(`failed: ${e.message}`));
    worker.on('exit', (code) => lost(`exited (${code})`));
    this.slots.push(slot);
    return slot;
  }
}

let shared: HashPool | undefined;

/** The process's pool, made at the first password check. */
export function sharedHashPool(): HashPool {
  shared ??= new HashPool();
  return shared;
}
