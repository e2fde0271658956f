/*
 * policy/zmailer/policydb-lookup.ts — looking things up in ZMailer's
 * smtp-policy database (config/zmailer/policydb.ts). Pure: no DNS.
 *
 *   domains   "foo.bar.edu", then ".foo.bar.edu", ".bar.edu", ".edu", "."
 *             — the first key found is the answer
 *   users     "user@domain", then "user@"
 *   addresses the network with the longest prefix containing the address
 *
 * The attributes of the key found are read left to right; "= _tag" reads
 * the tag's attributes at that point (up to 3 levels deep, as ZMailer);
 * the first value found for an attribute wins, so attributes written
 * before an alias override the alias's. A "message" belongs to the
 * attribute after it.
 */
import ipaddr from 'ipaddr.js';
import type { PolicyAttributeName, PolicyDb, PolicyEntry } from '../../config/zmailer/policydb.js';

export interface PolicyValue {
  readonly value: string;
  readonly message?: string;
}

/** The attributes found for one key, and where (for logs and the dry run). */
export interface PolicyHit {
  readonly key: string;
  readonly where: string;
  readonly attrs: ReadonlyMap<PolicyAttributeName, PolicyValue>;
}

const MAX_ALIAS_DEPTH = 3;

function resolve(db: PolicyDb, entry: PolicyEntry, out: Map<PolicyAttributeName, PolicyValue>, depth: number): void {
  for (const item of entry.items) {
    if (item.kind === 'alias') {
      const next = db.keys.get(item.tag);
      if (next !== undefined && depth < MAX_ALIAS_DEPTH) resolve(db, next, out, depth + 1);
      continue;
    }
    if (!out.has(item.name)) out.set(item.name, { value: item.value, ...(item.message !== undefined ? { message: item.message } : {}) });
  }
}

function hit(db: PolicyDb, entry: PolicyEntry): PolicyHit {
  const attrs = new Map<PolicyAttributeName, PolicyValue>();
  resolve(db, entry, attrs, 0);
  return { key: entry.key, where: entry.where, attrs };
}

/** A domain: the exact name, then the ".parent" keys up to ".". `implicit`: Postern's own domains count as listed. */
export function lookupDomain(db: PolicyDb, domain: string, implicit?: (d: string) => PolicyEntry | undefined): PolicyHit | undefined {
  const d = domain.toLowerCase().replace(/\.$/, '');
  if (d === '') return undefined;
  const exact = db.keys.get(d) ?? implicit?.(d);
  if (exact) return hit(db, exact);
  const labels = d.split('.');
  for (let i = 0; i < labels.length; i++) {
    const e = db.keys.get(`.${labels.slice(i).join('.')}`);
    if (e) return hit(db, e);
  }
  const root = db.keys.get('.');
  return root ? hit(db, root) : undefined;
}

/** An address: "user@domain", then "user@". */
export function lookupUser(db: PolicyDb, local: string, domain: string): PolicyHit | undefined {
  const l = local.toLowerCase();
  const e = db.keys.get(`${l}@${domain.toLowerCase()}`) ?? db.keys.get(`${l}@`);
  return e ? hit(db, e) : undefined;
}

/** An IP address: the longest matching network (IPv4-mapped IPv6 counts as IPv4). */
export function lookupIp(db: PolicyDb, ip: string): PolicyHit | undefined {
  if (!ipaddr.isValid(ip)) return undefined;
  let a = ipaddr.parse(ip);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  for (const n of db.nets) {
    if (n.net[0].kind() === a.kind() && a.match(n.net)) return hit(db, n.entry);
  }
  return undefined;
}

/** "+" ⇒ true, "-" ⇒ false, absent ⇒ undefined. */
export function flag(h: PolicyHit | undefined, name: PolicyAttributeName): boolean | undefined {
  const v = h?.attrs.get(name)?.value;
  return v === '+' ? true : v === '-' ? false : undefined;
}

/** The client is trusted: relaycustnet + or fulltrustnet + for its address (MSA mode's trusted networks). */
export function policyDbTrusts(db: PolicyDb, ip: string): boolean {
  const h = lookupIp(db, ip);
  return flag(h, 'relaycustnet') === true || flag(h, 'fulltrustnet') === true;
}

/** RBL zones of a test-dns-rbl-like value: "+" is ZMailer's default zone, else "zone:zone". */
export function rblZones(value: string | undefined): string[] {
  if (value === undefined || value === '-') return [];
  return value
    .split(':')
    .map((z) => (z === '+' ? 'rbl.maps.vix.com' : z.trim().toLowerCase()))
    .filter((z) => /^[a-z0-9.-]+$/.test(z) && z !== '');
}
