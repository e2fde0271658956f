/*
 * table/services.ts — the credentials and userinfo lookup services, and a
 * UserBase served by a `userbase` table.
 *
 * credentials (OpenSMTPD K_CREDENTIALS), two forms of one table:
 *   smtp.gmail.com  bob@gmail.com:secret     relay secrets (seed 002): key = host
 *                                             or label, value "user:password"
 *                                             (split at the first ":")
 *   bob  $2b$10$Jx…                          listener `auth <table>`: key = user,
 *                                             value = password hash (crypt(3))
 *   A value that starts with "$" (a crypt hash) or has no ":" is a password
 *   for the user named by the key; anything else is "user:password".
 *
 * userinfo (K_USERINFO), `userbase <table>`:
 *   name  uid:gid:/home/dir
 *
 * Every lookup is tri-state: a table that cannot be read, or a value that
 * does not have the service's form, is an 'error' — the caller defers.
 */
import type { UserBase, UserInfo } from '../users/system-users.js';
import type { Table } from './table.js';

export type ServiceLookup<T> = { readonly kind: 'found'; readonly value: T } | { readonly kind: 'notfound' } | { readonly kind: 'error'; readonly reason: string };

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/** Credentials for a relay label/host or an authenticating user. */
export function lookupCredentials(table: Table, key: string): ServiceLookup<Credentials> {
  const r = table.get(key.toLowerCase());
  if (r.kind !== 'found') return r;
  const v = parseCredentials(key, r.value);
  return typeof v === 'string' ? { kind: 'error', reason: `table ${table.name}: ${v}` } : { kind: 'found', value: v };
}

export function parseCredentials(key: string, value: string): Credentials | string {
  if (value === '') return `no password for "${key}"`;
  const colon = value.indexOf(':');
  if (value.startsWith('$') || colon < 0) return { user: key, password: value };
  const user = value.slice(0, colon);
  const password = value.slice(colon + 1);
  if (user === '') return `empty user name in the credentials of "${key}"`;
  if (password === '') return `empty password in the credentials of "${key}"`;
  return { user, password };
}

/** userinfo: "uid:gid:/home". */
export function lookupUserinfo(table: Table, name: string): ServiceLookup<UserInfo> {
  const key = name.toLowerCase();
  const r = table.get(key);
  if (r.kind !== 'found') return r;
  const u = parseUserinfo(key, r.value);
  return typeof u === 'string' ? { kind: 'error', reason: `table ${table.name}: ${u}` } : { kind: 'found', value: u };
}

export function parseUserinfo(name: string, value: string): UserInfo | string {
  const m = /^\s*(\d+):(\d+):(\/\S*)\s*$/.exec(value);
  if (!m) return `userinfo for "${name}" is "${value}", expected uid:gid:/home/directory`;
  const uid = Number(m[1]);
  const gid = Number(m[2]);
  if (uid > 0xffffffff || gid > 0xffffffff) return `userinfo for "${name}": uid or gid out of range`;
  return { name, uid, gid, home: m[3] as string, shell: '' };
}

/** Users of a `userbase` table, as a UserBase. */
export class TableUserBase implements UserBase {
  constructor(private readonly table: Table) {}

  lookup(name: string): UserInfo | undefined | { readonly error: string } {
    const r = lookupUserinfo(this.table, name);
    if (r.kind === 'error') return { error: r.reason };
    return r.kind === 'found' ? r.value : undefined;
  }
}
