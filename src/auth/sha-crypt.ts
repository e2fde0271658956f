/*
 * auth/sha-crypt.ts — SHA-256-crypt ($5$) and SHA-512-crypt ($6$), as
 * specified by Ulrich Drepper ("Unix crypt using SHA-256 and SHA-512"),
 * the hashes `openssl passwd -5/-6`, `mkpasswd` and older /etc/shadow
 * files hold. Written by hand: no maintained npm package offers it without
 * a native build, and the algorithm is short and fixed by its spec.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const B64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function shaCrypt(kind: 5 | 6, password: string, setting: string): string | undefined {
  const m = /^\$([56])\$(?:rounds=(\d+)\$)?([^$]{0,16})/.exec(setting);
  if (!m || Number(m[1]) !== kind) return undefined;
  const algo = kind === 5 ? 'sha256' : 'sha512';
  const explicitRounds = m[2] !== undefined;
  const rounds = explicitRounds ? Math.min(999_999_999, Math.max(1000, Number(m[2]))) : 5000;
  const salt = Buffer.from(m[3] ?? '', 'utf8');
  const key = Buffer.from(password, 'utf8');
  const h = (...parts: Buffer[]): Buffer => {
    const x = createHash(algo);
    for (const p of parts) x.update(p);
    return x.digest();
  };
  const repeat = (src: Buffer, len: number): Buffer => {
    const out = Buffer.alloc(len);
    for (let i = 0; i < len; i++) out[i] = src[i % src.length] as number;
    return out;
  };

  const b = h(key, salt, key);
  const a = createHash(algo).update(key).update(salt).update(repeat(b, key.length));
  for (let n = key.length; n > 0; n >>= 1) a.update(n & 1 ? b : key);
  const da = a.digest();
  const dp = createHash(algo);
  for (let i = 0; i < key.length; i++) dp.update(key);
  const p = repeat(dp.digest(), key.length);
  const ds = createHash(algo);
  for (let i = 0; i < 16 + (da[0] as number); i++) ds.update(salt);
  const s = repeat(ds.digest(), salt.length);

  let c = da;
  for (let i = 0; i < rounds; i++) {
    const x = createHash(algo);
    x.update(i & 1 ? p : c);
    if (i % 3) x.update(s);
    if (i % 7) x.update(p);
    x.update(i & 1 ? c : p);
    c = x.digest();
  }
  const order = kind === 5 ? ORDER_256 : ORDER_512;
  let enc = '';
  for (const [x, y, z] of order) enc += b64From24((c[x] as number) << 16 | (c[y] as number) << 8 | (c[z] as number), 4);
  enc += kind === 5 ? b64From24((c[31] as number) << 8 | (c[30] as number), 3) : b64From24(c[63] as number, 2);
  return `$${kind}$${explicitRounds ? `rounds=${rounds}$` : ''}${salt.toString('utf8')}$${enc}`;
}

function b64From24(v: number, n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) {
    out += B64[v & 0x3f];
    v >>= 6;
  }
  return out;
}

const ORDER_256: [number, number, number][] = [
  [0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14], [15, 25, 5], [6, 16, 26], [27, 7, 17], [18, 28, 8], [9, 19, 29],
];
const ORDER_512: [number, number, number][] = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7], [50, 8, 29], [9, 30, 51],
  [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60],
  [40, 61, 19], [62, 20, 41],
];

export function shaCryptVerify(password: string, stored: string): boolean {
  const kind = stored.startsWith('$5$') ? 5 : stored.startsWith('$6$') ? 6 : undefined;
  if (kind === undefined) return false;
  const got = shaCrypt(kind, password, stored);
  if (got === undefined || got.length !== stored.length) return false;
  return timingSafeEqual(Buffer.from(got), Buffer.from(stored));
}
