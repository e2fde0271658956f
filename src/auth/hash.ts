/*
 * auth/hash.ts — check a password against a stored credential.
 *
 * Stored forms accepted in credentials tables (`user HASH`):
 *   $2a$/$2b$/$2y$…   bcrypt (what `smtpctl encrypt` and `htpasswd -B` produce)
 *   $5$… / $6$…       SHA-256/SHA-512-crypt (`openssl passwd -5/-6`, mkpasswd)
 *   {PLAIN}secret     a clear-text secret (needed for CRAM-MD5; Dovecot's notation)
 * Anything else is refused: a bare clear-text password in a table is a
 * mistake we do not want to make work silently.
 *
 * bcrypt and SHA-crypt are checked in worker threads (hash-pool.ts), never
 * on the event loop. Limits, so that one table line or one AUTH cannot
 * make a check take minutes: a bcrypt cost above MAX_BCRYPT_COST, SHA-crypt
 * rounds above MAX_SHA_CRYPT_ROUNDS, and passwords longer than
 * MAX_PASSWORD_BYTES are refused without hashing (SHA-crypt's work grows
 * with the password's length; bcrypt reads only 72 bytes anyway).
 */
import { timingSafeEqual, createHmac } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { sharedHashPool } from './hash-pool.js';

/** 2^15 bcrypt rounds: about 2.5 s on one core here; cost 10–12 is usual. */
export const MAX_BCRYPT_COST = 15;
/** SHA-crypt rounds: covers passlib's default (656,000); glibc's default is 5,000, its limit 999,999,999. */
export const MAX_SHA_CRYPT_ROUNDS = 1_000_000;
export const MAX_PASSWORD_BYTES = 1024;

export type HashKind = 'bcrypt' | 'sha-crypt' | 'plain' | 'unknown';

export function hashKind(stored: string): HashKind {
  if (/^\$2[aby]\$\d\d\$/.test(stored)) return 'bcrypt';
  if (/^\$[56]\$/.test(stored)) return 'sha-crypt';
  if (stored.startsWith('{PLAIN}')) return 'plain';
  return 'unknown';
}

/** Rejects (a temporary error) only when the worker pool cannot answer. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const kind = hashKind(stored);
  if ((kind === 'bcrypt' || kind === 'sha-crypt') && (Buffer.byteLength(password) > MAX_PASSWORD_BYTES || overLimit(stored))) return false;
  switch (kind) {
    case 'bcrypt':
    case 'sha-crypt':
      return sharedHashPool().verify(kind, password, stored);
    case 'plain':
      return safeEqual(password, stored.slice('{PLAIN}'.length));
    case 'unknown':
      return false;
  }
}

/** A hash whose cost is above the limits (checked before any hashing). */
export function overLimit(stored: string): boolean {
  const b = /^\$2[aby]\$(\d\d)\$/.exec(stored);
  if (b) return Number(b[1]) > MAX_BCRYPT_COST;
  const r = /^\$[56]\$rounds=(\d+)\$/.exec(stored);
  return r !== null && Number(r[1]) > MAX_SHA_CRYPT_ROUNDS;
}

/** The clear-text secret for CRAM-MD5, when the table holds one. */
export function plainSecret(stored: string): string | undefined {
  return hashKind(stored) === 'plain' ? stored.slice('{PLAIN}'.length) : undefined;
}

/** RFC 2195: the client's digest is HMAC-MD5(secret, challenge) in hex. */
export function cramMd5Matches(secret: string, challenge: string, digestHex: string): boolean {
  const want = createHmac('md5', secret).update(challenge).digest('hex');
  return safeEqual(want, digestHex.toLowerCase());
}

/** A bcrypt hash for `smtpctl encrypt`. */
export function hashPassword(password: string, cost = 10): Promise<string> {
  return bcrypt.hash(password, cost);
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
