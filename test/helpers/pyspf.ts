/*
 * test/helpers/pyspf.ts — pyspf (Debian python3-spf), the reference SPF
 * implementation, as a third-party check: check_host() for (ip, sender,
 * helo), asking the test's DNS server (dnspython pointed at it).
 */
import { execFileSync } from 'node:child_process';

const SCRIPT = `
import sys, os, spf, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = [os.environ['NS_ADDR']]
r.port = int(os.environ['NS_PORT'])
r.lifetime = 5
dns.resolver.default_resolver = r
res, text = spf.check2(i=os.environ['IP'], s=os.environ['SENDER'], h=os.environ['HELO'])
print(res)
`;

/** pyspf's result: pass, fail, softfail, neutral, none, temperror or permerror. */
export function pyspf(server: { address: string; port: number }, ip: string, sender: string, helo: string): string {
  return execFileSync('/usr/bin/python3', ['-c', SCRIPT], { env: { ...process.env, NS_ADDR: server.address, NS_PORT: String(server.port), IP: ip, SENDER: sender, HELO: helo }, encoding: 'utf8' }).trim();
}
