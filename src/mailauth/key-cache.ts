/*
 * mailauth/key-cache.ts — parse each DKIM key once per thread, not once
 * per message.
 *
 * mailauth turns the key it is given into a KeyObject on every call:
 * crypto.createPublicKey() of the DNS record's key for every signature it
 * verifies, crypto.createPrivateKey() of the PEM for every signature it
 * makes. With the DNS answers cached (dns.ts) that parse was the largest
 * part of the crypto work left (auth-sign profile, 2026-12-07: 8 % of the
 * signing worker's time in createPrivateKey and its key details, more than
 * any of mailauth's own functions; auth-verify: 3 % in createPublicKey).
 * mailauth takes no KeyObject (its getPrivateKey() wants a string or a
 * Buffer), so the two functions of node:crypto that it calls through the
 * module object are wrapped here, in the threads that load mailauth
 * (lib.ts): the same key bytes, format and type give the same immutable
 * KeyObject. Only plain inputs are kept (a Buffer or a string, no
 * passphrase); anything else, and a key that does not parse, goes to
 * Node's function as before. Bounded: the oldest entry goes past MAX_KEYS.
 */
import crypto, { type KeyObject } from 'node:crypto';

const MAX_KEYS = 1000;
const installed = Symbol.for('postern.mailauth.keyCache');

type Parse = (input: unknown) => KeyObject;

/** The cache key of a plain input, or undefined for one not kept. */
function cacheKey(input: unknown): string | undefined {
  if (typeof input === 'string') return `s:${input}`;
  if (Buffer.isBuffer(input)) return `b:${input.toString('latin1')}`;
  if (typeof input !== 'object' || input === null) return undefined;
  const o = input as Record<string, unknown>;
  if (Object.keys(o).some((k) => k !== 'key' && k !== 'format' && k !== 'type')) return undefined;
  const head = `${String(o.format ?? '')}/${String(o.type ?? '')}`;
  if (typeof o.key === 'string') return `${head}:s:${o.key}`;
  if (Buffer.isBuffer(o.key)) return `${head}:b:${o.key.toString('latin1')}`;
  return undefined;
}

export function memoized(parse: Parse, max = MAX_KEYS): Parse {
  const keys = new Map<string, KeyObject>();
  return (input) => {
    const k = cacheKey(input);
    if (k === undefined) return parse(input);
    const hit = keys.get(k);
    if (hit !== undefined) return hit;
    const made = parse(input);
    if (keys.size >= max) keys.delete(keys.keys().next().value as string);
    keys.set(k, made);
    return made;
  };
}

/** Wrap node:crypto's createPublicKey and createPrivateKey for this thread (once). */
export function cacheParsedKeys(): void {
  const c = crypto as unknown as Record<string | symbol, unknown>;
  if (c[installed] === true) return;
  c[installed] = true;
  c.createPublicKey = memoized(crypto.createPublicKey as Parse);
  c.createPrivateKey = memoized(crypto.createPrivateKey as Parse);
}
