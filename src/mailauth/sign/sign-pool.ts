/*
 * mailauth/sign/sign-pool.ts — DKIM signing off the event loop.
 *
 * An RSA-2048 signature and the body hash cost milliseconds of CPU per
 * message with mailauth's signer (bench/mailauth-cpu.ts; docs/architecture.md
 * has the figures): on the event loop they would slow every session and
 * delivery. Worker threads (sign-worker.ts) sign instead, many messages in
 * flight per worker (worker-lanes.ts); the main thread only copies the
 * message over. When too many wait, a job fails at once and the delivery
 * is deferred, never sent unsigned.
 */
import { availableParallelism } from 'node:os';
import { ownedCopy, WorkerLanes } from '../worker-lanes.js';
import type { SigningKey } from './keys.js';
import type { SealRequest, SignAnswer } from './sign-core.js';

export class SignPool {
  private readonly lanes: WorkerLanes<{ readonly header: string }>;

  constructor(size = Math.max(1, Math.min(2, availableParallelism() - 1))) {
    this.lanes = new WorkerLanes(new URL('./sign-worker.js', import.meta.url), size, 'DKIM signing');
  }

  async sign(message: Buffer, keys: readonly SigningKey[], seal?: SealRequest): Promise<SignAnswer> {
    const job = this.lanes.job();
    const copy = ownedCopy(message);
    job.post({ id: job.id, message: copy, keys, ...(seal ? { seal } : {}) }, [copy.buffer as ArrayBuffer]);
    const a = await job.answer;
    return 'error' in a ? { error: a.error } : { header: a.header };
  }

  close(): Promise<void> {
    return this.lanes.close();
  }
}
