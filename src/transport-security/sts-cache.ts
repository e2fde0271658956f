/*
 * transport-security/sts-cache.ts — where MTA-STS policies are kept
 * between fetches (RFC 8461 §5.1: for max_age seconds, and past a failed
 * refresh). One interface, StsCache, so that a later shared backend (one
 * cache for several nodes) can replace the file one:
 *
 *   FileStsCache  one JSON file per policy domain in a folder, written to a
 *                 temporary file, fsynced and renamed (a crash leaves the
 *                 old entry or the new one, never half of one); a file that
 *                 does not parse is treated as absent.
 *   MemoryStsCache  for tests and for running without a folder.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { StsPolicy } from './mta-sts-policy.js';

export interface StsCacheEntry {
  readonly id: string;
  readonly policy: StsPolicy;
  /** When it was fetched (ms since the epoch). */
  readonly fetched: number;
}

/** A stored entry has the fields a policy needs (a file or row written by another version may not). */
export function isStsEntry(e: unknown): e is StsCacheEntry {
  const x = e as Partial<StsCacheEntry> | null | undefined;
  return typeof x?.id === 'string' && typeof x.fetched === 'number' && typeof x.policy?.maxAge === 'number' && Array.isArray(x.policy.mx);
}

export interface StsCache {
  get(domain: string): Promise<StsCacheEntry | undefined>;
  put(domain: string, entry: StsCacheEntry): Promise<void>;
}

export class MemoryStsCache implements StsCache {
  private readonly map = new Map<string, StsCacheEntry>();
  async get(domain: string): Promise<StsCacheEntry | undefined> {
    return this.map.get(domain);
  }
  async put(domain: string, entry: StsCacheEntry): Promise<void> {
    this.map.set(domain, entry);
  }
}

export class FileStsCache implements StsCache {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private file(domain: string): string {
    // A domain name holds only letters, digits, "-", "_" and "."; anything else cannot reach a path.
    return join(this.dir, `${domain.toLowerCase().replace(/[^a-z0-9._-]/g, '_')}.json`);
  }

  async get(domain: string): Promise<StsCacheEntry | undefined> {
    let text: string;
    try {
      text = readFileSync(this.file(domain), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const e = JSON.parse(text) as unknown;
      return isStsEntry(e) ? e : undefined;
    } catch {
      return undefined;
    }
  }

  async put(domain: string, entry: StsCacheEntry): Promise<void> {
    const f = this.file(domain);
    const tmp = `${f}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, f);
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {
        /* not there */
      }
      throw e;
    }
  }
}
