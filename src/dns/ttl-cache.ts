/*
 * dns/ttl-cache.ts — DNS answers kept as long as their TTL says, for the
 * lookups made while mail is received: SPF, DKIM, DMARC and ARC
 * (mailauth/dns.ts) and the sender domain's MX (policy/null-mx.ts). A real
 * MTA gets this from a caching resolver (Postfix) or keeps its own
 * (OpenDKIM's query cache); Node's resolver gives no TTL for TXT or MX, so
 * the questions go out through dns/packet-client.ts to the configured
 * servers (`resolver "IP[:PORT]"`, else the system's), in turn, twice.
 *
 * Bounds: a positive answer is kept its smallest TTL, clamped to
 * [floorS, ceilingS]; "no such name" (NXDOMAIN → ENOTFOUND) and "no such
 * record" (NODATA → ENODATA) are kept by the SOA of the authority section
 * (RFC 2308 §5: min(SOA TTL, SOA MINIMUM)) clamped to [floorS,
 * negativeCeilingS], or negativeS without an SOA; at most maxEntries
 * answers (the oldest go first). A failure (timeout, SERVFAIL, REFUSED, a
 * malformed answer) is never kept: it rejects with Node's code (ETIMEOUT,
 * ESERVFAIL …), so that the checks report a temporary error. Concurrent
 * identical questions share one query.
 *
 * Records come back shaped as node:dns/promises gives them (TXT: string[][]
 * in latin1 as c-ares does, MX: { exchange, priority } with '' for the null
 * MX, A/AAAA/PTR/NS/CNAME: strings), so callers need not know.
 */
import { getServers } from 'node:dns';
import type * as packet from 'dns-packet';
import type { ResolverOptions } from '../config/model.js';
import { parseServer, queryServer, type PacketAnswer } from './packet-client.js';

export interface TtlBounds {
  readonly floorS: number;
  readonly ceilingS: number;
  readonly negativeS: number;
  readonly negativeCeilingS: number;
  readonly maxEntries: number;
}

export const DEFAULT_TTL_BOUNDS: TtlBounds = { floorS: 5, ceilingS: 3600, negativeS: 60, negativeCeilingS: 900, maxEntries: 10_000 };

/** One question to the servers; a value, never a throw. */
export type Ask = (name: string, type: packet.RecordType) => Promise<PacketAnswer>;

type Entry = { readonly records: unknown[]; readonly expires: number } | { readonly code: string; readonly message: string; readonly expires: number };

const RCODE_ERRORS: Readonly<Record<string, string>> = { SERVFAIL: 'ESERVFAIL', REFUSED: 'EREFUSED', NOTIMP: 'ENOTIMP', FORMERR: 'EFORMERR' };

export class TtlCache {
  private readonly cache = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<unknown[]>>();
  private readonly bounds: TtlBounds;

  constructor(
    private readonly ask: Ask,
    bounds: Partial<TtlBounds> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.bounds = { ...DEFAULT_TTL_BOUNDS, ...bounds };
  }

  get size(): number {
    return this.cache.size;
  }

  /** (name, rrtype) → records, or a rejection with a Node DNS error code: node:dns/promises' resolve(). */
  resolve(name: string, rrtype: string): Promise<unknown[]> {
    const key = `${rrtype} ${name.toLowerCase()}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      if (hit.expires > this.now()) return 'records' in hit ? Promise.resolve(hit.records) : Promise.reject(dnsError(hit.code, hit.message));
      this.cache.delete(key);
    }
    let p = this.pending.get(key);
    if (p === undefined) {
      p = this.lookup(key, name, rrtype as packet.RecordType).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  /**
   * The answer kept for (name, rrtype) while it is fresh: the same object
   * until it expires or is replaced, so that a result computed from it
   * (mailauth/answer-memo.ts) can tell whether it still stands.
   */
  entry(name: string, rrtype: string): object | undefined {
    const hit = this.cache.get(`${rrtype} ${name.toLowerCase()}`);
    return hit !== undefined && hit.expires > this.now() ? hit : undefined;
  }

  resolveMx(name: string): Promise<{ exchange: string; priority: number }[]> {
    return this.resolve(name, 'MX') as Promise<{ exchange: string; priority: number }[]>;
  }

  resolve4(name: string): Promise<string[]> {
    return this.resolve(name, 'A') as Promise<string[]>;
  }

  resolve6(name: string): Promise<string[]> {
    return this.resolve(name, 'AAAA') as Promise<string[]>;
  }

  resolveTxt(name: string): Promise<string[][]> {
    return this.resolve(name, 'TXT') as Promise<string[][]>;
  }

  private async lookup(key: string, name: string, type: packet.RecordType): Promise<unknown[]> {
    const r = await this.ask(name, type);
    if (r.kind === 'error') throw dnsError(errorCode(r.reason), `query${type} ${r.reason}`);
    const failure = RCODE_ERRORS[r.rcode] ?? (r.rcode === 'NOERROR' || r.rcode === 'NXDOMAIN' ? undefined : 'ESERVFAIL');
    if (failure !== undefined) throw dnsError(failure, `query${type} ${failure} ${name}`);
    const { floorS, ceilingS, negativeS, negativeCeilingS } = this.bounds;
    const matching = r.answers.filter((a) => a.type === type);
    if (r.rcode === 'NOERROR' && matching.length > 0) {
      const ttl = Math.min(...r.answers.map((a) => (a as { ttl?: number }).ttl ?? 0));
      const records = matching.map((a) => nodeShape(a));
      this.put(key, { records, expires: this.now() + clamp(ttl, floorS, ceilingS) * 1000 });
      return records;
    }
    const code = r.rcode === 'NXDOMAIN' ? 'ENOTFOUND' : 'ENODATA';
    const soa = r.authorities.find((a): a is packet.SoaAnswer => a.type === 'SOA');
    const ttl = soa === undefined ? negativeS : clamp(Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0), floorS, negativeCeilingS);
    const message = `query${type} ${code} ${name}`;
    this.put(key, { code, message, expires: this.now() + ttl * 1000 });
    throw dnsError(code, message);
  }

  private put(key: string, e: Entry): void {
    this.cache.delete(key);
    while (this.cache.size >= this.bounds.maxEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
    this.cache.set(key, e);
  }
}

/** The configured servers (else the system's), each asked in turn, the list twice (as Node's resolver with tries: 2); SERVFAIL or REFUSED moves on to the next. */
export function askServers(opts: ResolverOptions): Ask {
  const servers = (opts.servers.length > 0 ? opts.servers : getServers()).map(parseServer);
  return async (name, type) => {
    let last: PacketAnswer = { kind: 'error', reason: 'no DNS server configured' };
    for (let attempt = 0; attempt < 2; attempt++) {
      for (const s of servers) {
        last = await queryServer(s, opts.timeoutMs, name, type, false);
        if (last.kind === 'answer' && last.rcode !== 'SERVFAIL' && last.rcode !== 'REFUSED') return last;
      }
    }
    return last;
  };
}

/** Node's code for a query that got no usable answer. */
function errorCode(reason: string): string {
  if (/no answer/.test(reason)) return 'ETIMEOUT';
  if (/bad name/.test(reason)) return 'EBADNAME';
  if (/malformed|another question/.test(reason)) return 'EBADRESP';
  return 'ECONNREFUSED';
}

function clamp(ttl: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, ttl));
}

function nodeShape(a: packet.Answer): unknown {
  switch (a.type) {
    case 'MX':
      return { exchange: a.data.exchange === '.' ? '' : a.data.exchange, priority: a.data.preference };
    case 'TXT': {
      const parts = Array.isArray(a.data) ? a.data : [a.data];
      return parts.map((b) => (typeof b === 'string' ? b : b.toString('latin1')));
    }
    default:
      return (a as { data: unknown }).data;
  }
}

/** A Node-style DNS error; without a stack trace (its capture was most of a cached negative answer's cost, and nothing reads it). */
function dnsError(code: string, message: string): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const e = new Error(message) as NodeJS.ErrnoException;
  Error.stackTraceLimit = limit;
  e.code = code;
  return e;
}
