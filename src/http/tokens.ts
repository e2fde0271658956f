/*
 * http/tokens.ts — the bearer tokens of the HTTP listener (`http token NAME
 * file PATH role …`): read from their files, checked in constant time.
 *
 * A token file holds the secret on its first line (at least 16 characters;
 * `openssl rand -hex 32` makes a good one). Only a SHA-256 of each secret
 * is kept in memory; a presented secret is hashed too, and compared with
 * every token by crypto.timingSafeEqual, all of them every time, so the
 * time taken says nothing about which bytes or which token matched. The
 * secret is never logged: only the token's name is, as who made a change.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { statSync } from 'node:fs';
import { readSecretText } from '../privsep/secrets.js';
import type { HttpRole, HttpToken } from '../config/model.js';

export const MIN_SECRET_LENGTH = 16;

export interface Principal {
  readonly name: string;
  readonly role: HttpRole;
}

interface Held extends Principal {
  readonly hash: Buffer;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function statOrUndefined(path: string): { mode: number } | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

export class TokenStore {
  private constructor(private readonly held: readonly Held[]) {}

  /** Read every token's file; throws with the file and the reason when one cannot be used. `warn` gets advice (loose modes). */
  static load(tokens: readonly HttpToken[], warn: (text: string) => void = () => undefined): TokenStore {
    const held: Held[] = [];
    for (const t of tokens) {
      const where = `${t.pos.file}:${t.pos.line}: http token "${t.name}"`;
      let text: string;
      try {
        text = readSecretText(t.file);
        // (a stat the unprivileged SMTP side may not make, when root read the file for it: no advice then)
        if (((statOrUndefined(t.file)?.mode ?? 0) & 0o077) !== 0) warn(`${where}: ${t.file} can be read by others than its owner (chmod 600 it)`);
      } catch (e) {
        throw new Error(`${where}: cannot read ${t.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      const secret = (text.split('\n')[0] ?? '').trim();
      if (secret.length < MIN_SECRET_LENGTH) throw new Error(`${where}: the secret in ${t.file} is shorter than ${MIN_SECRET_LENGTH} characters (make one with: openssl rand -hex 32)`);
      held.push({ name: t.name, role: t.role, hash: sha256(secret) });
    }
    return new TokenStore(held);
  }

  /** Are there any tokens at all? */
  get size(): number {
    return this.held.length;
  }

  /** Who presents this Authorization header: a principal, or undefined (missing, malformed or unknown). */
  check(authorization: string | undefined): Principal | undefined {
    if (authorization === undefined) return undefined;
    const m = /^Bearer[ ]+([\x21-\x7e]{1,512})[ ]*$/i.exec(authorization);
    if (!m || m[1] === undefined) return undefined;
    const h = sha256(m[1]);
    let found: Held | undefined;
    for (const t of this.held) {
      // Every token is compared, whatever matched before: no early exit.
      if (timingSafeEqual(h, t.hash) && found === undefined) found = t;
    }
    return found === undefined ? undefined : { name: found.name, role: found.role };
  }
}
