/*
 * mailauth/verify/verify-worker.ts — the body of a verify worker thread:
 * the DKIM, ARC and DMARC checks of many messages at once (engine.ts), each
 * fed chunk by chunk by the main thread (verify-pool.ts), with DNS through
 * the same servers as the daemon's resolver (workerData) and the same
 * TTL-honouring cache (../dns.ts) per worker.
 *
 * Messages in: { id, op: 'chunk', begin?, data } · { id, op: 'end', begin?,
 * data, spf, discard? } · { id, op: 'abort' }, where begin = { minKeyBits,
 * clientAddress } comes with a job's first message (verify-pool.ts gathers
 * content, so a small message is one 'end'). Answer: { id, results } after
 * 'end' ({ id, error: 'aborted' } for an abort or a discarded end).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SPFResult } from 'mailauth';
import { Resolver } from '../../dns/resolver.js';
import type { ResolverOptions } from '../../config/model.js';
import { cachingResolver } from '../dns.js';
import { InlineEngine } from './engine.js';

interface Begin {
  readonly minKeyBits: number;
  readonly clientAddress: string;
}

type In =
  | { readonly id: number; readonly op: 'chunk'; readonly begin?: Begin; readonly data: Uint8Array }
  | { readonly id: number; readonly op: 'end'; readonly begin?: Begin; readonly data: Uint8Array; readonly spf: SPFResult | undefined; readonly discard?: boolean }
  | { readonly id: number; readonly op: 'abort' };

const resolver = cachingResolver(new Resolver(workerData as ResolverOptions).lookups);
const jobs = new Map<number, InlineEngine>();

parentPort?.on('message', (m: In) => {
  if (m.op !== 'abort' && m.begin !== undefined) jobs.set(m.id, new InlineEngine({ resolver, minKeyBits: m.begin.minKeyBits, clientAddress: m.begin.clientAddress }));
  const engine = jobs.get(m.id);
  if (engine === undefined) return;
  if (m.op === 'abort' || (m.op === 'end' && m.discard === true)) {
    engine.abort();
    jobs.delete(m.id);
    parentPort?.postMessage({ id: m.id, error: 'aborted' });
    return;
  }
  if (m.data.byteLength > 0) engine.write(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
  if (m.op === 'chunk') return;
  jobs.delete(m.id);
  engine.results(Promise.resolve(m.spf)).then(
    (results) => parentPort?.postMessage({ id: m.id, results }),
    (e: unknown) => parentPort?.postMessage({ id: m.id, error: (e as Error).message }),
  );
});
