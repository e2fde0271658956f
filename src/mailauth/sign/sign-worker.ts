/*
 * mailauth/sign/sign-worker.ts — the body of a signing worker thread:
 * one message and its keys in, the DKIM-Signature fields out (mailauth's
 * signer: body hash, header canonicalization, RSA or Ed25519 signature).
 * Several jobs may be in flight; each answer carries its job's id.
 */
import { parentPort } from 'node:worker_threads';
import { signMessage, type SignJob } from './sign-core.js';

parentPort?.on('message', (job: SignJob) => {
  signMessage(Buffer.from(job.message.buffer, job.message.byteOffset, job.message.byteLength), job.keys, job.seal).then(
    (r) => parentPort?.postMessage({ id: job.id, ...r }),
    (e: unknown) => parentPort?.postMessage({ id: job.id, error: (e as Error).message }),
  );
});
