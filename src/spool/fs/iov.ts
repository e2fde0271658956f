/*
 * spool/fs/iov.ts — writing a list of buffers with writev(), resuming
 * after short writes: a cursor over the list (pure), shared by the
 * asynchronous writer (writer.ts) and the I/O thread's synchronous one
 * (journal-worker.ts).
 */

/** Buffers per writev(); Linux refuses more than IOV_MAX (1024). */
export const IOV_MAX = 1024;

export class IovCursor<B extends Uint8Array> {
  private i = 0;
  /** Bytes of bufs[i] already written. */
  private off = 0;

  constructor(private readonly bufs: readonly B[]) {}

  get done(): boolean {
    return this.i >= this.bufs.length;
  }

  /** The next writev() batch: what is left, at most IOV_MAX buffers. */
  batch(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let j = this.i; j < this.bufs.length && out.length < IOV_MAX; j++) {
      const b = this.bufs[j] as B;
      out.push(j === this.i && this.off > 0 ? b.subarray(this.off) : b);
    }
    return out;
  }

  /** `n` more bytes were written. */
  advance(n: number): void {
    if (n <= 0) throw new Error('write wrote nothing');
    while (this.i < this.bufs.length && n > 0) {
      const left = (this.bufs[this.i] as B).length - this.off;
      if (n >= left) {
        n -= left;
        this.i++;
        this.off = 0;
      } else {
        this.off += n;
        n = 0;
      }
    }
  }
}
