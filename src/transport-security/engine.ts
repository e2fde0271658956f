/*
 * transport-security/engine.ts — TransportSecurity, the one object the
 * relay agent asks (mta/agent.ts, one hook): for a destination and each of
 * its targets, which TLS to use, what the certificate must satisfy, and
 * whether a failure defers the mail; then it records each session's
 * outcome for TLS-RPT.
 *
 * Which policy applies to an MX host, first match wins:
 *   1. the `mta tls-policy` table entry of the domain (policy-table.ts);
 *      `dane`/`dane-only` go on to 2.
 *   2. DANE (RFC 7672; `mta dane resolver … trusted`): usable TLSA
 *      records → authenticated TLS required; only unusable ones → TLS
 *      required, unauthenticated; a failed TLSA lookup → this host is
 *      skipped now (4.7.5 if none is left); no secure TLSA → 3. DANE comes
 *      before MTA-STS (RFC 8461 §2).
 *   3. MTA-STS (RFC 8461; `mta mta-sts`): `enforce` → only MX hosts that
 *      match the policy, TLS required, certificate verified against the
 *      MX name; `testing` → opportunistic, the same checks only reported.
 *   4. the action's own `tls` setting (opportunistic by default).
 * Smarthosts (`relay host`) take only 1, looked up by their host name —
 * and 2 when that entry says `dane` or `dane-only`, as Postfix does for a
 * non-MX nexthop (`relayhost = [host]`, RFC 7672 §2.2.1 and §3.2.2): the
 * smarthost's address records must be DNSSEC-secure, TLSA is looked up at
 * _PORT._tcp.HOST for its own port, and the certificate must name the
 * host. A smarthost given as an IP address has no DNS and so no DANE
 * (`dane` is then opportunistic TLS, `dane-only` defers). No MTA-STS for
 * smarthosts: RFC 8461 policies are per recipient domain and its MX hosts.
 *
 * A failure under an enforcing policy is 4.7.x with a detail naming the
 * policy, and a log line `mta tls-policy … result=failed`.
 */
import { isIP } from 'node:net';
import { checkPeer, type PeerTls, type Requirement } from './check.js';
import { daneState, type DaneState } from './dane.js';
import type { DnssecClient } from './dnssec-client.js';
import { mxAllowed, type StsPolicy } from './mta-sts-policy.js';
import type { StsAnswer, StsResolver } from './mta-sts.js';
import { lookupPolicy, type PolicyLookup, type TableAnswer, type TablePolicy } from './policy-table.js';
import { tlsaText } from './tlsa.js';
import type { AppliedPolicy, TlsRptResultType, TlsRptStore } from './tlsrpt-store.js';

export interface TargetRef {
  readonly host: string;
  readonly address: string;
  readonly port: number;
}

export interface Verdict4 {
  readonly status: 'tempfail';
  readonly enhanced: string;
  readonly detail: string;
}

/** How to talk to one target. */
export interface TargetPlan {
  /** undefined: leave the action's own tls setting. */
  readonly tls?: 'none' | 'opportunistic' | 'required';
  /** Check after the handshake; a string fails the session (enforcing policies only). */
  readonly check?: (peer: PeerTls) => string | undefined;
  /** Not usable now (MX not in the MTA-STS policy, DANE lookup failed): the reason, as a verdict. */
  readonly skip?: Verdict4;
  /** Name of the policy, for logs ("mta-sts enforce", "dane", "table verify (example.org)"). */
  readonly policy: string;
  /** The session opened (all checks passed): count it for TLS-RPT; `encrypted` false when it went in clear (MTA-STS testing). */
  ok(sendingIp?: string, encrypted?: boolean): void;
  /** The session failed: count it, if it failed for a TLS reason. */
  failed(enhanced: string, detail: string, sendingIp?: string): void;
}

export interface DestinationPlan {
  forTarget(t: TargetRef): Promise<TargetPlan>;
}

export interface TransportLog {
  event(subsystem: string, event: string, fields: Record<string, string | number | undefined>): void;
}

export interface TransportSecurityOptions {
  readonly log: TransportLog;
  /** Lookup in the `mta tls-policy` table (undefined: no table). */
  readonly table?: (key: string) => TableAnswer;
  readonly sts?: StsResolver;
  readonly dane?: DnssecClient;
  readonly report?: TlsRptStore;
}

const PASSTHROUGH = { ok: () => undefined, failed: () => undefined };

export class TransportSecurity {
  constructor(private readonly o: TransportSecurityOptions) {}

  /** The plan for one destination: a smarthost by name, or the MX hosts of `domain`. */
  async plan(domain: string, smarthost: string | undefined): Promise<DestinationPlan | { readonly fail: Verdict4 }> {
    const key = smarthost ?? domain;
    const found: PolicyLookup = this.o.table !== undefined ? lookupPolicy(this.o.table, key) : { kind: 'none' };
    if (found.kind === 'error') {
      this.o.log.event('mta', 'tls-policy', { domain: key, policy: 'table', result: 'failed', reason: found.reason });
      return { fail: { status: 'tempfail', enhanced: '4.7.5', detail: `TLS policy table lookup for ${key} failed: ${found.reason}` } };
    }
    const table = found.kind === 'policy' ? found.policy : undefined;
    if (smarthost !== undefined) return { forTarget: (t) => this.smarthostPlan(table, t, key) };
    if (table !== undefined && table.level !== 'dane' && table.level !== 'dane-only') return { forTarget: async (t) => this.fixed(table, t, domain) };

    // MTA-STS once per destination, DANE per MX host.
    let sts: StsAnswer | undefined;
    const stsOnce = async (): Promise<StsAnswer> => {
      if (sts !== undefined) return sts;
      sts = this.o.sts !== undefined ? await this.o.sts.policyFor(domain) : { kind: 'none', reason: 'MTA-STS not enabled' };
      if (sts.kind === 'none' && sts.problem !== undefined) {
        this.o.log.event('mta', 'tls-policy', { domain, policy: 'mta-sts', result: 'unavailable', reason: sts.problem.detail });
        this.o.report?.record({ domain, policy: { type: 'no-policy-found', strings: [], mxHost: [] }, failure: { resultType: sts.problem.type, additional: sts.problem.detail.slice(0, 200) } });
      }
      return sts;
    };
    const useDane = this.o.dane !== undefined && (table === undefined || table.level === 'dane' || table.level === 'dane-only');
    return {
      forTarget: async (t) => {
        if (useDane) {
          const d = await daneState(this.o.dane as DnssecClient, t.host, t.port, t.address.includes(':') ? 'AAAA' : 'A');
          const p = this.danePlan(d, domain, t, table);
          if (p !== undefined) return p;
        } else if (table?.level === 'dane-only') {
          return this.skip(domain, t, 'dane-only', 'DANE is required but no trusted DNSSEC resolver is configured (mta dane resolver … trusted)');
        }
        const s = await stsOnce();
        if (s.kind === 'policy' && s.policy.mode !== 'none') return this.stsPlan(s.policy, domain, t);
        return { policy: 'none', ...this.counter(domain, { type: 'no-policy-found', strings: [], mxHost: [] }, t) };
      },
    };
  }

  /** A smarthost: its table entry; with `dane`/`dane-only` and a trusted resolver, its own TLSA records first. */
  private async smarthostPlan(table: TablePolicy | undefined, t: TargetRef, key: string): Promise<TargetPlan> {
    const wantsDane = table !== undefined && (table.level === 'dane' || table.level === 'dane-only');
    if (wantsDane && this.o.dane !== undefined && isIP(t.host) === 0) {
      const d = await daneState(this.o.dane, t.host, t.port, t.address.includes(':') ? 'AAAA' : 'A');
      const p = this.danePlan(d, key, t, table);
      if (p !== undefined) return p;
    }
    return this.fixed(table, t, key);
  }

  private fixed(p: TablePolicy | undefined, t: TargetRef, dest: string): TargetPlan {
    if (p === undefined) return { policy: 'default', ...PASSTHROUGH };
    const name = `table ${p.level} (${p.key})`;
    switch (p.level) {
      case 'none':
        return { tls: 'none', policy: name, ...PASSTHROUGH };
      case 'may':
      case 'dane':
        return { tls: 'opportunistic', policy: name, ...PASSTHROUGH };
      case 'encrypt':
        return { tls: 'required', policy: name, check: () => undefined, ...PASSTHROUGH };
      case 'dane-only':
        return { tls: 'required', policy: name, skip: { status: 'tempfail', enhanced: '4.7.5', detail: `TLS policy ${name}: DANE is not available for ${t.host}` }, ...PASSTHROUGH };
      case 'verify':
      case 'secure': {
        const names = p.match.length > 0 ? p.match : p.level === 'verify' ? [t.host] : [dest, `.${dest}`];
        return { tls: 'required', policy: name, check: this.enforcer(name, dest, t, { kind: 'webpki', names }), ...PASSTHROUGH };
      }
    }
  }

  private danePlan(d: DaneState, domain: string, t: TargetRef, table: TablePolicy | undefined): TargetPlan | undefined {
    const only = table?.level === 'dane-only';
    const applied = (records: readonly { usage: number; selector: number; matchingType: number; data: Buffer }[]): AppliedPolicy => ({ type: 'tlsa', strings: records.map(tlsaText), mxHost: [t.host] });
    switch (d.kind) {
      case 'usable': {
        const counter = this.counter(domain, applied(d.records), t);
        const req: Requirement = { kind: 'dane', records: d.records, names: [t.host, domain] };
        return { tls: 'required', policy: 'dane', check: this.enforcer('dane', domain, t, req, counter), ...counter };
      }
      case 'unusable': {
        this.o.log.event('mta', 'tls-policy', { domain, host: t.host, policy: 'dane', result: 'unusable', reason: d.reason });
        // RFC 8460 §4.3.2.1: reported as tlsa-invalid, though the mail goes (encrypted, unauthenticated).
        const counter = this.counter(domain, applied(d.records), t);
        return { tls: 'required', policy: 'dane (unusable TLSA: encrypt only)', check: () => void counter.mark('tlsa-invalid', d.reason), ...counter };
      }
      case 'error': {
        this.o.report?.record({ domain, policy: { type: 'tlsa', strings: [], mxHost: [t.host] }, failure: { resultType: 'dnssec-invalid', receivingMx: t.host, receivingIp: t.address, additional: d.reason.slice(0, 200) } });
        return this.skip(domain, t, 'dane', `TLSA lookup failed: ${d.reason}`);
      }
      case 'none':
        if (only) {
          this.o.report?.record({ domain, policy: { type: 'tlsa', strings: [], mxHost: [t.host] }, failure: { resultType: 'dane-required', receivingMx: t.host, receivingIp: t.address, additional: d.reason.slice(0, 200) } });
          return this.skip(domain, t, 'dane-only', d.reason);
        }
        return undefined;
    }
  }

  private stsPlan(p: StsPolicy, domain: string, t: TargetRef): TargetPlan {
    const name = `mta-sts ${p.mode}`;
    const applied: AppliedPolicy = { type: 'sts', strings: p.text.split('\n').filter((l) => l.trim() !== ''), mxHost: [...p.mx] };
    const counter = this.counter(domain, applied, t);
    const req: Requirement = { kind: 'webpki', names: [t.host] };
    if (!mxAllowed(p, t.host)) {
      if (p.mode === 'enforce') {
        counter.failed('4.7.5', 'MX host does not match the policy', undefined, 'validation-failure');
        return this.skip(domain, t, name, `MX host ${t.host} is not among the policy's mx patterns (${p.mx.join(', ')})`);
      }
      this.o.log.event('mta', 'tls-policy', { domain, host: t.host, policy: name, result: 'report-only', reason: `MX host ${t.host} is not among the policy's mx patterns` });
    }
    if (p.mode === 'enforce') return { tls: 'required', policy: name, check: this.enforcer(name, domain, t, req, counter), ...counter };
    // testing: opportunistic, checks reported but never fatal.
    return {
      tls: 'opportunistic',
      policy: name,
      check: (peer) => {
        const f = checkPeer(req, peer);
        if (f !== undefined) {
          counter.mark(f.type, f.detail);
          this.o.log.event('mta', 'tls-policy', { domain, host: t.host, policy: name, result: 'report-only', reason: f.detail });
        }
        return undefined;
      },
      ...counter,
    };
  }

  /** A check that fails the session, saying which policy and why. */
  private enforcer(name: string, domain: string, t: TargetRef, req: Requirement, counter?: ReturnType<TransportSecurity['counter']>): (peer: PeerTls) => string | undefined {
    return (peer) => {
      const f = checkPeer(req, peer);
      if (f === undefined) return undefined;
      counter?.mark(f.type, f.detail);
      const detail = `TLS policy ${name} for ${domain}: ${t.host}[${t.address}]: ${f.detail}`;
      this.o.log.event('mta', 'tls-policy', { domain, host: t.host, address: t.address, policy: name, result: 'failed', reason: f.detail });
      return detail;
    };
  }

  private skip(domain: string, t: TargetRef, name: string, why: string): TargetPlan {
    this.o.log.event('mta', 'tls-policy', { domain, host: t.host, address: t.address, policy: name, result: 'failed', reason: why });
    return { policy: name, skip: { status: 'tempfail', enhanced: '4.7.5', detail: `TLS policy ${name} for ${domain}: ${t.host}: ${why}` }, ...PASSTHROUGH };
  }

  /** TLS-RPT counting for one target's sessions under one applied policy. */
  private counter(domain: string, policy: AppliedPolicy, t: TargetRef) {
    const report = this.o.report;
    let marked: { type: TlsRptResultType; detail: string } | undefined;
    const failure = (type: TlsRptResultType, detail: string, sendingIp?: string) => ({
      resultType: type,
      receivingMx: t.host,
      receivingIp: t.address,
      ...(sendingIp !== undefined ? { sendingIp } : {}),
      additional: detail.slice(0, 200),
    });
    return {
      mark(type: TlsRptResultType, detail: string): void {
        marked = { type, detail };
      },
      ok(sendingIp?: string, encrypted = true): void {
        // testing mode: a marked failure is still a failure in the report, and so is a session without TLS under a policy.
        if (!encrypted && policy.type !== 'no-policy-found' && marked === undefined) marked = { type: 'starttls-not-supported', detail: 'the server did not offer STARTTLS' };
        report?.record({ domain, policy, ...(marked !== undefined ? { failure: failure(marked.type, marked.detail, sendingIp) } : {}) });
        marked = undefined;
      },
      failed(enhanced: string, detail: string, sendingIp?: string, type?: TlsRptResultType): void {
        const kind: TlsRptResultType | undefined = type ?? marked?.type ?? (enhanced === '4.7.4' ? 'starttls-not-supported' : enhanced === '4.7.5' && /TLS handshake/.test(detail) ? 'validation-failure' : undefined);
        marked = undefined;
        if (kind !== undefined) report?.record({ domain, policy, failure: failure(kind, detail, sendingIp) });
      },
    };
  }
}
