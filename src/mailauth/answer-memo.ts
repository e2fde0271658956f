/*
 * mailauth/answer-memo.ts — results of SPF and DMARC kept for as long as
 * the DNS answers they were computed from.
 *
 * An SPF result is a function of (client IP, MAIL FROM, HELO) and of the
 * DNS answers its evaluation read (RFC 7208 §4: check_host() has no other
 * input, once records with macros — %{t} is the time — are set aside); a
 * DMARC result one of the From: domain, the aligned identifiers and its
 * DNS answers. So a result is kept under its inputs together with the
 * cached answers (dns/ttl-cache.ts entry(): one object per answer, until
 * its TTL runs out or it is replaced) of every lookup it made, and given
 * again only while each of those is still the very answer in the cache. A
 * record that changes is seen when its TTL has run out, as without this
 * memo; a lookup that failed (a failure is never cached), a result that is
 * a temporary error, or one the caller declines, is not kept at all.
 * Bounded: the oldest entry goes past `max`. The results are shared
 * between messages: read-only.
 */
import type { MailAuthResolver } from './lib.js';

interface Kept<T> {
  readonly value: T;
  readonly behind: readonly (readonly [string, string, object])[];
}

export class AnswerMemo<T> {
  private readonly kept = new Map<string, Kept<T>>();

  constructor(private readonly max = 2000) {}

  get size(): number {
    return this.kept.size;
  }

  /**
   * The result for `key`: the kept one while its answers stand, else
   * compute(resolver) through a resolver that notes what it reads, kept if
   * `keep` says so (it sees the TXT answers read) and every read answer is
   * a cached one.
   */
  async get(key: string, resolver: MailAuthResolver, compute: (r: MailAuthResolver) => Promise<T>, keep: (value: T, txt: readonly unknown[]) => boolean): Promise<T> {
    const entry = resolver.entry;
    if (entry === undefined) return compute(resolver);
    const hit = this.kept.get(key);
    if (hit !== undefined) {
      if (hit.behind.every(([name, type, e]) => entry(name, type) === e)) return hit.value;
      this.kept.delete(key);
    }
    const behind: (readonly [string, string, object])[] = [];
    const txt: unknown[] = [];
    let uncached = false;
    const noting: MailAuthResolver = async (name, type) => {
      try {
        const records = await resolver(name, type);
        const e = entry(name, type);
        if (e === undefined || (e as { records?: unknown }).records !== records) uncached = true;
        else behind.push([name, type, e]);
        if (type === 'TXT') txt.push(...records);
        return records;
      } catch (err) {
        const e = entry(name, type);
        if (e === undefined || (e as { code?: unknown }).code !== (err as { code?: unknown }).code) uncached = true;
        else behind.push([name, type, e]);
        throw err;
      }
    };
    const value = await compute(noting);
    if (!uncached && keep(value, txt)) {
      if (this.kept.size >= this.max) this.kept.delete(this.kept.keys().next().value as string);
      this.kept.set(key, { value, behind });
    }
    return value;
  }
}

/** A TXT answer (string[][] as node:dns gives it) that uses SPF macros (RFC 7208 §7), whose expansion may depend on more than the key. */
export function hasMacro(txt: readonly unknown[]): boolean {
  return txt.some((r) => (Array.isArray(r) ? r.join('') : String(r)).includes('%'));
}
