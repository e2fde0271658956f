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
 *
 * On a machine of one or two cores the worker has no core of its own, and
 * the hand-off (a copy, two posts, two wake-ups) cost about half as much
 * again as the signature (bench/mailauth-cpu.ts: 0.32 ms inline, 0.49 ms
 * through a worker, RSA-2048 and 1 KB with our signer, fast-sign.ts), as
 * for verification (verify-pool.ts): there a message of at most
 * INLINE_SIGN_MAX_BYTES without an ARC set is signed from the calling
 * thread: the canonicalization and hashing there, the RSA or Ed25519
 * signature itself on libuv's thread pool (../async-crypto.ts), so the
 * event loop is not held for it.
 */
import { availableParallelism } from 'node:os';
import { ownedCopy, WorkerLanes } from '../worker-lanes.js';
import type { SigningKey } from './keys.js';
import { signMessage, type SealRequest, type SignAnswer } from './sign-core.js';

/** Largest message signed on the calling thread on a small machine (no ARC set). */
export const INLINE_SIGN_MAX_BYTES = 64 * 1024;

export class SignPool {
  private readonly lanes: WorkerLanes<{ readonly header: string }>;

  /** `inlineMax`: on a machine of one or two cores, a message up to this size is signed on this thread (0: never). */
  constructor(
    size = Math.max(1, Math.min(2, availableParallelism() - 1)),
    private readonly inlineMax = availableParallelism() <= 2 ? INLINE_SIGN_MAX_BYTES : 0,
  ) {
    this.lanes = new WorkerLanes(new URL('./sign-worker.js', import.meta.url), size, 'DKIM signing');
  }

  async sign(message: Buffer, keys: readonly SigningKey[], seal?: SealRequest): Promise<SignAnswer> {
    if (seal === undefined && message.length <= this.inlineMax) return signMessage(message, keys).catch((e: unknown) => ({ error: (e as Error).message }));
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
