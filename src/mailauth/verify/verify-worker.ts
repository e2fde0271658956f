/*
 * mailauth/verify/verify-worker.ts — the body of a verify worker thread:
 * the DKIM, ARC and DMARC checks of many messages at once (engine.ts), each
 * fed chunk by chunk by the main thread (verify-pool.ts), with DNS through
 * the same servers as the daemon's resolver (workerData) and the same
 * one-minute cache (../dns.ts) per worker.
 *
 * Messages in: { id, op: 'begin', minKeyBits, clientAddress } · { id, op:
 * 'chunk', data } · { id, op: 'end' } · { id, op: 'spf', spf } · { id, op:
 * 'abort' }. Answer: { id, results } once 'end' and 'spf' came.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SPFResult } from 'mailauth';
import { Resolver } from '../../dns/resolver.js';
import type { ResolverOptions } from '../../config/model.js';
import { cachingResolver } from '../dns.js';
import { InlineEngine } from './engine.js';

interface Job {
  readonly engine: InlineEngine;
  spf?: (s: SPFResult | undefined) => void;
  readonly spfP: Promise<SPFResult | undefined>;
}

type In =
  | { readonly id: number; readonly op: 'begin'; readonly minKeyBits: number; readonly clientAddress: string }
  | { readonly id: number; readonly op: 'chunk'; readonly data: Uint8Array }
  | { readonly id: number; readonly op: 'end' }
  | { readonly id: number; readonly op: 'spf'; readonly spf: SPFResult | undefined }
  | { readonly id: number; readonly op: 'abort' };

const resolver = cachingResolver(new Resolver(workerData as ResolverOptions).raw);
const jobs = new Map<number, Job>();

parentPort?.on('message', (m: In) => {
  if (m.op === 'begin') {
    let spf: Job['spf'];
    const spfP = new Promise<SPFResult | undefined>((r) => (spf = r));
    jobs.set(m.id, { engine: new InlineEngine({ resolver, minKeyBits: m.minKeyBits, clientAddress: m.clientAddress }), spf, spfP });
    return;
  }
  const job = jobs.get(m.id);
  if (job === undefined) return;
  if (m.op === 'chunk') job.engine.write(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
  else if (m.op === 'spf') job.spf?.(m.spf);
  else if (m.op === 'abort') {
    job.engine.abort();
    jobs.delete(m.id);
    parentPort?.postMessage({ id: m.id, error: 'aborted' });
  } else {
    job.engine.results(job.spfP).then(
      (results) => {
        jobs.delete(m.id);
        parentPort?.postMessage({ id: m.id, results });
      },
      (e: unknown) => {
        jobs.delete(m.id);
        parentPort?.postMessage({ id: m.id, error: (e as Error).message });
      },
    );
  }
});
