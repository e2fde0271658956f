/*
 * transport-security/tlsrpt-store.ts — the counts TLS-RPT (RFC 8460)
 * reports: per UTC day, per policy domain and policy applied (sts, tlsa,
 * no-policy-found), the sessions that succeeded and, grouped by result
 * type and peer, those that failed (§4.3).
 *
 * Kept in memory and written to one JSON file (temporary file and rename)
 * at most once a second after a change, so a restart loses at most the
 * last second's counts. A file that does not parse starts an empty store
 * (the daily report is best effort; mail is never held for it).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

/** §4.3 result types. */
export type TlsRptResultType =
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | 'tlsa-invalid'
  | 'dnssec-invalid'
  | 'dane-required'
  | 'sts-policy-fetch-error'
  | 'sts-policy-invalid'
  | 'sts-webpki-invalid';

export interface AppliedPolicy {
  readonly type: 'sts' | 'tlsa' | 'no-policy-found';
  /** The policy's text: the MTA-STS file's lines, or the TLSA records. */
  readonly strings: readonly string[];
  /** MTA-STS: the mx patterns; DANE: the MX host the records are for. */
  readonly mxHost: readonly string[];
}

export interface FailureDetail {
  readonly resultType: TlsRptResultType;
  readonly sendingIp?: string;
  readonly receivingMx?: string;
  readonly receivingIp?: string;
  readonly additional?: string;
  count: number;
}

export interface PolicyCounts {
  readonly policy: AppliedPolicy;
  success: number;
  failure: number;
  readonly failures: FailureDetail[];
}

/** day "YYYY-MM-DD" → policy domain → policy key → counts. */
type Days = Record<string, Record<string, Record<string, PolicyCounts>>>;

export interface SessionResult {
  readonly domain: string;
  readonly policy: AppliedPolicy;
  readonly failure?: Omit<FailureDetail, 'count'>;
}

/** Destination domains counted per day at most. */
export const MAX_DOMAINS = 100_000;

export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** A day's counts for a domain and policy, made on first use. */
function counts(day: Record<string, Record<string, PolicyCounts>>, domain: string, policy: AppliedPolicy): PolicyCounts {
  const dom = (day[domain] ??= {});
  const key = JSON.stringify([policy.type, policy.strings, policy.mxHost]);
  return (dom[key] ??= { policy, success: 0, failure: 0, failures: [] });
}

/** Count a failure with its details (bounded: 1,000 kinds per policy). */
function addFailure(c: PolicyCounts, f: FailureDetail): void {
  const same = c.failures.find((x) => x.resultType === f.resultType && x.sendingIp === f.sendingIp && x.receivingMx === f.receivingMx && x.receivingIp === f.receivingIp);
  if (same !== undefined) same.count += f.count;
  else if (c.failures.length < 1000) c.failures.push(f);
}

export class TlsRptStore {
  private days: Days = {};
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly file?: string,
    private readonly now: () => number = Date.now,
  ) {
    if (file === undefined) return;
    try {
      const d = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      if (typeof d === 'object' && d !== null && !Array.isArray(d)) this.days = d as Days;
    } catch {
      /* none yet, or unreadable: start empty */
    }
  }

  /** One session (or one attempt that could not become one) under a policy. */
  record(r: SessionResult): void {
    const day = (this.days[dayOf(this.now())] ??= {});
    // Bounded: past MAX_DOMAINS destination domains in a day, new ones are not counted (the report is best effort).
    if (day[r.domain] === undefined && Object.keys(day).length >= MAX_DOMAINS) return;
    const c = counts(day, r.domain, r.policy);
    if (r.failure === undefined) c.success++;
    else {
      c.failure++;
      addFailure(c, { ...r.failure, count: 1 });
    }
    this.schedule();
  }

  /** Add counts of a day and domain made elsewhere (another node's: tlsrpt-pg.ts): summed per policy and failure kind. */
  merge(day: string, domain: string, list: readonly PolicyCounts[]): void {
    const d = (this.days[day] ??= {});
    for (const x of list) {
      const c = counts(d, domain, x.policy);
      c.success += x.success;
      c.failure += x.failure;
      for (const f of x.failures) addFailure(c, { ...f });
    }
    this.schedule();
  }

  /** Days before today that have counts. */
  finishedDays(): string[] {
    const today = dayOf(this.now());
    return Object.keys(this.days).filter((d) => d < today).sort();
  }

  /** The counts of one day: policy domain → counts per policy. */
  day(day: string): ReadonlyMap<string, readonly PolicyCounts[]> {
    return new Map(Object.entries(this.days[day] ?? {}).map(([dom, byKey]) => [dom, Object.values(byKey)]));
  }

  /** A domain's counts of a day are reported (or given up on). */
  forget(day: string, domain: string): void {
    const d = this.days[day];
    if (d === undefined) return;
    delete d[domain];
    if (Object.keys(d).length === 0) delete this.days[day];
    this.schedule();
  }

  /** Write now (shutdown). */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.file === undefined) return;
    try {
      const tmp = `${this.file}.tmp`;
      writeFileSync(tmp, JSON.stringify(this.days), { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch {
      /* best effort: the counts stay in memory */
    }
  }

  private schedule(): void {
    if (this.file === undefined || this.timer !== undefined) return;
    this.timer = setTimeout(() => this.flush(), 1000);
    this.timer.unref();
  }
}
