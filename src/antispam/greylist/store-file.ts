/*
 * antispam/greylist/store-file.ts — greylisting state in one JSON file,
 * held in memory and written after each change (coalesced: at most one
 * write in flight, one more queued), atomically: a temporary file in the
 * same folder, fsync, rename, so a crash leaves the old state or the new,
 * never half. A daemon that is killed loses at most the last change (a
 * client greylisted once more — harmless). A file that cannot be read
 * starts empty, with a warning. A read-only store (the dry run, smtpd -b)
 * reads the file and keeps its changes in memory.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ClientRecord, GreylistStore, TripletRecord } from './store.js';

interface FileState {
  readonly version: 1;
  readonly triplets: Record<string, TripletRecord>;
  readonly clients: Record<string, ClientRecord>;
}

export class FileGreylistStore implements GreylistStore {
  private readonly triplets = new Map<string, TripletRecord>();
  private readonly clients = new Map<string, ClientRecord>();
  private writing: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly path: string,
    warn: (text: string) => void = () => undefined,
    private readonly readOnly = false,
  ) {
    if (!readOnly) mkdirSync(dirname(path), { recursive: true });
    try {
      const s = JSON.parse(readFileSync(path, 'utf8')) as FileState;
      if (s.version === 1) {
        for (const [k, v] of Object.entries(s.triplets ?? {})) this.triplets.set(k, v);
        for (const [k, v] of Object.entries(s.clients ?? {})) this.clients.set(k, v);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') warn(`greylist: cannot read ${path} (${(e as Error).message}); starting empty`);
    }
  }

  async triplet(key: string): Promise<TripletRecord | undefined> {
    return this.triplets.get(key);
  }

  async putTriplet(key: string, r: TripletRecord): Promise<void> {
    this.triplets.set(key, r);
    return this.save();
  }

  async client(net: string): Promise<ClientRecord | undefined> {
    return this.clients.get(net);
  }

  async putClient(net: string, r: ClientRecord): Promise<void> {
    this.clients.set(net, r);
    return this.save();
  }

  async expire(before: { triplets: number; pending: number; clients: number }): Promise<void> {
    for (const [k, v] of this.triplets) if (v.last < (v.passed ? before.triplets : before.pending)) this.triplets.delete(k);
    for (const [k, v] of this.clients) if (v.last < before.clients) this.clients.delete(k);
    return this.save();
  }

  async close(): Promise<void> {
    await this.writing;
  }

  /** Write the state; a change made while a write runs is written right after it. */
  private save(): Promise<void> {
    if (this.readOnly) return Promise.resolve();
    if (this.writing) {
      this.again = true;
      return this.writing;
    }
    this.writing = (async () => {
      do {
        this.again = false;
        await this.writeFile();
      } while (this.again);
    })().finally(() => {
      this.writing = undefined;
    });
    return this.writing;
  }

  private async writeFile(): Promise<void> {
    const state: FileState = { version: 1, triplets: Object.fromEntries(this.triplets), clients: Object.fromEntries(this.clients) };
    const tmp = `${this.path}.tmp`;
    const f = await open(tmp, 'w', 0o600);
    try {
      await f.writeFile(JSON.stringify(state));
      await f.sync();
    } finally {
      await f.close();
    }
    await rename(tmp, this.path);
  }
}
