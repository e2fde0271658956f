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

class RemoteEngine implements VerifyEngine {
  constructor(
    private readonly job: LaneJob<{ readonly results: AuthResults }>,
    minKeyBits: number,
    clientAddress: string,
  ) {
    job.post({ id: job.id, op: 'begin', minKeyBits, clientAddress });
  }

  write(chunk: Buffer): void {
    const data = ownedCopy(chunk);
    this.job.post({ id: this.job.id, op: 'chunk', data }, [data.buffer]);
  }

  async results(spfP: Promise<SPFResult | undefined>): Promise<AuthResults> {
    const { job } = this;
    job.post({ id: job.id, op: 'end' });
    const spf = await spfP.catch(() => undefined);
    job.post({ id: job.id, op: 'spf', spf });
    const a = await job.answer;
    if ('error' in a) return { spf, dkim: [], arc: undefined, dmarc: undefined, note: a.error, incomplete: true };
    return a.results;
  }

  abort(): void {
    this.job.post({ id: this.job.id, op: 'abort' });
  }
}
