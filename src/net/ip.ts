/*
 * net/ip.ts — IP address helpers every layer shares: one canonical text
 * form per address (IPv4-mapped IPv6 shown as IPv4, zone ids dropped), so
 * that limits, tables, logs and rules compare the same strings.
 */
import ipaddr from 'ipaddr.js';

export function canonicalIp(ip: string): string {
  try {
    return normalizeIp(ipaddr.parse(ip.replace(/%.*$/, ''))).toString();
  } catch {
    return ip.toLowerCase();
  }
}

export function normalizeIp(a: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address();
  return a;
}
