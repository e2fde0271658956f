/*
 * test/helpers/spool-fixtures.ts — shared bits for the spool tests.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Envelope } from '../../src/mail/envelope.js';
import { newEvpid } from '../../src/spool/fs/fs-spool.js';

/** A fresh folder; the spool root is `<it>/spool` (not created). Removed after test `t`, pass or fail. */
export function tmpSpoolRoot(t?: { after(fn: () => void): void }): { root: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'postern-spool-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  t?.after(cleanup);
  return { root: join(dir, 'spool'), cleanup };
}

/** Deterministic pseudo-random body bytes of length n for a seed. */
export function bodyOf(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < n; off += block.length) {
    block.copy(out, off, 0, Math.min(block.length, n - off));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export type EnvelopeFields = Omit<Envelope, 'msgid' | 'size' | 'version'>;

/** A plausible envelope for `msgid` with `n` recipients. */
export function envelopeFor(msgid: string, n = 2, overrides: Partial<EnvelopeFields> = {}): EnvelopeFields {
  const taken = new Set<string>();
  const recipients = Array.from({ length: n }, (_, i) => {
    const evpid = newEvpid(msgid, taken);
    taken.add(evpid);
    return { evpid, address: `user${i}@example.org`, action: 'relay', rule: 'smtpd.conf:12', notify: ['FAILURE', 'DELAY'] as const };
  });
  return {
    sender: 'alice@example.net',
    recipients,
    body: '8BITMIME',
    smtputf8: false,
    arrival: 1_700_000_000_000,
    client: { address: '192.0.2.7', port: 40123, helo: 'mx.example.net', proto: 'ESMTPS', listener: '0.0.0.0:25', tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' } },
    ...overrides,
  };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Cheap deterministic body for big crash-test messages: a sha256 block, xored with the block number. */
export function crashBody(seed: string, size: number): Buffer {
  const block = createHash('sha256').update(seed).digest();
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (block[i & 31] as number) ^ ((i >>> 5) & 0xff);
  return out;
}
