/*
 * policy/obtuse/match.ts — does a rule of the rules file apply?
 *
 * The semantics are Obtuse smtpd's (address_check.c), learned from its
 * source and restated here:
 *
 * - Globs know only "*" and ignore case.
 * - A source element without "@" matches the client: ALL always; KNOWN
 *   when the client has a (forward-confirmed) host name; UNKNOWN when it
 *   has none; a network when the address is inside it; a glob when it
 *   matches the host name or the address text. A "host name" that is
 *   itself an IP address counts as no name.
 * - "user@host" in a SourceList needs the ident (RFC 1413) user: ALL
 *   matches any (even none), KNOWN any known user, a glob that user.
 * - An address element without "@" is a glob over the whole address
 *   ("" for the null sender <>), or NS=pattern over the address's domain.
 *   "local@domain" needs an "@" in the address; USER as the local part
 *   stands for the ident user; the domain may be NS=pattern.
 * - NS=pattern looks up the name servers and MX hosts of a name, dropping
 *   leading labels while the name does not exist or has none (walking up
 *   to its zone; never querying a top-level domain). NS=KNOWN: the name has an address, or name servers
 *   without dropping labels; NS=UNKNOWN: the opposite. Other patterns are
 *   compared with each server's addresses (networks, globs) and names.
 *   For a client without a host name, NS= uses the reverse zone of its
 *   address (in-addr.arpa / ip6.arpa).
 * - RBL.zone: the client address is listed in that DNS list.
 *
 * Lookups that fail (SERVFAIL, timeout) throw LookupFailure: the caller
 * answers with a temporary failure, never "no match" (Obtuse let mail
 * through instead).
 */
import ipaddr from 'ipaddr.js';
import { normalizeIp } from '../../net/ip.js';
import { reversedIp } from '../../dns/dnsl.js';
import type { AddressPattern, GlobPattern, HostPattern, NetPattern, NsPattern, PatternList, SourcePattern } from '../../config/obtuse/parse.js';

/** The DNS questions NS= and RBL. patterns ask. Implementations should time out. */
export interface ObtuseDns {
  /**
   * The NS and MX host names of exactly `name` (Obtuse looked at both).
   * null when the name does not exist (NXDOMAIN); [] when it exists without
   * NS or MX records. Throws when the lookup fails.
   */
  servers(name: string): Promise<readonly string[] | null>;
  /** A and AAAA addresses of `name`; [] when there are none. Throws when the lookup fails. */
  addresses(name: string): Promise<readonly string[]>;
}

export class LookupFailure extends Error {}

/** Everything a rule is matched against. */
export interface MatchSubject {
  /** Client address, canonical (IPv4-mapped IPv6 as IPv4). */
  readonly ip: string;
  /** Forward-confirmed host name, lowercased; undefined when unknown. */
  readonly host?: string;
  /** Sender "local@domain"; "" for the null sender. */
  readonly from: string;
  /** Recipient "local@domain" ("postmaster" for <postmaster>). */
  readonly to: string;
  /** The ident user (asked for once, only when a rule needs it). */
  ident(): Promise<string | undefined>;
}

const MAX_SERVERS = 20;

/** Matching state for one recipient: caches the DNS answers it needed. */
export class RuleMatcher {
  private readonly nsCache = new Map<string, Promise<NsInfo>>();
  private readonly addrCache = new Map<string, Promise<readonly string[]>>();
  private readonly parsedIp: ipaddr.IPv4 | ipaddr.IPv6 | undefined;

  constructor(
    private readonly subject: MatchSubject,
    private readonly dns: ObtuseDns | undefined,
  ) {
    this.parsedIp = parseIp(subject.ip);
  }

  async source(list: PatternList<SourcePattern>): Promise<boolean> {
    return this.list(list, (p) => this.sourceItem(p));
  }

  async address(list: PatternList<AddressPattern>, address: string): Promise<boolean> {
    return this.list(list, (p) => this.addressItem(p, address));
  }

  /** Obtuse's list semantics: some item matches, and the EXCEPT list (recursively) does not. */
  private async list<T>(list: PatternList<T>, one: (p: T) => Promise<boolean>): Promise<boolean> {
    let hit = false;
    for (const p of list.items) {
      if (await one(p)) {
        hit = true;
        break;
      }
    }
    if (!hit) return false;
    return list.except === undefined ? true : !(await this.list(list.except, one));
  }

  private async sourceItem(p: SourcePattern): Promise<boolean> {
    if (p.kind !== 'ident') return this.host(p);
    const user = await this.subject.ident();
    const userOk = p.user.kind === 'all' ? true : p.user.kind === 'known' ? user !== undefined : user !== undefined && globMatch(p.user.text, user);
    return userOk && this.host(p.host);
  }

  private async host(p: HostPattern): Promise<boolean> {
    const host = this.knownHost();
    switch (p.kind) {
      case 'all':
        return true;
      case 'known':
        return host !== undefined;
      case 'unknown':
        return host === undefined;
      case 'net':
        return this.inNet(p, this.parsedIp);
      case 'glob':
        return (host !== undefined && globMatch(p.text, host)) || globMatch(p.text, this.subject.ip);
      case 'ns':
        return this.nsMatch(p.ns, host ?? reverseZone(this.parsedIp, this.subject.ip));
      case 'rbl':
        return this.listed(p.zone);
    }
  }

  private knownHost(): string | undefined {
    const h = this.subject.host;
    if (h === undefined || h === '' || h.toUpperCase() === 'UNKNOWN') return undefined;
    // A PTR name that looks like an address is no name (Obtuse logs it as a subversion attempt).
    return parseIp(h) === undefined ? h.toLowerCase() : undefined;
  }

  private inNet(p: NetPattern, addr: ipaddr.IPv4 | ipaddr.IPv6 | undefined): boolean {
    if (addr === undefined || addr.kind() !== p.addr.kind()) return false;
    return addr.match(p.addr, p.bits);
  }

  private async addressItem(p: AddressPattern, address: string): Promise<boolean> {
    const at = address.lastIndexOf('@');
    switch (p.kind) {
      case 'all':
        return true;
      case 'glob':
        return globMatch(p.text, address);
      case 'ns':
        return this.nsMatch(p.ns, at < 0 ? address : address.slice(at + 1));
      case 'mailbox': {
        if (at < 0) return false;
        const local = address.slice(0, at);
        const domain = address.slice(at + 1);
        let localOk: boolean;
        if (p.local.kind === 'all') localOk = true;
        else if (p.local.kind === 'user') {
          const user = await this.subject.ident();
          localOk = user !== undefined && !user.includes('*') && local.toLowerCase() === user.toLowerCase();
        } else localOk = globMatch(p.local.text, local);
        if (!localOk) return false;
        if (p.domain.kind === 'all') return true;
        if (p.domain.kind === 'ns') return this.nsMatch(p.domain.ns, domain);
        return globMatch(p.domain.text, domain);
      }
    }
  }

  /* ---------------------------------------------------------------- DNS */

  private requireDns(): ObtuseDns {
    if (this.dns === undefined) throw new LookupFailure('NS= and RBL. patterns need a DNS resolver');
    return this.dns;
  }

  private async nsMatch(p: NsPattern, name: string): Promise<boolean> {
    const n = name.toLowerCase().replace(/\.$/, '');
    if (n === '') return p.kind === 'unknown';
    const info = await this.nsInfo(n);
    switch (p.kind) {
      case 'known':
        return (await this.addresses(n)).length > 0 || (info.servers.length > 0 && info.cropped === 0);
      case 'unknown':
        return (await this.addresses(n)).length === 0 && (info.servers.length === 0 || info.cropped > 0);
      case 'all':
        return info.servers.length > 0;
      case 'net':
        return info.addresses.some((a) => this.inNet(p, parseIp(a)));
      case 'glob':
        return info.addresses.some((a) => globMatch(p.text, a)) || info.servers.some((s) => globMatch(p.text, s));
    }
  }

  private nsInfo(name: string): Promise<NsInfo> {
    let hit = this.nsCache.get(name);
    if (hit === undefined) {
      hit = this.findServers(name);
      this.nsCache.set(name, hit);
    }
    return hit;
  }

  /**
   * Obtuse's findNameServers: walk up to the nearest zone — drop leading
   * labels while the name does not exist or has neither NS nor MX records
   * (a host such as mail.client.example, whose servers are its zone's,
   * client.example); never ask about a TLD.
   */
  private async findServers(name: string): Promise<NsInfo> {
    const dns = this.requireDns();
    let current = name;
    let cropped = 0;
    for (;;) {
      let servers: readonly string[] | null;
      try {
        servers = await dns.servers(current);
      } catch (e) {
        throw new LookupFailure(`NS/MX lookup of ${current} failed: ${(e as Error).message}`);
      }
      if (servers !== null && servers.length > 0) {
        const names = [...new Set(servers.map((s) => s.toLowerCase().replace(/\.$/, '')))].slice(0, MAX_SERVERS);
        const addresses: string[] = [];
        for (const s of names) {
          // A lame server name is no reason to fail the whole check (as in Obtuse).
          const a = await dns.addresses(s).catch(() => [] as readonly string[]);
          for (const x of a) addresses.push(canonical(x));
        }
        return { servers: names, addresses, cropped };
      }
      const dot = current.indexOf('.');
      const next = dot < 0 ? '' : current.slice(dot + 1);
      if (next === '' || !next.includes('.')) return { servers: [], addresses: [], cropped };
      current = next;
      cropped++;
    }
  }

  private addresses(name: string): Promise<readonly string[]> {
    let hit = this.addrCache.get(name);
    if (hit === undefined) {
      const dns = this.requireDns();
      hit = dns.addresses(name).catch((e: unknown) => {
        throw new LookupFailure(`address lookup of ${name} failed: ${(e as Error).message}`);
      });
      this.addrCache.set(name, hit);
    }
    return hit;
  }

  private async listed(zone: string): Promise<boolean> {
    if (this.parsedIp === undefined) return false;
    return (await this.addresses(`${reverseLabels(this.parsedIp)}.${zone}`)).length > 0;
  }
}

interface NsInfo {
  readonly servers: readonly string[];
  readonly addresses: readonly string[];
  /** How many leading labels were dropped before the name existed. */
  readonly cropped: number;
}

/** Obtuse's match_case_pattern: "*" matches any run, everything else itself, case ignored. */
export function globMatch(pattern: string | GlobPattern, text: string): boolean {
  const p = (typeof pattern === 'string' ? pattern : pattern.text).toLowerCase();
  const s = text.toLowerCase();
  let pi = 0;
  let si = 0;
  let star = -1;
  let mark = 0;
  while (si < s.length) {
    if (pi < p.length && p[pi] !== '*' && p[pi] === s[si]) {
      pi++;
      si++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = si;
    } else if (star >= 0) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

function parseIp(s: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    return normalizeIp(ipaddr.parse(s.replace(/^\[|\]$/g, '').replace(/%.*$/, '')));
  } catch {
    return undefined;
  }
}

function canonical(ip: string): string {
  return parseIp(ip)?.toString() ?? ip.toLowerCase();
}

/** The reversed labels of an address (the DNS-list and reverse-zone form, dns/dnsl.ts). */
function reverseLabels(a: ipaddr.IPv4 | ipaddr.IPv6): string {
  return reversedIp(a.toString()) ?? '';
}

function reverseZone(a: ipaddr.IPv4 | ipaddr.IPv6 | undefined, text: string): string {
  if (a === undefined) return text;
  return `${reverseLabels(a)}.${a.kind() === 'ipv4' ? 'in-addr.arpa' : 'ip6.arpa'}`;
}
