/*
 * users/system-users.ts — local users: who has a mailbox here.
 *
 * Two sources, in this order:
 *   /etc/passwd   the fast path: read, and re-read when it changes (checked
 *                 at most once a second); most lookups end here.
 *   NSS           users the name service switch knows besides the file
 *                 (LDAP, SSSD, systemd's userdb …): `getent passwd NAME`,
 *                 run with an argument vector (never a shell), only when
 *                 /etc/nsswitch.conf lists a passwd source other than
 *                 files/compat. Answers are cached for NSS_TTL_MS (found
 *                 or not found); a getent that fails or times out is "could
 *                 not tell" (the recipient is deferred), never "no such user".
 * Node.js has no getpwnam() without a native module, hence getent. It is
 * synchronous (the expansion that asks is), so a miss costs one process
 * start on the event loop — 12–13 ms measured on a busy 2-core machine
 * (test/e2e/users-nss.test.ts prints it), against 1 µs for a cached answer
 * and 4 µs for the file — at most once per name per TTL; the cache is
 * bounded (NSS_CACHE_MAX names).
 *
 * A `userbase` table (virtual users: "name uid:gid:home") is served by the
 * same interface in the delivery work.
 */
import { spawnSync } from 'node:child_process';
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

export const NSS_TTL_MS = 30_000;
export const NSS_CACHE_MAX = 10_000;
const GETENT_TIMEOUT_MS = 5_000;

export interface SystemUsersOptions {
  /** 'auto': when nsswitch.conf names a passwd source besides files/compat. */
  readonly nss?: boolean | 'auto';
  readonly nsswitch?: string;
  readonly getent?: string;
}

export class SystemUsers implements UserBase {
  private users = new Map<string, UserInfo>();
  private mtimeMs = -1;
  private checkedAt = 0;
  private nssOn: boolean | undefined;
  private readonly nssCache = new Map<string, { readonly info: UserInfo | undefined; readonly until: number }>();

  constructor(
    private readonly path = '/etc/passwd',
    private readonly opts: SystemUsersOptions = {},
  ) {}

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
    const found = this.users.get(name) ?? this.users.get(name.toLowerCase());
    if (found !== undefined || name === '' || !this.nssEnabled()) return found;
    return this.nss(name, now);
  }

  /** The user with this uid (the owner of a file sendmail wrote). */
  byUid(uid: number): UserInfo | undefined {
    this.lookup('');
    for (const u of this.users.values()) if (u.uid === uid) return u;
    if (!this.nssEnabled() || !Number.isInteger(uid) || uid < 0) return undefined;
    const r = this.nss(String(uid), Date.now());
    return r !== undefined && !('error' in r) ? r : undefined;
  }

  private nssEnabled(): boolean {
    if (this.opts.nss === true || this.opts.nss === false) return this.opts.nss;
    this.nssOn ??= nsswitchHasOtherSources(this.opts.nsswitch ?? '/etc/nsswitch.conf');
    return this.nssOn;
  }

  /** `getent passwd KEY` (a name or a uid), cached. */
  private nss(key: string, now: number): UserInfo | undefined | { readonly error: string } {
    const hit = this.nssCache.get(key);
    if (hit !== undefined && hit.until > now) return hit.info;
    // A name getent could take for an option, or that no passwd line can hold.
    if (key.startsWith('-') || /[:\s\0]/.test(key) || key.length > 256) return undefined;
    const r = spawnSync(this.opts.getent ?? 'getent', ['passwd', key], {
      encoding: 'utf8',
      timeout: GETENT_TIMEOUT_MS,
      env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin' },
    });
    let info: UserInfo | undefined;
    if (r.status === 0) info = parsePasswd(r.stdout).values().next().value;
    else if (r.status !== 2) return { error: `getent passwd ${key}: ${r.error?.message ?? (r.signal ? `killed by ${r.signal}` : `exit ${r.status}`)}` };
    if (this.nssCache.size >= NSS_CACHE_MAX) this.nssCache.clear();
    this.nssCache.set(key, { info, until: now + NSS_TTL_MS });
    return info;
  }
}

/** Does nsswitch.conf's passwd line name a source besides files/compat (ldap, sss, systemd …)? */
export function nsswitchHasOtherSources(path: string): boolean {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return false;
  }
  const line = text.split('\n').find((l) => /^\s*passwd\s*:/.test(l));
  if (line === undefined) return false;
  const sources = line
    .replace(/#.*/, '')
    .replace(/^\s*passwd\s*:/, '')
    .replace(/\[[^\]]*\]/g, ' ')
    .split(/\s+/)
    .filter((w) => w !== '');
  return sources.some((s) => s !== 'files' && s !== 'compat');
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
