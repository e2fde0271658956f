/*
 * mailauth/worker-lanes.ts — a few worker threads that each carry many
 * jobs at once (lanes), for DKIM signing (sign/sign-pool.ts) and the
 * checks of received mail (verify/verify-pool.ts).
 *
 * A job is opened on the lane with the fewest jobs in flight (a new worker
 * is started while there are fewer than `size`), may post several messages
 * (a received message arrives in chunks), and ends with one answer from the
 * worker: { id, ...answer }. Unlike the password pool (auth/hash-pool.ts,
 * one job per worker at a time) jobs are pipelined: each is short and the
 * hand-off is most of its wait. At most `maxJobs` are open in all (beyond,
 * open() answers an error at once). A worker that dies answers its jobs
 * with an error and is replaced at the next job; idle workers do not keep
 * the process alive.
 */
import { Worker, type Transferable } from 'node:worker_threads';

export type LaneAnswer<A> = A | { readonly error: string };

export interface LaneJob<A> {
  readonly id: number;
  /** Post a message of this job to its worker. */
  post(message: { readonly id: number } & Record<string, unknown>, transfer?: readonly Transferable[]): void;
  readonly answer: Promise<LaneAnswer<A>>;
}

interface Lane<A> {
  readonly worker: Worker;
  readonly jobs: Map<number, (a: LaneAnswer<A>) => void>;
}

export class WorkerLanes<A> {
  private readonly lanes: Lane<A>[] = [];
  private nextId = 1;
  private open = 0;

  constructor(
    private readonly script: URL,
    private readonly size: number,
    private readonly what: string,
    private readonly maxJobs = 2000,
    private readonly workerData?: unknown,
  ) {}

  job(): LaneJob<A> {
    const id = this.nextId++;
    if (this.open >= this.maxJobs) return { id, post: () => undefined, answer: Promise.resolve({ error: `${this.what}: too many messages waiting` }) };
    const lane = this.lane();
    this.open++;
    const answer = new Promise<LaneAnswer<A>>((resolve) => {
      lane.jobs.set(id, (a) => {
        this.open--;
        if (lane.jobs.size === 0) lane.worker.unref();
        resolve(a);
      });
    });
    lane.worker.ref();
    return { id, post: (m, transfer) => lane.worker.postMessage(m, transfer as Transferable[] | undefined), answer };
  }

  async close(): Promise<void> {
    const lanes = this.lanes.splice(0);
    await Promise.all(lanes.map((l) => l.worker.terminate()));
  }

  private lane(): Lane<A> {
    let best = this.lanes[0];
    for (const l of this.lanes) if (best === undefined || l.jobs.size < best.jobs.size) best = l;
    if (best !== undefined && (best.jobs.size === 0 || this.lanes.length >= this.size)) return best;
    return this.spawn();
  }

  private spawn(): Lane<A> {
    const worker = new Worker(this.script, this.workerData !== undefined ? { workerData: this.workerData } : {});
    const lane: Lane<A> = { worker, jobs: new Map() };
    worker.unref();
    worker.on('message', (m: { id: number } & LaneAnswer<A>) => {
      const done = lane.jobs.get(m.id);
      if (done === undefined) return;
      lane.jobs.delete(m.id);
      done(m);
    });
    const lost = (why: string): void => {
      const i = this.lanes.indexOf(lane);
      if (i >= 0) this.lanes.splice(i, 1);
      const jobs = [...lane.jobs.values()];
      lane.jobs.clear();
      for (const j of jobs) j({ error: `${this.what} worker ${why}` });
    };
    worker.on('error', (e) => lost(`failed: ${e.message}`));
    worker.on('exit', (code) => lost(`exited (${code})`));
    this.lanes.push(lane);
    return lane;
  }
}

/** A copy of `b` the receiving thread owns (the spool's and the socket's buffers may be pooled and shared). */
export function ownedCopy(b: Buffer): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy;
}
