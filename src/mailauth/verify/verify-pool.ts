/*
 * mailauth/verify/verify-pool.ts — the checks of received mail off the
 * event loop: each message's chunks are copied to a verify worker
 * (verify-worker.ts) as they arrive, and its results come back at the end.
 * DKIM verification cost about 2 ms of CPU per message with mailauth
 * alone (bench/mailauth-cpu.ts), several times what receiving the message
 * costs (0.2 ms for the common 1 KB message since fast-dkim.ts); the main
 * thread keeps only the copies and the hand-offs. A worker that
 * fails leaves the results incomplete (a temporary failure where a check
 * is enforced), never a pass.
 *
 * On a machine of one or two cores the worker has no core of its own, and
 * waking it costs more than a small message's checks (the auth-verify
 * bench on 2 vCPUs: 30 % more messages a second and less CPU each with the
 * checks on the event loop). There a message of at most INLINE_MAX_BYTES
 * is checked on the event loop (about 0.2 ms for 1 KB with an RSA
 * signature: bench/verify-path.ts); a larger one, and every message on a
 * larger machine, in the workers.
 */
import { availableParallelism } from 'node:os';
import type { SPFResult } from 'mailauth';
import type { ResolverOptions } from '../../config/model.js';
import { ownedCopy, WorkerLanes, type LaneJob } from '../worker-lanes.js';
import { InlineEngine, type VerifyEngine } from './engine.js';
import type { MailAuthResolver } from '../lib.js';
import type { AuthResults } from './verdict.js';

/** Largest message checked on the event loop on a small machine. */
export const INLINE_MAX_BYTES = 64 * 1024;

export class VerifyPool {
  private readonly lanes: WorkerLanes<{ readonly results: AuthResults }>;
  private readonly inlineMax: number;

  /** `inline`: the event loop's resolver, for small messages on a small machine (`inlineMax`, 0: never). */
  constructor(
    resolver: ResolverOptions,
    private readonly inline?: MailAuthResolver,
    inlineMax = availableParallelism() <= 2 ? INLINE_MAX_BYTES : 0,
    size = Math.max(1, Math.min(2, availableParallelism() - 1)),
  ) {
    this.lanes = new WorkerLanes(new URL('./verify-worker.js', import.meta.url), size, 'mail authentication', 2000, { servers: [...resolver.servers], timeoutMs: resolver.timeoutMs });
    this.inlineMax = inline !== undefined ? inlineMax : 0;
  }

  engine(minKeyBits: number, clientAddress: string): VerifyEngine {
    const inline = this.inline !== undefined && this.inlineMax > 0 ? { resolver: this.inline, maxBytes: this.inlineMax } : undefined;
    return new RemoteEngine(() => this.lanes.job(), minKeyBits, clientAddress, inline);
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
  /** Opened with the first post (a message checked on the event loop opens none). */
  private opened: LaneJob<{ readonly results: AuthResults }> | undefined;

  constructor(
    private readonly open: () => LaneJob<{ readonly results: AuthResults }>,
    minKeyBits: number,
    clientAddress: string,
    private readonly inline?: { readonly resolver: MailAuthResolver; readonly maxBytes: number },
  ) {
    this.begin = { minKeyBits, clientAddress };
  }

  private get job(): LaneJob<{ readonly results: AuthResults }> {
    this.opened ??= this.open();
    return this.opened;
  }

  write(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < BATCH_BYTES) return;
    const data = this.take();
    this.job.post({ id: this.job.id, op: 'chunk', ...this.opening(), data }, [data.buffer]);
  }

  async results(spfP: Promise<SPFResult | undefined>): Promise<AuthResults> {
    const b = this.begin;
    if (b !== undefined && this.inline !== undefined && this.pendingBytes <= this.inline.maxBytes) {
      // Small, and nothing sent yet: checked here (see the file's header).
      const engine = new InlineEngine({ resolver: this.inline.resolver, minKeyBits: b.minKeyBits, clientAddress: b.clientAddress });
      for (const c of this.pending) engine.write(c);
      this.pending = [];
      this.begin = undefined;
      return engine.results(spfP);
    }
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
    if (this.opened === undefined) return; // nothing was posted: no job to end
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
