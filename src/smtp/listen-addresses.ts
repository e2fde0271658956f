/*
 * smtp/listen-addresses.ts — what `listen on X` binds to.
 *
 *   an IPv4/IPv6 address    that address
 *   localhost               127.0.0.1 and ::1
 *   lo, lo0                 the loopback interface's addresses (lo0 is BSD's name; Linux has lo)
 *   any, all, *             every address (:: dual-stack, or 0.0.0.0 with inet4)
 *   an interface name       that interface's addresses (os.networkInterfaces)
 *
 * `inet4` / `inet6` keep only that family.
 */
import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';

export function listenAddresses(on: string, family?: 'inet4' | 'inet6'): string[] | { error: string } {
  const keep = (addrs: string[]): string[] =>
    addrs.filter((a) => (family === 'inet4' ? isIP(a) === 4 : family === 'inet6' ? isIP(a) === 6 : true));
  const name = on.replace(/^\[|\]$/g, '');
  if (isIP(name)) return keep([name]);
  const lower = name.toLowerCase();
  if (lower === 'localhost') return keep(['127.0.0.1', '::1']);
  if (lower === 'any' || lower === 'all' || lower === '*') return family === 'inet4' ? ['0.0.0.0'] : family === 'inet6' ? ['::'] : ['::'];
  const ifs = networkInterfaces();
  const iface = ifs[name] ?? (lower === 'lo0' ? ifs['lo'] : undefined);
  if (iface) return keep(iface.map((a) => a.address.replace(/%.*$/, '')));
  return { error: `"${on}" is neither an address nor a network interface of this machine` };
}
