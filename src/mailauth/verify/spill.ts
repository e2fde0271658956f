/*
 * mailauth/verify/spill.ts — where the content of a large received message
 * waits while it is checked (check.ts): the Authentication-Results field
 * goes above the content and is known only at the end, so the content
 * cannot be stored before. Past what is held in memory it goes to a
 * private file: a folder of its own (mkdtemp, 0700) holding one file
 * (0600), written and read back with asynchronous I/O in 1 MiB pieces, and
 * removed once read or when the message is aborted.
 *
 * Writes never throw: the first error is kept and close() reports it (the
 * message is then refused with a temporary failure by the caller).
 */
import { createReadStream, createWriteStream, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const READ_PIECE = 1024 * 1024;

export class Spill {
  private readonly dir: string | undefined;
  private readonly file: string | undefined;
  private readonly out: WriteStream | undefined;
  private error: string | undefined;
  bytes = 0;

  constructor(parent: string = tmpdir()) {
    try {
      this.dir = mkdtempSync(join(parent, 'postern-auth-'));
      this.file = join(this.dir, 'content');
      this.out = createWriteStream(this.file, { flags: 'wx', mode: 0o600 });
      this.out.on('error', (e) => {
        this.error ??= e.message;
      });
    } catch (e) {
      this.error = (e as Error).message;
    }
  }

  write(chunk: Buffer): void {
    if (this.error !== undefined || this.out === undefined) return;
    this.bytes += chunk.length;
    this.out.write(chunk);
  }

  /** Everything written reached the file: undefined; else why not (and the file is gone). */
  async close(): Promise<string | undefined> {
    const out = this.out;
    if (out !== undefined && this.error === undefined) {
      await new Promise<void>((resolve) => {
        out.once('error', () => resolve());
        out.end(() => resolve());
      });
    }
    if (this.error !== undefined) this.discard();
    return this.error;
  }

  /** `first`, then the file's content; the file is removed once read (or when reading stops early). */
  async *readBack(first: readonly Buffer[]): AsyncIterable<Buffer> {
    yield* first;
    if (this.file === undefined) return;
    try {
      for await (const piece of createReadStream(this.file, { highWaterMark: READ_PIECE })) yield piece as Buffer;
    } finally {
      this.discard();
    }
  }

  discard(): void {
    this.out?.destroy();
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
  }
}
