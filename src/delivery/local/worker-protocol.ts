/*
 * delivery/local/worker-protocol.ts — what the daemon writes on a delivery
 * worker's standard input, parsed as it arrives (pure: bytes in, events out;
 * tested at every split point).
 *
 * For each job, strictly one after another (the daemon writes the next job
 * only after the worker has answered this one and the message has ended):
 *
 *   <HelperRequest as JSON> LF       credentials and job (job.ts)
 *   <length in hex> LF <bytes>       a piece of the message (helper-frame.ts), repeated
 *   0 LF                             the end of the message
 *
 * and, in place of a length, "! LF": the daemon could not read the whole
 * message from the spool; the job fails (temporary) and the next request
 * follows. A malformed length or an over-long request line breaks the
 * stream for good: the worker fails its job and exits. The end of the input
 * in the middle of a message (the daemon died) is `cut`: the job fails, the
 * partial write is undone, and the restarted daemon delivers again.
 */

export type WorkerInput =
  | { readonly kind: 'request'; readonly line: string }
  | { readonly kind: 'data'; readonly bytes: Buffer }
  | { readonly kind: 'end' }
  | { readonly kind: 'abandoned' }
  | { readonly kind: 'error'; readonly message: string };

/** The longest request line accepted. */
export const MAX_REQUEST = 1024 * 1024;
/** The longest length line accepted ("ffffffff"). */
const MAX_LENGTH_DIGITS = 8;
const LF = 0x0a;

export class WorkerInputParser {
  private state: 'request' | 'length' | 'data' | 'broken' = 'request';
  private head: Buffer[] = [];
  private headSize = 0;
  private length = '';
  private left = 0;

  /** True between a request and the end of its message. */
  get inMessage(): boolean {
    return this.state === 'length' || this.state === 'data';
  }

  /** The events this chunk completes, in order. */
  push(chunk: Buffer): WorkerInput[] {
    const out: WorkerInput[] = [];
    let i = 0;
    while (i < chunk.length && this.state !== 'broken') {
      if (this.state === 'request') {
        const nl = chunk.indexOf(LF, i);
        const end = nl < 0 ? chunk.length : nl;
        this.head.push(chunk.subarray(i, end));
        this.headSize += end - i;
        if (this.headSize > MAX_REQUEST) return this.fail(out, 'request line too long');
        if (nl < 0) break;
        out.push({ kind: 'request', line: Buffer.concat(this.head, this.headSize).toString('utf8') });
        this.head = [];
        this.headSize = 0;
        this.state = 'length';
        i = nl + 1;
      } else if (this.state === 'data') {
        const n = Math.min(this.left, chunk.length - i);
        out.push({ kind: 'data', bytes: chunk.subarray(i, i + n) });
        this.left -= n;
        i += n;
        if (this.left === 0) this.state = 'length';
      } else {
        const c = chunk[i++] as number;
        if (c !== LF) {
          this.length += String.fromCharCode(c);
          if (this.length.length > MAX_LENGTH_DIGITS || !/^([0-9a-f]+|!)$/.test(this.length)) return this.fail(out, 'message frame: bad chunk length');
          continue;
        }
        const text = this.length;
        this.length = '';
        if (text === '!') {
          out.push({ kind: 'abandoned' });
          this.state = 'request';
        } else if (text === '') {
          return this.fail(out, 'message frame: bad chunk length');
        } else {
          this.left = parseInt(text, 16);
          if (this.left === 0) {
            out.push({ kind: 'end' });
            this.state = 'request';
          } else this.state = 'data';
        }
      }
    }
    return out;
  }

  /** The end of the input: an error event when it cuts a message short. */
  finish(): WorkerInput | undefined {
    if (!this.inMessage) return undefined;
    this.state = 'broken';
    return { kind: 'error', message: 'message cut short (the daemon went away before the end of the message)' };
  }

  private fail(out: WorkerInput[], message: string): WorkerInput[] {
    this.state = 'broken';
    out.push({ kind: 'error', message });
    return out;
  }
}
