/*
 * delivery/users.ts — local users: who has a mailbox here.
 *
 * The system's users come from /etc/passwd (getpwnam without a native
 * binding: the file is read and re-read when it changes). A `userbase`
 * table (virtual users: "name uid:gid:home") is served by the same
 * interface in the delivery work.
 */
import { readFileSync, statSync } from 'node:fs';

export interface UserInfo {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

export interface UserBase {
  /** undefined = no such user; { error } = could not tell (defer). */
  lookup(name: string): UserInfo | undefined | { readonly error: string };
}

export class SystemUsers implements UserBase {
  private users = new Map<string, UserInfo>();
  private mtimeMs = -1;
  private checkedAt = 0;

  constructor(private readonly path = '/etc/passwd') {}

  lookup(name: string): UserInfo | undefined | { readonly error: string } {
    const now = Date.now();
    if (now - this.checkedAt > 1000) {
      this.checkedAt = now;
      try {
        const st = statSync(this.path);
        if (st.mtimeMs !== this.mtimeMs) {
          this.users = parsePasswd(readFileSync(this.path, 'utf8'));
          this.mtimeMs = st.mtimeMs;
        }
      } catch (e) {
        return { error: `${this.path}: ${(e as Error).message}` };
      }
    }
    return this.users.get(name) ?? this.users.get(name.toLowerCase());
  }

  /** The user with this uid (the owner of a file sendmail wrote). */
  byUid(uid: number): UserInfo | undefined {
    this.lookup('');
    for (const u of this.users.values()) if (u.uid === uid) return u;
    return undefined;
  }
}

export function parsePasswd(text: string): Map<string, UserInfo> {
  const out = new Map<string, UserInfo>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 7) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    const name = f[0] ?? '';
    if (!out.has(name)) out.set(name, { name, uid, gid, home: f[5] ?? '/', shell: f[6] ?? '' });
  }
  return out;
}

/** The user files and commands run as when the alias names no local user (or root). */
export const NOBODY = 'nobody';
