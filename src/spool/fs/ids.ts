/*
 * spool/fs/ids.ts — message and envelope ids.
 *
 * A msgid is 8 lowercase hex digits, an evpid the msgid followed by 8 more
 * (as in OpenSMTPD). All digits come from the crypto RNG, but the first two
 * (the queue bucket, queue/<first 2 hex>/) are drawn once per BUCKET_RUN
 * allocations rather than per message: messages accepted together then land
 * in the same folder, so one directory fsync can cover a whole group of
 * concurrent commits (see dir-sync.ts). Over time every bucket is used
 * evenly. Uniqueness is not left to chance: the spool claims each msgid
 * with an exclusive create (see writer.ts).
 */
import { randomFillSync } from 'node:crypto';
import { SpoolError } from '../errors.js';

const MSGID_RE = /^[0-9a-f]{8}$/;
const EVPID_RE = /^[0-9a-f]{16}$/;

/** Allocations that share one bucket prefix before a new one is drawn. */
export const BUCKET_RUN = 1024;

export function isMsgid(s: string): boolean {
  return MSGID_RE.test(s);
}

export function isEvpid(s: string): boolean {
  return EVPID_RE.test(s);
}

/** The msgid an evpid belongs to. */
export function msgidOf(evpid: string): string {
  return evpid.slice(0, 8);
}

/* A small pool so that most ids cost no call into the RNG. */
const pool = Buffer.alloc(1024);
let poolPos = pool.length;

function random32(): number {
  if (poolPos + 4 > pool.length) {
    randomFillSync(pool);
    poolPos = 0;
  }
  const v = pool.readUInt32BE(poolPos);
  poolPos += 4;
  return v;
}

function hex(n: number, digits: number): string {
  return n.toString(16).padStart(digits, '0');
}

/** Draws candidate msgids; the caller claims them on disk. */
export class MsgidAllocator {
  private prefix = 0;
  private left = 0;

  next(): string {
    if (this.left === 0) {
      this.prefix = random32() >>> 24;
      this.left = BUCKET_RUN;
    }
    this.left--;
    return hex(this.prefix, 2) + hex(random32() & 0xffffff, 6);
  }
}

/**
 * A new envelope id for a recipient of `msgid`. Pass the evpids already
 * given to this message as `taken` to get one that differs from all of them
 * (the envelope check refuses duplicates).
 */
export function newEvpid(msgid: string, taken?: ReadonlySet<string>): string {
  if (!isMsgid(msgid)) throw new SpoolError('INVALID', `not a msgid: ${JSON.stringify(msgid)}`);
  for (;;) {
    const evpid = msgid + hex(random32(), 8);
    if (taken === undefined || !taken.has(evpid)) return evpid;
  }
}
