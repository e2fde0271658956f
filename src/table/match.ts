/*
 * table/match.ts — matching against table contents: the domain, netaddr
 * and mailaddr lookup services (OpenSMTPD's K_DOMAIN, K_NETADDR,
 * K_MAILADDR). The other services are in services.ts and aliases.ts.
 *
 * Results are tri-state: true, false, or { error } when the table cannot
 * be read — which the caller must turn into a temporary failure.
 */
import ipaddr from 'ipaddr.js';
import type { Table } from './table.js';
import { normalizeIp } from '../net/ip.js';

export type Match = boolean | { readonly error: string };

/**
 * Domain service: "example.org" exact, "*.example.org" any subdomain (not
 * example.org itself). Only exact lookups ("x.example.org", then
 * "*.example.org", "*.org"), so a large compiled table is never scanned.
 */
export function matchDomain(t: Table, domain: string): Match {
  const d = domain.toLowerCase().replace(/\.$/, '');
  const labels = d.split('.');
  const candidates = [d];
  for (let i = 1; i < labels.length; i++) candidates.push(`*.${labels.slice(i).join('.')}`);
  for (const k of candidates) {
    const r = t.get(k);
    if (r.kind === 'error') return { error: r.reason };
    if (r.kind === 'found') return true;
  }
  return false;
}

/** Netaddr service: addresses and CIDR blocks, IPv4-mapped IPv6 handled. */
export function matchNetaddr(t: Table, ip: string): Match {
  const keys = t.keys();
  if (!Array.isArray(keys)) return { error: (keys as { error: string }).error };
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = normalizeIp(ipaddr.parse(ip));
  } catch {
    return false;
  }
  for (const k of keys as readonly string[]) {
    if (cidrContains(k, addr)) return true;
  }
  return false;
}

/** Mail address service: "user@domain", "@domain", "user" (any domain), "@" (anything). */
export function matchMailaddr(t: Table, address: string): Match {
  const a = address.toLowerCase();
  const at = a.lastIndexOf('@');
  const local = at < 0 ? a : a.slice(0, at);
  const domain = at < 0 ? '' : a.slice(at + 1);
  for (const key of [a, `@${domain}`, local, '@']) {
    const r = t.get(key);
    if (r.kind === 'error') return { error: r.reason };
    if (r.kind === 'found') return true;
  }
  return false;
}

/** Is `addr` inside `spec` ("10.0.0.0/8", "::1", "[::1]", "192.0.2.7")? Bad specs never match. */
export function cidrContains(spec: string, addr: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  if (spec.startsWith('[') && spec.endsWith(']')) spec = spec.slice(1, -1).replace(/^ipv6:/i, '');
  try {
    if (spec.includes('/')) {
      const [net, bits] = ipaddr.parseCIDR(spec);
      const n = normalizeIp(net);
      if (n.kind() !== addr.kind()) return false;
      const b = net.kind() === 'ipv6' && n.kind() === 'ipv4' ? bits - 96 : bits;
      return addr.match(n, b);
    }
    const n = normalizeIp(ipaddr.parse(spec));
    return n.kind() === addr.kind() && n.toString() === addr.toString();
  } catch {
    return false;
  }
}
