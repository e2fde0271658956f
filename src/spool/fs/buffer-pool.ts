/*
 * spool/fs/buffer-pool.ts — the buffers that carry journalled messages to
 * the spool's I/O thread, used again and again.
 *
 * A message is moved to the I/O thread in a buffer of its own (it is
 * transferred, not copied), and the thread hands the buffer back once the
 * message file is written. Taking the next message's buffer from those
 * returned, rather than allocating a new one, spares the main thread an
 * allocation, and the process fresh pages to fault in, for every message;
 * it also keeps large allocations from driving the garbage collector.
 *
 * Buffers come in power-of-two sizes from 4 KiB; a size class holds at
 * most `perClass` of them and the pool at most `maxBytes` in all, so it
 * never holds more than a burst of commits needed at once.
 */
const MIN_CLASS = 12; // 4 KiB

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private held = 0;

  constructor(
    private readonly maxBytes = 8 * 1024 * 1024,
    private readonly perClass = 64,
  ) {}

  /** A Buffer of exactly `length` bytes, on an ArrayBuffer of its own (fit for a transfer list). */
  take(length: number): Buffer {
    const cls = classOf(length);
    const ab = this.free.get(cls)?.pop();
    if (ab === undefined) return Buffer.allocUnsafeSlow(cls).subarray(0, length);
    this.held -= ab.byteLength;
    return Buffer.from(ab, 0, length);
  }

  /** Hand back an ArrayBuffer that nothing refers to any more. Others (odd sizes) are left to the collector. */
  give(ab: ArrayBuffer): void {
    const size = ab.byteLength;
    if (size < 1 << MIN_CLASS || (size & (size - 1)) !== 0 || this.held + size > this.maxBytes) return;
    let list = this.free.get(size);
    if (list === undefined) this.free.set(size, (list = []));
    if (list.length >= this.perClass) return;
    list.push(ab);
    this.held += size;
  }

  /** Bytes held for reuse. */
  get size(): number {
    return this.held;
  }
}

/** The smallest power of two ≥ length, at least 4 KiB. */
function classOf(length: number): number {
  if (length <= 1 << MIN_CLASS) return 1 << MIN_CLASS;
  return 2 ** Math.ceil(Math.log2(length));
}
