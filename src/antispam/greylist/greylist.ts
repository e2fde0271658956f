/*
 * antispam/greylist/greylist.ts — greylisting (Harris, 2003; as Postgrey):
 * the first delivery attempt of a triplet (client network, sender,
 * recipient) is deferred; a retry after `delay` and within `retryWindow`
 * passes, and the triplet passes from then on until unused for
 * `lifetime`. A client network whose triplets passed `allowlistAfter`
 * times is allowlisted (it retries properly: no need to delay it again).
 *
 * The network is the client's /24 (IPv4) or /64 (IPv6): large senders
 * retry from another address of the same farm. Pure apart from the store;
 * the clock is passed in.
 *
 * A client or triplet that passes again is written back ("last seen") only
 * when its record is older than REFRESH (an hour, or a tenth of the
 * lifetime): lifetimes are days, and a write per message (the file store
 * fsyncs each) cost more than the rest of the checks together.
 */
import ipaddr from 'ipaddr.js';
import { normalizeIp } from '../../net/ip.js';
import type { GreylistSettings } from '../../config/antispam.js';
import type { GreylistStore } from './store.js';

export type GreylistOutcome =
  | { readonly kind: 'pass'; readonly why: 'allowlisted' | 'known' | 'retried' }
  | { readonly kind: 'defer'; readonly waitMs: number };

export function clientNetwork(ip: string): string {
  try {
    const a = normalizeIp(ipaddr.parse(ip.replace(/%.*$/, '')));
    if (a.kind() === 'ipv4') return `${(a as ipaddr.IPv4).octets.slice(0, 3).join('.')}.0/24`;
    const parts = (a as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16));
    return `${parts.join(':')}::/64`;
  } catch {
    return ip;
  }
}

const REFRESH_MS = 3_600_000;

export class Greylist {
  private lastExpire = 0;

  constructor(
    private readonly settings: GreylistSettings,
    readonly store: GreylistStore,
  ) {}

  async check(ip: string, sender: string, rcpt: string, now: number): Promise<GreylistOutcome> {
    const s = this.settings;
    await this.maybeExpire(now);
    const net = clientNetwork(ip);
    const client = await this.store.client(net);
    const refresh = Math.min(REFRESH_MS, s.lifetimeMs / 10);
    if (s.allowlistAfter > 0 && client && client.passes >= s.allowlistAfter && now - client.last <= s.lifetimeMs) {
      if (now - client.last >= refresh) await this.store.putClient(net, { ...client, last: now });
      return { kind: 'pass', why: 'allowlisted' };
    }
    const key = `${net}|${sender.toLowerCase()}|${rcpt.toLowerCase()}`;
    const t = await this.store.triplet(key);
    const expired = t === undefined || (t.passed ? now - t.last > s.lifetimeMs : now > t.first + s.delayMs + s.retryWindowMs);
    if (expired) {
      await this.store.putTriplet(key, { first: now, last: now, passed: false });
      return { kind: 'defer', waitMs: s.delayMs };
    }
    if (t.passed) {
      if (now - t.last >= refresh) await this.store.putTriplet(key, { ...t, last: now });
      return { kind: 'pass', why: 'known' };
    }
    if (now < t.first + s.delayMs) return { kind: 'defer', waitMs: t.first + s.delayMs - now };
    await this.store.putTriplet(key, { ...t, last: now, passed: true });
    await this.store.putClient(net, { passes: (client?.passes ?? 0) + 1, last: now });
    return { kind: 'pass', why: 'retried' };
  }

  /** Once an hour, forget what is too old to matter. */
  private async maybeExpire(now: number): Promise<void> {
    if (now - this.lastExpire < 3_600_000) return;
    this.lastExpire = now;
    const s = this.settings;
    await this.store.expire({ triplets: now - s.lifetimeMs, pending: now - s.delayMs - s.retryWindowMs, clients: now - s.lifetimeMs });
  }
}
