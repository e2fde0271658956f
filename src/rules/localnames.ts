/*
 * policy/localnames.ts — what "local" means for `from local` and `for local`.
 *
 * Local domains: the configured hostname, "localhost", and address
 * literals of this machine's own addresses ([127.0.0.1], [IPv6:::1] …).
 * Local sources: 127.0.0.1, ::1, this machine's own interface addresses
 * and the local enqueue socket. Other 127/8 addresses are *not* local:
 * tests use 127.0.0.2 … as stand-ins for remote clients.
 */
import { networkInterfaces } from 'node:os';
import ipaddr from 'ipaddr.js';
import { normalizeIp } from '../net/ip.js';
import { canonicalIp } from '../net/ip.js';

export class LocalNames {
  private readonly domains: Set<string>;
  private readonly addresses: Set<string>;
  /** The configured hostname (a bare <postmaster> is postmaster@hostname). */
  readonly hostname: string;

  constructor(hostname: string, extraDomains: readonly string[] = []) {
    this.hostname = hostname.toLowerCase();
    this.addresses = new Set(['127.0.0.1', '::1']);
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) this.addresses.add(canonicalIp(a.address));
    }
    this.domains = new Set(['localhost', 'localhost.localdomain', hostname.toLowerCase(), ...extraDomains.map((d) => d.toLowerCase())]);
    for (const a of this.addresses) {
      this.domains.add(a.includes(':') ? `[ipv6:${a}]` : `[${a}]`);
    }
  }

  /** Is this recipient domain ours? "" is <postmaster>. */
  isLocalDomain(domain: string): boolean {
    if (domain === '') return true;
    return this.domains.has(domain.toLowerCase());
  }

  /** Does a connection from this address count as `from local`? */
  isLocalAddress(ip: string): boolean {
    return this.addresses.has(canonicalIp(ip));
  }

  /** Is this address one of ours (mail routed to it would loop)? */
  isOwnAddress(ip: string): boolean {
    return this.isLocalAddress(ip);
  }
}
