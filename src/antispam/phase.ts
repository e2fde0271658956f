/*
 * antispam/phase.ts — the checks at the door as one policy phase
 * (policy/policy.ts), added by policy/build.ts when smtpd.conf has any of
 * the antispam statements (config/parse-antispam.ts):
 *
 *   connect  rate-limit connections (421 4.7.0, closes); DNSBL/DNSWL score
 *            (refuse at the threshold with the configured code, 5.7.1,
 *            naming the lists; closes)
 *   HELO     check helo syntax / fcrdns / resolve
 *   MAIL     check sender-domain (4.1.8/5.1.8, answers cached 10 min); rhsbl on the
 *            sender domain (cached 5 min)
 *   RCPT     rate-limit recipients (450 4.7.1); greylisting (450 4.7.1)
 *   DATA     rate-limit messages (450 4.7.1)
 *
 * Local clients (this machine) skip everything; authenticated ones skip
 * the HELO, sender, RHSBL and greylisting checks; clients the DNS
 * allowlists score at or below the allowlist threshold skip greylisting.
 * A DNS failure never refuses: it is logged and the check passes.
 * Header checks run at the queue's door (queue/enqueue.ts) and in the
 * relay client (mta/encoder.ts), not here.
 */
import { join } from 'node:path';
import type { AntispamSettings, RateLimit, RefusalSpec } from '../config/antispam.js';
import type { DnslResolver } from '../dns/dnsl.js';
import { reversedIp } from '../dns/dnsl.js';
import { closing, reply, type Reply } from '../mail/reply.js';
import type { PolicyPhase, SessionFacts, TxFacts } from '../policy/policy.js';
import { PASS, type Verdict } from '../policy/verdict.js';
import { sessionMemos } from '../policy/session-memo.js';
import { DnsLists, type ListScore } from './dnsbl/lists.js';
import { Greylist } from './greylist/greylist.js';
import { FileGreylistStore } from './greylist/store-file.js';
import type { GreylistStore } from './greylist/store.js';
import { MemoryRateCounters, type RateCounters } from './ratelimit/counters.js';
import { expandVariables, mailVariables } from './variables.js';
import { checkHelo } from './verify/helo.js';
import { SenderDomainCache, type SenderDns } from './verify/sender.js';

export interface AntispamDeps {
  readonly settings: AntispamSettings;
  readonly dns: DnslResolver & SenderDns;
  readonly isLocalAddress: (ip: string) => boolean;
  /** The queue folder: the greylist file's default home. */
  readonly queuePath: string;
  readonly warn: (text: string) => void;
  readonly now?: () => number;
  /** Shared across configuration reloads (antispamPhase keeps one per process by default). */
  readonly counters?: RateCounters;
  readonly greylistStore?: GreylistStore;
  /** The dry run (smtpd -b): greylisting reads its file but changes nothing on disk. */
  readonly dryRun?: boolean;
}

/** Per session: the DNS list score, once. */
interface Memo {
  dnsbl?: Promise<ListScore | undefined>;
}

const sharedCounters = new MemoryRateCounters();
const sharedStores = new Map<string, GreylistStore>();

export function greylistStoreFor(path: string, warn: (t: string) => void): GreylistStore {
  let s = sharedStores.get(path);
  if (!s) {
    s = new FileGreylistStore(path, warn);
    sharedStores.set(path, s);
  }
  return s;
}

export function antispamPhase(d: AntispamDeps): PolicyPhase {
  const o = d.settings;
  const now = d.now ?? Date.now;
  const lists = new DnsLists(d.dns, now);
  const senders = new SenderDomainCache(d.dns, now);
  const counters = d.counters ?? sharedCounters;
  const greylistStore = (path: string): GreylistStore => d.greylistStore ?? (d.dryRun ? new FileGreylistStore(path, d.warn, true) : greylistStoreFor(path, d.warn));
  const greylist = o.greylist ? new Greylist(o.greylist, greylistStore(o.greylist.store ?? join(d.queuePath, 'greylist.json'))) : undefined;
  const memo = sessionMemos<Memo>(() => ({}));
  const local = (s: SessionFacts): boolean => s.fromSocket || d.isLocalAddress(s.clientAddress);

  const dnsblScore = (s: SessionFacts): Promise<ListScore | undefined> => {
    const m = memo(s.id);
    m.dnsbl ??= (async () => {
      const bl = o.dnsbl;
      const key = reversedIp(s.clientAddress);
      if (!bl || key === undefined) return undefined;
      const r = await lists.score(key, bl.sites, bl.timeoutMs);
      for (const f of r.failures) d.warn(`antispam: session ${s.id} address ${s.clientAddress}: dnsbl lookup failed (not counted): ${f}`);
      return r;
    })();
    return m.dnsbl;
  };

  const rate = (s: SessionFacts, tx: TxFacts | undefined, what: RateLimit['what']): Verdict => {
    for (const l of o.rateLimits ?? []) {
      if (l.what !== what) continue;
      const key = l.per === 'client' ? s.clientAddress : l.per === 'auth-user' ? s.authUser : tx?.sender?.domain;
      if (key === undefined || key === '') continue;
      const n = counters.hit(`${what}|${l.per}|${key}|${l.windowMs}|${l.max}`, l.windowMs, now(), l.max);
      if (n <= l.max) continue;
      const who = l.per === 'client' ? `[${key}]` : l.per === 'auth-user' ? `user ${key}` : `sender domain ${key}`;
      const text = `Error: too many ${what} from ${who}, try again later`;
      const r = l.code === 421 ? closing(reply(421, '4.7.0', text)) : reply(450, '4.7.1', text);
      return { kind: 'reject', reply: r, reason: `rate-limit ${what} ${l.max} per ${l.windowMs / 1000}s by ${l.per} (${l.pos.file}:${l.pos.line}): ${n} from ${who}`, ...(l.code === 421 ? { disconnect: true } : {}) };
    }
    return PASS;
  };

  const refusal = (spec: RefusalSpec, enhancedTail: string, defaultText: string, s: SessionFacts, tx: TxFacts | undefined, extra: Record<string, string>): Reply => {
    const text = expandVariables(spec.text ?? defaultText, mailVariables(s, tx, extra));
    return reply(spec.code, `${String(spec.code)[0]}.${enhancedTail}`, text);
  };

  return {
    name: 'antispam',
    async connect(s) {
      if (local(s)) return PASS;
      const r = rate(s, undefined, 'connections');
      if (r.kind === 'reject') return r;
      const bl = o.dnsbl;
      if (!bl) return PASS;
      const score = await dnsblScore(s);
      if (score === undefined || score.score < bl.threshold) return PASS;
      const names = score.listedBy.join(', ');
      const rep = refusal(bl.refusal, '7.1', 'Service unavailable; client [$CLIENT_ADDR] blocked using $DNSBL_LIST', s, undefined, { DNSBL_LIST: names });
      return { kind: 'reject', reply: closing(rep), reason: `dnsbl: score ${score.score} ≥ ${bl.threshold} (listed by ${names})`, disconnect: true };
    },
    async helo(s, helo) {
      const c = o.helo;
      if (!c || local(s)) return PASS;
      const r = await checkHelo(c, helo, s.clientAddress, s.rdns, d.dns);
      if (r.ok) {
        if (r.failure !== undefined) d.warn(`antispam: session ${s.id} address ${s.clientAddress}: helo check could not be made (passed): ${r.failure}`);
        return PASS;
      }
      const code = c[r.check]!;
      return { kind: 'reject', reply: reply(code, `${String(code)[0]}${r.enhanced.slice(1)}`, r.text), reason: `check helo ${r.check}: ${helo}` };
    },
    async mail(s, tx) {
      if (local(s) || s.authUser !== undefined) return PASS;
      const domain = tx.sender?.domain ?? '';
      if (domain === '' || domain.startsWith('[')) return PASS;
      if (o.senderDomain !== undefined) {
        const r = await senders.exists(domain);
        if (r.failure !== undefined) d.warn(`antispam: session ${s.id} address ${s.clientAddress}: sender domain check could not be made (passed): ${r.failure}`);
        if (!r.exists) {
          const code = o.senderDomain;
          return { kind: 'reject', reply: reply(code, code === 450 ? '4.1.8' : '5.1.8', `Sender address rejected: domain ${domain} not found`), reason: `check sender-domain: ${domain} has no MX, A or AAAA record` };
        }
      }
      if (o.rhsbl) {
        const r = await lists.score(domain, o.rhsbl.sites, o.dnsbl?.timeoutMs ?? 5000);
        for (const f of r.failures) d.warn(`antispam: session ${s.id} address ${s.clientAddress}: rhsbl lookup failed (not counted): ${f}`);
        if (r.listedBy.length > 0 && r.score > 0) {
          const names = r.listedBy.join(', ');
          return { kind: 'reject', reply: refusal(o.rhsbl.refusal, '7.1', 'Sender address rejected: $SENDER_DOMAIN is listed in $DNSBL_LIST', s, tx, { DNSBL_LIST: names }), reason: `rhsbl: ${domain} listed by ${names}` };
        }
      }
      return PASS;
    },
    async rcpt(s, tx, rcpt) {
      if (local(s)) return PASS;
      const r = rate(s, tx, 'recipients');
      if (r.kind === 'reject') return r;
      if (!greylist || s.authUser !== undefined) return PASS;
      const bl = o.dnsbl;
      if (bl) {
        const score = await dnsblScore(s);
        if (score !== undefined && score.score <= bl.allowlistThreshold) return PASS;
      }
      const sender = tx.sender ? `${tx.sender.local}@${tx.sender.domain}` : '';
      const to = `${rcpt.local}@${rcpt.domain}`;
      let g;
      try {
        g = await greylist.check(s.clientAddress, sender, to, now());
      } catch (e) {
        d.warn(`antispam: session ${s.id} address ${s.clientAddress}: greylist store failed (passed): ${(e as Error).message}`);
        return PASS;
      }
      if (g.kind === 'pass') return PASS;
      const wait = Math.ceil(g.waitMs / 1000);
      return { kind: 'reject', reply: reply(450, '4.7.1', `Greylisted, please try again in ${wait} seconds`), reason: `greylist: new triplet from ${s.clientAddress} <${sender}> → <${to}>, retry in ${wait} s` };
    },
    data(s, tx) {
      if (local(s)) return PASS;
      return rate(s, tx, 'messages');
    },
  };
}
