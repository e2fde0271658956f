/*
 * mailauth/sign/sign-pool.ts — DKIM signing off the event loop.
 *
 * An RSA-2048 signature costs about a millisecond of CPU, and the body hash
 * grows with the message: on the event loop both would slow every session
 * and delivery. A few worker threads (sign-worker.ts) sign instead; unlike
 * the password pool (auth/hash-pool.ts, one job per worker) a signing worker
 * takes many jobs at once, pipelined, since each is short and the hand-off
 * is most of the wait. Jobs go to the worker with the fewest in flight; at
 * most MAX_PENDING wait in all (beyond, a job fails at once: the delivery
 * is deferred, never sent unsigned). A worker that dies fails its jobs and
 * is replaced at the next one. Idle workers do not keep the process alive.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { SigningKey } from './keys.js';
import type { SignAnswer, SignJob } from './sign-core.js';

export const MAX_PENDING = 2000;

interface Lane {
  readonly worker: Worker;
  readonly jobs: Map<number, (a: SignAnswer) => void>;
}

export class SignPool {
  private readonly lanes: Lane[] = [];
  private nextId = 1;
  private pending = 0;

  constructor(private readonly size = Math.max(1, Math.min(2, availableParallelism() - 1))) {}

  sign(message: Buffer, keys: readonly SigningKey[]): Promise<SignAnswer> {
    if (this.pending >= MAX_PENDING) return Promise.resolve({ error: 'DKIM signing: too many messages waiting' });
    const lane = this.lane();
    const id = this.nextId++;
    this.pending++;
    return new Promise<SignAnswer>((resolve) => {
      lane.jobs.set(id, (a) => {
        this.pending--;
        if (lane.jobs.size === 0) lane.worker.unref();
        resolve(a);
      });
      lane.worker.ref();
      // A copy the worker owns: the spool's buffers may be shared and pooled.
      const copy = new Uint8Array(message.byteLength);
      copy.set(message);
      const job: SignJob = { id, message: copy, keys };
      lane.worker.postMessage(job, [copy.buffer]);
    });
  }

  async close(): Promise<void> {
    const lanes = this.lanes.splice(0);
    await Promise.all(lanes.map((l) => l.worker.terminate()));
  }

  private lane(): Lane {
    let best = this.lanes[0];
    for (const l of this.lanes) if (best === undefined || l.jobs.size < best.jobs.size) best = l;
    if (best !== undefined && (best.jobs.size === 0 || this.lanes.length >= this.size)) return best;
    return this.spawn();
  }

  private spawn(): Lane {
    const worker = new Worker(new URL('./sign-worker.js', import.meta.url));
    const lane: Lane = { worker, jobs: new Map() };
    worker.unref();
    worker.on('message', (m: { id: number } & SignAnswer) => {
      const done = lane.jobs.get(m.id);
      if (done === undefined) return;
      lane.jobs.delete(m.id);
      done('header' in m ? { header: m.header } : { error: m.error });
    });
    const lost = (why: string): void => {
      const i = this.lanes.indexOf(lane);
      if (i >= 0) this.lanes.splice(i, 1);
      const jobs = [...lane.jobs.values()];
      lane.jobs.clear();
      for (const j of jobs) j({ error: `DKIM signing worker ${why}` });
    };
    worker.on('error', (e) => lost(`failed: ${e.message}`));
    worker.on('exit', (code) => lost(`exited (${code})`));
    this.lanes.push(lane);
    return lane;
  }
}
