/*
 * antispam/dnsbl/lists.ts — a client's (or sender domain's) score over the
 * configured DNS lists, as postscreen computes it: every site is asked at
 * once (dns/dnsl.ts), each site whose answer matches its filter adds its
 * weight. Answers are cached (positive and negative, CACHE_MS); a lookup
 * that fails or does not answer within the timeout counts 0 and is
 * reported in `failures` — a DNS failure is never a reason to refuse.
 */
import { answerMatches, type DnsListSite } from '../../config/antispam.js';
import { dnslQuery, type DnslResolver } from '../../dns/dnsl.js';

const CACHE_MS = 5 * 60_000;
const CACHE_MAX = 100_000;

export interface ListScore {
  readonly score: number;
  /** The sites that listed the key (zone names, in configuration order). */
  readonly listedBy: readonly string[];
  /** Sites whose lookup failed or timed out. */
  readonly failures: readonly string[];
}

export class DnsLists {
  private readonly cache = new Map<string, { readonly answers: readonly string[]; readonly until: number }>();

  constructor(
    private readonly dns: DnslResolver,
    private readonly now: () => number = Date.now,
  ) {}

  /** Score KEY (a reversed address or a domain) over SITES. */
  async score(key: string, sites: readonly DnsListSite[], timeoutMs: number): Promise<ListScore> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((res) => {
      timer = setTimeout(() => res('timeout'), timeoutMs);
      timer.unref();
    });
    const results = await Promise.all(sites.map((site) => Promise.race([this.answers(key, site.zone), timeout]).catch((e: unknown) => e as Error)));
    clearTimeout(timer);
    let score = 0;
    const listedBy: string[] = [];
    const failures: string[] = [];
    sites.forEach((site, i) => {
      const r = results[i];
      if (r === 'timeout') failures.push(`${site.zone}: no answer within ${timeoutMs} ms`);
      else if (r instanceof Error) failures.push(r.message);
      else if (r !== undefined && r.some((a) => answerMatches(site, a))) {
        score += site.weight;
        listedBy.push(site.zone);
      }
    });
    return { score, listedBy, failures };
  }

  private async answers(key: string, zone: string): Promise<readonly string[]> {
    const name = `${key}.${zone}`;
    const hit = this.cache.get(name);
    if (hit && hit.until > this.now()) return hit.answers;
    const answers = await dnslQuery(this.dns, key, zone);
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(name, { answers, until: this.now() + CACHE_MS });
    return answers;
  }
}
