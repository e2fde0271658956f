/*
 * mta/route.ts — where the mail for one destination goes: an ordered list
 * of (host, address, port) targets, or a final verdict.
 *
 *  - `relay host URL` / legacy `relay via HOST`: the smarthost, by its A and
 *    AAAA records (no MX lookup, as OpenSMTPD); port from the URL, else 25
 *    (465 for smtps, 24 for lmtp). A smarthost on one of our own
 *    addresses is allowed: a content filter on 127.0.0.1:10025 is a
 *    common setup, not a loop.
 *  - an address literal (user@[192.0.2.1], user@[IPv6:2001:db8::1]): that
 *    address.
 *  - otherwise the MX hosts of the domain (mta/mx.ts), at most `maxHosts`
 *    of them and `maxAddresses` addresses in all per attempt.
 *
 * Loops (RFC 5321 §5.1, Postfix's "mail for X loops back to myself",
 * 5.4.6): a domain that is one of our own names, an address literal of one
 * of our addresses, or an MX list in which we are the best host. A host
 * is "us" when its name is one of our local names (the configured hostname,
 * localhost …, or `backup mx NAME`) or all of its addresses are ours; we
 * and every host not preferred over us are discarded, and when nothing is
 * left the mail fails instead of going round forever. With `backup` this
 * is exactly the backup-MX rule: only hosts preferred over us are tried.
 *
 * DNS results: NXDOMAIN → 5.1.2; null MX → 5.1.10 (RFC 7505); no address
 * for any MX host → 5.4.4; any DNS error (SERVFAIL, timeout) → temporary,
 * 4.4.3.
 */
import { isIP } from 'node:net';
import type { RelayOptions, RelayScheme } from '../config/model.js';
import { canonicalIp } from '../net/ip.js';
import { lookupAddresses, lookupMx, type MxDns, type MxHost } from '../dns/mx.js';

/** What routing needs to know about this machine (policy/localnames.ts LocalNames). */
export interface SelfNames {
  isLocalDomain(domain: string): boolean;
  isOwnAddress(ip: string): boolean;
}

export interface Target {
  /** Host name (MX exchange or smarthost), or the address itself for literals. */
  readonly host: string;
  readonly address: string;
  readonly port: number;
  /** MX preference; undefined for smarthosts and literals. */
  readonly preference?: number;
}

export type Verdict = { readonly status: 'tempfail' | 'permfail'; readonly enhanced: string; readonly detail: string };

export type Route =
  | {
      readonly kind: 'targets';
      readonly targets: readonly Target[];
      /** Routed through `relay host` / `relay via`. */
      readonly smarthost: boolean;
      /** Errors met on the way (hosts without addresses), for the final message if every target fails. */
      readonly notes: readonly string[];
    }
  | ({ readonly kind: 'fail' } & Verdict);

export interface RouteOptions {
  /** Port of MX hosts and address literals (25; tests change it). */
  readonly port: number;
  readonly maxHosts: number;
  readonly maxAddresses: number;
  /** Address families to use for MX hosts and smarthosts. */
  readonly family: 'any' | 'inet4' | 'inet6';
  readonly rnd?: () => number;
}

export function defaultPort(scheme: RelayScheme): number {
  return scheme === 'smtps' ? 465 : scheme === 'lmtp' ? 24 : 25;
}

function fail(status: 'tempfail' | 'permfail', enhanced: string, detail: string): Route {
  return { kind: 'fail', status, enhanced, detail };
}

function loop(domain: string, why: string): Route {
  return fail('permfail', '5.4.6', `mail for ${domain} loops back to myself (${why})`);
}

function byFamily(addresses: readonly string[], family: RouteOptions['family']): string[] {
  const v4 = addresses.filter((a) => isIP(a) === 4);
  const v6 = addresses.filter((a) => isIP(a) === 6);
  return family === 'inet4' ? v4 : family === 'inet6' ? v6 : [...v4, ...v6];
}

/** The IP of an address-literal domain ("[192.0.2.1]", "[IPv6:2001:db8::1]"), or undefined. */
export function literalAddress(domain: string): string | undefined {
  const m = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(domain);
  if (m === null || m[1] === undefined) return undefined;
  return isIP(m[1]) !== 0 ? canonicalIp(m[1]) : undefined;
}

export async function resolveRoute(relay: RelayOptions, domain: string, dns: MxDns, self: SelfNames, hostname: string, opts: RouteOptions): Promise<Route> {
  if (relay.host !== undefined) {
    const h = relay.host;
    const port = h.port ?? defaultPort(h.scheme);
    const found = await lookupAddresses(dns, h.host);
    if (found.kind === 'error') return fail('tempfail', '4.4.3', `relay host ${h.host}: ${found.message}`);
    if (found.kind === 'not-found') return fail('tempfail', '4.4.4', `relay host ${h.host}: ${found.message}`);
    const addrs = byFamily(found.addresses, isIP(h.host) !== 0 ? 'any' : opts.family);
    if (addrs.length === 0) return fail('tempfail', '4.4.4', `relay host ${h.host} has no ${opts.family} address`);
    return { kind: 'targets', smarthost: true, notes: [], targets: addrs.slice(0, opts.maxAddresses).map((address) => ({ host: h.host, address, port })) };
  }

  if (domain === '') return fail('permfail', '5.1.3', 'recipient address has no domain');
  const literal = literalAddress(domain);
  if (domain.startsWith('[')) {
    if (literal === undefined) return fail('permfail', '5.1.3', `invalid address literal ${domain}`);
    if (self.isOwnAddress(literal)) return loop(domain, 'the address is one of ours');
    return { kind: 'targets', smarthost: false, notes: [], targets: [{ host: literal, address: literal, port: opts.port }] };
  }
  if (self.isLocalDomain(domain)) return loop(domain, 'the domain is one of our names');

  const mx = await lookupMx(dns, domain, opts.rnd);
  switch (mx.kind) {
    case 'null-mx':
      return fail('permfail', '5.1.10', `Recipient address has null MX: ${domain} accepts no mail (RFC 7505)`);
    case 'nxdomain':
      return fail('permfail', '5.1.2', `Domain not found: ${mx.message}`);
    case 'error':
      return fail('tempfail', '4.4.3', mx.message);
    case 'mx':
      break;
  }

  // Our own preference: any host named as us (or `backup mx NAME`).
  const ourNames = new Set<string>([hostname.toLowerCase()]);
  if (relay.backupMx !== undefined) ourNames.add(relay.backupMx.toLowerCase().replace(/\.$/, ''));
  const isUs = (h: MxHost): boolean => ourNames.has(h.name) || self.isLocalDomain(h.name);
  let ours = Math.min(...mx.hosts.filter(isUs).map((h) => h.preference));
  let hosts = mx.hosts.filter((h) => !isUs(h) && h.preference < ours);

  // Addresses of the candidates (in parallel), limited to maxHosts hosts.
  const notes: string[] = [];
  const looked = await Promise.all(hosts.slice(0, opts.maxHosts).map(async (h) => ({ h, r: await lookupAddresses(dns, h.name) })));
  let dnsError = false;
  let anyAddress = false;
  const targets: Target[] = [];
  // A host whose addresses are all ours is us too: it and every host after it at its preference or worse go.
  for (const { h, r } of looked) {
    if (r.kind !== 'ok') {
      notes.push(r.message);
      if (r.kind === 'error') dnsError = true;
      continue;
    }
    const addrs = byFamily(r.addresses, opts.family);
    if (addrs.length === 0) {
      notes.push(`host ${h.name} has no ${opts.family} address`);
      continue;
    }
    anyAddress = true;
    if (addrs.every((a) => self.isOwnAddress(a))) {
      ours = Math.min(ours, h.preference);
      continue;
    }
    for (const address of addrs) {
      if (!self.isOwnAddress(address)) targets.push({ host: h.name, address, port: opts.port, preference: h.preference });
    }
  }
  const kept = targets.filter((t) => (t.preference ?? 0) < ours).slice(0, opts.maxAddresses);
  hosts = hosts.filter((h) => h.preference < ours);

  if (kept.length === 0) {
    if (Number.isFinite(ours) && hosts.length === 0) {
      const implicit = mx.hosts[0]?.implicit === true;
      return loop(domain, relay.backup ? 'no MX host is preferred over this backup MX' : implicit ? 'the domain resolves to our address' : 'we are its best MX');
    }
    if (dnsError) return fail('tempfail', '4.4.3', notes.join('; '));
    if (!anyAddress) {
      const implicit = mx.hosts[0]?.implicit === true;
      return fail('permfail', implicit ? '5.1.2' : '5.4.4', implicit ? `Domain ${domain} has no MX and no address record` : `no MX host of ${domain} has an address: ${notes.join('; ')}`);
    }
    return fail('tempfail', '4.4.4', `no usable address for ${domain}: ${notes.join('; ')}`);
  }
  return { kind: 'targets', smarthost: false, notes, targets: kept };
}
