/*
 * auth/hash.ts — check a password against a stored credential.
 *
 * Stored forms accepted in credentials tables (`user HASH`):
 *   $2a$/$2b$/$2y$…   bcrypt (what `smtpctl encrypt` and `htpasswd -B` produce)
 *   $5$… / $6$…       SHA-256/SHA-512-crypt (`openssl passwd -5/-6`, mkpasswd)
 *   {PLAIN}secret     a clear-text secret (needed for CRAM-MD5; Dovecot's notation)
 * Anything else is refused: a bare clear-text password in a table is a
 * mistake we do not want to make work silently.
 */
import { timingSafeEqual, createHmac } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { shaCryptVerify } from './sha-crypt.js';

export type HashKind = 'bcrypt' | 'sha-crypt' | 'plain' | 'unknown';

export function hashKind(stored: string): HashKind {
  if (/^\$2[aby]\$\d\d\$/.test(stored)) return 'bcrypt';
  if (/^\$[56]\$/.test(stored)) return 'sha-crypt';
  if (stored.startsWith('{PLAIN}')) return 'plain';
  return 'unknown';
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  switch (hashKind(stored)) {
    case 'bcrypt':
      return bcrypt.compare(password, stored);
    case 'sha-crypt':
      return shaCryptVerify(password, stored);
    case 'plain':
      return safeEqual(password, stored.slice('{PLAIN}'.length));
    case 'unknown':
      return false;
  }
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
