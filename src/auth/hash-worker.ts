/*
 * auth/hash-worker.ts — the body of a hash-pool worker thread: checks one
 * password against one bcrypt or SHA-crypt hash per message, synchronously
 * (it has the thread to itself), and answers { id, ok }. It never logs and
 * never sees anything but the password and the hash it is given.
 */
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import { shaCryptVerify } from './sha-crypt.js';

export interface HashJob {
  readonly id: number;
  readonly kind: 'bcrypt' | 'sha-crypt';
  readonly password: string;
  readonly stored: string;
}

parentPort?.on('message', (job: HashJob) => {
  let ok = false;
  try {
    ok = job.kind === 'bcrypt' ? bcrypt.compareSync(job.password, job.stored) : shaCryptVerify(job.password, job.stored);
  } catch {
    ok = false;
  }
  parentPort?.postMessage({ id: job.id, ok });
});
