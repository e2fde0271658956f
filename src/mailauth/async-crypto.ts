/*
 * mailauth/async-crypto.ts — DKIM's public-key operations off the event
 * loop, on libuv's thread pool: node:crypto's sign() and verify() with a
 * callback run as a crypto job on a pool thread (Node's SignJob), and the
 * loop only queues it and takes the answer.
 *
 * Measured on 2 vCPUs (Node 22, RSA-2048, 900 bytes, the main thread's
 * own CPU time from /proc): a signature costs the event loop ~310 µs when
 * made on it, ~30–40 µs of queueing and callback this way; a verification
 * ~30 µs against ~28 µs with one in flight and 6–8 µs with several (one
 * wake-up of the loop then answers several). The pool thread runs
 * on the core the saturated event loop leaves idle, with no copy of the
 * message and no second V8 isolate to wake, which is what made the worker
 * hand-off cost more than the signature (sign/sign-pool.ts).
 *
 * A failure of the job (a key of the wrong kind, an error in the library)
 * rejects: signing then fails (the delivery is deferred) and verifying
 * declines to mailauth's verifier (fast-dkim.ts), never a pass.
 */
import crypto, { type KeyObject } from 'node:crypto';

/** A DKIM signing algorithm (RFC 6376, RFC 8463). */
export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** What the key operation takes: RSA hashes the data itself (SHA-256); Ed25519 signs the data's SHA-256 as given (RFC 8463). */
function operands(algorithm: DkimAlgorithm, data: Buffer): [string | null, Buffer] {
  return algorithm === 'rsa-sha256' ? ['sha256', data] : [null, crypto.createHash('sha256').update(data).digest()];
}

export function signAsync(algorithm: DkimAlgorithm, data: Buffer, key: KeyObject): Promise<Buffer> {
  const [hash, input] = operands(algorithm, data);
  return new Promise((resolve, reject) => {
    crypto.sign(hash, input, key, (err, sig) => (err ? reject(err) : resolve(sig)));
  });
}

export function verifyAsync(algorithm: DkimAlgorithm, data: Buffer, key: KeyObject, signature: Buffer): Promise<boolean> {
  const [hash, input] = operands(algorithm, data);
  return new Promise((resolve, reject) => {
    crypto.verify(hash, input, key, signature, (err, ok) => (err ? reject(err) : resolve(ok)));
  });
}
