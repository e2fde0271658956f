/*
 * mailauth/verify/verify-pool.ts — the checks of received mail off the
 * event loop: each message's chunks are copied to a verify worker
 * (verify-worker.ts) as they arrive, and its results come back at the end.
 * DKIM verification costs about 2 ms of CPU per message with mailauth
 * (bench/mailauth-cpu.ts), several times what receiving the message costs;
 * the main thread keeps only the copies and the hand-offs. A worker that
 * fails leaves the results incomplete (a temporary failure where a check
 * is enforced), never a pass.
 */
import { availableParallelism } from 'node:os';
import type { SPFResult } from 'mailauth';
import type { ResolverOptions } from '../../config/model.js';
import { ownedCopy, WorkerLanes, type LaneJob } from '../worker-lanes.js';
import type { VerifyEngine } from './engine.js';
import type { AuthResults } from './verdict.js';

export class VerifyPool {
  private readonly lanes: WorkerLanes<{ readonly results: AuthResults }>;

  constructor(resolver: ResolverOptions, size = Math.max(1, Math.min(2, availableParallelism() - 1))) {
    this.lanes = new WorkerLanes(new URL('./verify-worker.js', import.meta.url), size, 'mail authentication', 2000, { servers: [...resolver.servers], timeoutMs: resolver.timeoutMs });
  }

  engine(minKeyBits: number, clientAddress: string): VerifyEngine {
    return new RemoteEngine(this.lanes.job(), minKeyBits, clientAddress);
  }

  close(): Promise<void> {
    return this.lanes.close();
  }
}

/** Content is handed to the worker in pieces of about this much; a smaller message goes in one piece with its end. */
const BATCH_BYTES = 256 * 1024;

/**
 * One message's checks in a worker. Hand-offs cost more than a small
 * message's checks, so content is gathered here and posted in pieces of
 * BATCH_BYTES; the job opens with the first piece, and the last piece, the
 * end and the SPF result travel as one message: a 1 KB message costs one
 * post and one answer.
 */
class RemoteEngine implements VerifyEngine {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private begin: { readonly minKeyBits: number; readonly clientAddress: string } | undefined;

  constructor(
    private readonly job: LaneJob<{ readonly results: AuthResults }>,
    minKeyBits: number,
    clientAddress: string,
  ) {
    this.begin = { minKeyBits, clientAddress };
  }

  write(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < BATCH_BYTES) return;
    const data = this.take();
    this.job.post({ id: this.job.id, op: 'chunk', ...this.opening(), data }, [data.buffer]);
  }

  async results(spfP: Promise<SPFResult | undefined>): Promise<AuthResults> {
    const { job } = this;
    const spf = await spfP.catch(() => undefined);
    const data = this.take();
    job.post({ id: job.id, op: 'end', ...this.opening(), data, spf }, [data.buffer]);
    const a = await job.answer;
    if ('error' in a) return { spf, dkim: [], arc: undefined, dmarc: undefined, note: a.error, incomplete: true };
    return a.results;
  }

  abort(): void {
    this.pending = [];
    if (this.begin === undefined) this.job.post({ id: this.job.id, op: 'abort' });
    else this.job.post({ id: this.job.id, op: 'end', ...this.opening(), data: new Uint8Array(0), spf: undefined, discard: true });
  }

  /** The job's opening fields, on its first message only. */
  private opening(): { begin?: { readonly minKeyBits: number; readonly clientAddress: string } } {
    const b = this.begin;
    this.begin = undefined;
    return b !== undefined ? { begin: b } : {};
  }

  private take(): Uint8Array<ArrayBuffer> {
    const data = ownedCopy(this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingBytes));
    this.pending = [];
    this.pendingBytes = 0;
    return data;
  }
}
