/*
 * delivery/local/worker-body.ts — one job's message inside a delivery
 * worker (deliver-worker.ts), as its bytes arrive on standard input.
 *
 * A message up to WHOLE_MAX is kept as the Buffers it came in: once its
 * end has arrived, the job gets them whole (a maildir job writes them with
 * one write(2) and synchronous file calls, file-calls.ts) — no stream per
 * job. A larger one, or one whose job must start before its end, becomes a
 * stream (a PassThrough) fed as the bytes arrive, standard input paused
 * while the job lags behind, as every message went before.
 */
import { PassThrough, type Readable } from 'node:stream';

/** The most bytes of one message kept before it becomes a stream. */
export const WHOLE_MAX = 1024 * 1024;

export class WorkerBody {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private failed: Error | undefined;
  private stream: PassThrough | undefined;
  private done = false;
  private waiter: (() => void) | undefined;

  /** `input`: what the bytes come from, paused while a stream has no room (standard input). */
  constructor(private readonly input: Pick<Readable, 'pause' | 'resume'>) {}

  /** The whole message can be had without waiting (its end arrived), or it is a stream already. */
  get settled(): boolean {
    return this.ended || this.failed !== undefined || this.stream !== undefined || this.done;
  }

  /** Resolves once `settled` (the message has ended, failed or grown into a stream). */
  wait(): Promise<void> {
    if (this.settled) return Promise.resolve();
    return new Promise((r) => (this.waiter = r));
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** Message bytes; thrown away once the job is over. */
  push(bytes: Buffer): void {
    if (this.done || this.ended || this.failed) return;
    const s = this.stream;
    if (s) {
      if (!s.destroyed && !s.writableEnded && !s.write(bytes)) this.hold(s);
      return;
    }
    this.chunks.push(bytes);
    this.size += bytes.length;
    if (this.size > WHOLE_MAX) {
      this.toStream();
      this.wake();
    }
  }

  /** The message ended. */
  end(): void {
    this.ended = true;
    this.stream?.end();
    this.wake();
  }

  /** The message cannot be had whole (cut short, abandoned, interrupted). */
  fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    this.stream?.destroy(e);
    this.wake();
  }

  /** Its Buffers when the whole message is here; else undefined (take stream()). */
  whole(): readonly Buffer[] | undefined {
    return this.ended && !this.failed && !this.stream ? this.chunks : undefined;
  }

  /** The message as a stream (made now if need be): what has arrived, then the rest as it comes. */
  toStream(): Readable {
    if (this.stream) return this.stream;
    const s = (this.stream = new PassThrough());
    // The job may not be reading yet (waiting for the mailbox lock, or for the jobs before it): an error stays on the stream for it to find.
    s.on('error', () => undefined);
    const held = this.chunks;
    this.chunks = [];
    let room = true;
    for (const c of held) room = s.write(c);
    if (this.failed) s.destroy(this.failed);
    else if (this.ended) s.end();
    else if (!room) this.hold(s);
    return s;
  }

  /** The job is over: whatever is left of the message is read and thrown away. */
  discard(): void {
    this.done = true;
    this.chunks = [];
    this.stream?.destroy();
    this.wake();
  }

  private hold(s: PassThrough): void {
    this.input.pause();
    const go = (): void => {
      s.off('drain', go);
      s.off('close', go);
      this.input.resume();
    };
    s.on('drain', go);
    s.on('close', go);
  }
}
