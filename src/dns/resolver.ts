/*
 * dns/resolver.ts — the DNS lookups the server needs, with Postern's own
 * server list (`resolver "IP[:PORT]"`, default: the system's), a timeout,
 * and a small cache.
 *
 * reverseConfirmed(ip): the PTR name of ip, kept only when it resolves
 * back to ip (forward-confirmed rDNS, as Postfix's and OpenSMTPD's
 * "fcrdns"). Loopback addresses are "localhost" without a query unless
 * servers are configured (tests serve their own zones on loopback).
 *
 * lookups: the same servers through the TTL-honouring cache (ttl-cache.ts),
 * one per Resolver, for the checks made while mail is received.
 */
import { Resolver as DnsResolver } from 'node:dns/promises';
import type { ResolverOptions } from '../config/model.js';
import { canonicalIp } from '../net/ip.js';
import { askServers, TtlCache } from './ttl-cache.js';

interface CacheEntry {
  readonly value: string | undefined;
  readonly expires: number;
}

export class Resolver {
  private readonly dns: DnsResolver;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly configured: boolean;
  private cached: TtlCache | undefined;

  constructor(
    private readonly opts: ResolverOptions,
    private readonly cacheTtlMs = 5 * 60_000,
    private readonly cacheMax = 10_000,
  ) {
    this.dns = new DnsResolver({ timeout: opts.timeoutMs, tries: 2 });
    this.configured = opts.servers.length > 0;
    if (this.configured) this.dns.setServers([...opts.servers]);
  }

  /** Underlying resolver, for MX/TXT lookups by later subsystems. */
  get raw(): DnsResolver {
    return this.dns;
  }

  /** MX, TXT, A, AAAA … kept by their TTLs (ttl-cache.ts); made on first use. */
  get lookups(): TtlCache {
    this.cached ??= new TtlCache(askServers(this.opts));
    return this.cached;
  }

  async reverseConfirmed(ip: string): Promise<string | undefined> {
    const addr = canonicalIp(ip);
    if (!this.configured && (addr === '127.0.0.1' || addr === '::1')) return 'localhost';
    const hit = this.cache.get(addr);
    if (hit && hit.expires > Date.now()) return hit.value;
    const value = await this.lookup(addr);
    if (this.cache.size >= this.cacheMax) this.cache.clear();
    this.cache.set(addr, { value, expires: Date.now() + this.cacheTtlMs });
    return value;
  }

  /**
   * The client's name as its PTR record says, not checked forward (ZMailer's
   * smtpserver -g, "gullible": believe what you are told). Cached as
   * reverseConfirmed() is; undefined without a PTR or on a DNS failure.
   */
  async reverseName(ip: string): Promise<string | undefined> {
    const addr = canonicalIp(ip);
    if (!this.configured && (addr === '127.0.0.1' || addr === '::1')) return 'localhost';
    const key = `ptr:${addr}`;
    const hit = this.cache.get(key);
    if (hit && hit.expires > Date.now()) return hit.value;
    const deadline = new Promise<undefined>((r) => setTimeout(() => r(undefined), this.opts.timeoutMs * 2).unref());
    const value = await Promise.race([
      this.dns.reverse(addr).then(
        (names) => names[0]?.replace(/\.$/, '').toLowerCase(),
        () => undefined,
      ),
      deadline,
    ]);
    if (this.cache.size >= this.cacheMax) this.cache.clear();
    this.cache.set(key, { value, expires: Date.now() + this.cacheTtlMs });
    return value;
  }

  private async lookup(addr: string): Promise<string | undefined> {
    const deadline = new Promise<undefined>((r) => setTimeout(() => r(undefined), this.opts.timeoutMs * 2).unref());
    const work = (async () => {
      try {
        const names = await this.dns.reverse(addr);
        for (const name of names.slice(0, 5)) {
          const forward = addr.includes(':') ? await this.dns.resolve6(name).catch(() => []) : await this.dns.resolve4(name).catch(() => []);
          if (forward.some((a) => canonicalIp(a) === addr)) return name.replace(/\.$/, '').toLowerCase();
        }
      } catch {
        /* no PTR, or DNS failure: unknown */
      }
      return undefined;
    })();
    return Promise.race([work, deadline]);
  }
}
