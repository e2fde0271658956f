/*
 * metrics/registry.ts — Postern's Prometheus metrics (prom-client), the
 * Probe the hot path calls, and the figures read only when scraped.
 *
 * Two kinds of figures:
 *   - counters and histograms bumped by the Probe methods as things happen
 *     (sessions, refusals, messages, deliveries, TLS, AUTH, policy, spool);
 *   - gauges computed at scrape time from a MetricsSource the daemon gives
 *     (queue size and age, active sessions, paused services, certificate
 *     expiry): nothing on the hot path pays for them.
 * Event-loop lag, heap and process figures are prom-client's default
 * metrics (nodejs_*, process_*).
 *
 * Label values that come from outside (domains, check names, listener
 * names) are bounded (top-n.ts): at most DOMAIN_LABELS destination domains,
 * the rest as "other". docs/monitoring.md lists every metric.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeliveryOutcome, Probe, Transport } from './probe.js';
import { BoundedLabels, cleanLabel } from './top-n.js';

/** Destination domains with a label of their own; the rest are "other". */
export const DOMAIN_LABELS = 50;

/** The commands refusals are counted by; any other verb is "other". */
const VERBS = new Set(['CONNECT', 'HELO', 'EHLO', 'MAIL', 'RCPT', 'DATA', 'BDAT', 'RSET', 'NOOP', 'QUIT', 'VRFY', 'EXPN', 'HELP', 'ETRN', 'AUTH', 'STARTTLS']);

export interface QueueFigures {
  readonly messages: number;
  readonly bytes: number;
  /** Envelopes by scheduler state (pending, inflight, held …). */
  readonly envelopes: Readonly<Record<string, number>>;
  /** Age of the oldest queued message, seconds; undefined when empty. */
  readonly oldestSeconds?: number;
}

/** What the registry reads when scraped; the daemon implements it. */
export interface MetricsSource {
  queue(): QueueFigures;
  activeSessions(): number;
  paused(): Readonly<Record<string, boolean>>;
  /** Certificates by pki name, with their expiry (ms since the epoch). */
  certificates(): readonly { readonly name: string; readonly notAfter: number }[];
}

/** A destination whose last attempt failed, for the dashboard. */
export interface FailingDestination {
  readonly domain: string;
  readonly failures: number;
  readonly lastError: string;
  readonly at: number;
}

export class Metrics implements Probe {
  readonly registry = new Registry();
  private readonly domains = new BoundedLabels(DOMAIN_LABELS);
  private readonly names = new BoundedLabels(200);
  private readonly failingByDomain = new Map<string, FailingDestination>();
  private source: MetricsSource | undefined;

  private readonly sessions = this.counter('postern_smtp_sessions_total', 'SMTP connections by listener and outcome (accepted, refused at a connection limit).', ['listener', 'outcome']);
  private readonly ends = this.counter('postern_smtp_session_ends_total', 'SMTP sessions ended, by reason (quit, timeout, disconnect, error, shutdown, refused, protocol).', ['reason']);
  private readonly refusals = this.counter('postern_smtp_refusals_total', 'Replies of 4xx/5xx by command, code class and enhanced status code.', ['command', 'class', 'enhanced']);
  private readonly messages = this.counter('postern_messages_received_total', 'Messages queued through the front door, by origin (smtp, local, bounce).', ['origin']);
  private readonly recipients = this.counter('postern_recipients_received_total', 'Envelope recipients queued, by origin.', ['origin']);
  private readonly bytes = this.counter('postern_received_bytes_total', 'Bytes of messages queued, by origin.', ['origin']);
  private readonly deliveries = this.counter('postern_deliveries_total', 'Recipient delivery attempts by transport (local, lmtp, relay) and outcome (delivered, deferred, bounced, expired).', ['transport', 'outcome']);
  private readonly destinations = this.counter('postern_destination_deliveries_total', `Delivery attempts by destination domain (the first ${DOMAIN_LABELS} domains seen, then "other") and outcome.`, ['domain', 'outcome']);
  private readonly queueTime = this.histogram('postern_delivery_queue_time_seconds', 'Time from arrival to the end of a delivery attempt, by transport and outcome.', ['transport', 'outcome'], [0.05, 0.25, 1, 5, 30, 60, 300, 900, 3600, 14400, 86400, 432000]);
  private readonly txTime = this.histogram('postern_delivery_transaction_seconds', 'Duration of one delivery task (one agent call, any number of recipients), by transport.', ['transport'], [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]);
  private readonly tlsVersions = this.counter('postern_smtp_tls_handshakes_total', 'Inbound TLS handshakes completed, by protocol version.', ['version']);
  private readonly auths = this.counter('postern_smtp_auth_total', 'AUTH attempts by mechanism and result (success, failure).', ['mechanism', 'result']);
  private readonly decisions = this.counter('postern_policy_decisions_total', 'Policy decisions by check, phase and decision.', ['check', 'phase', 'decision']);
  private readonly batch = this.histogram('postern_spool_commit_batch_size', 'Messages made durable by one journal fdatasync (group commit).', [], [1, 2, 4, 8, 16, 32, 64, 128, 256]);
  private readonly fsync = this.histogram('postern_spool_fsync_seconds', 'Duration of the journal fdatasync of one commit batch.', [], [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1]);

  constructor(opts: { readonly defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
      // Gauges named *_total, which `promtool check metrics` rejects; the per-type nodejs_active_* gauges stay.
      for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(n);
    }
    const self = this;
    const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge) => void): void => {
      new Gauge({ name, help, labelNames, registers: [this.registry], collect(this: Gauge) { if (self.source) collect(this); } });
    };
    gauge('postern_queue_messages', 'Messages in the queue.', [], (g) => g.set(this.src().queue().messages));
    gauge('postern_queue_bytes', 'Bytes of the messages in the queue.', [], (g) => g.set(this.src().queue().bytes));
    gauge('postern_queue_envelopes', 'Envelopes in the queue by scheduler state.', ['state'], (g) => {
      g.reset();
      for (const [state, n] of Object.entries(this.src().queue().envelopes)) g.set({ state }, n);
    });
    gauge('postern_queue_oldest_message_age_seconds', 'Age of the oldest message in the queue (0 when empty).', [], (g) => g.set(this.src().queue().oldestSeconds ?? 0));
    gauge('postern_smtp_sessions_active', 'SMTP sessions open now.', [], (g) => g.set(this.src().activeSessions()));
    gauge('postern_service_paused', 'Whether a service (smtp, mta, mda) is paused (1) or running (0).', ['service'], (g) => {
      for (const [service, p] of Object.entries(this.src().paused())) g.set({ service }, p ? 1 : 0);
    });
    gauge('postern_certificate_expiry_timestamp_seconds', 'When each configured certificate (by pki name) expires, seconds since the epoch.', ['pki'], (g) => {
      g.reset();
      for (const c of this.src().certificates()) g.set({ pki: cleanLabel(c.name) }, Math.floor(c.notAfter / 1000));
    });
  }

  /** Where the scrape-time gauges come from (set once the daemon runs). */
  setSource(s: MetricsSource): void {
    this.source = s;
  }

  /** The exposition text and its content type. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** A metric's current values (for the dashboard's live figures). */
  async values(name: string): Promise<readonly { labels: Record<string, string | number>; value: number }[]> {
    const m = this.registry.getSingleMetric(name);
    if (!m) return [];
    return (await m.get()).values.map((v) => ({ labels: { ...v.labels } as Record<string, string | number>, value: v.value }));
  }

  /** Destinations whose last attempt failed, most failures first. */
  failing(limit = 20): FailingDestination[] {
    return [...this.failingByDomain.values()].sort((a, b) => b.failures - a.failures || b.at - a.at).slice(0, limit);
  }

  /* ----------------------------------------------------------- Probe */

  session(listener: string, outcome: 'accepted' | 'refused'): void {
    this.sessions.inc({ listener: this.names.label(cleanLabel(listener)), outcome });
  }

  sessionEnd(reason: string): void {
    this.ends.inc({ reason: /^[a-z-]{1,20}$/.test(reason) ? reason : 'other' });
  }

  refusal(command: string, code: number, enhanced: string | undefined): void {
    const verb = command.replace(/^\((.*)\)$/, '$1').toUpperCase(); // "(connect)": the greeting
    const cls = code >= 500 ? '5xx' : '4xx';
    this.refusals.inc({ command: VERBS.has(verb) ? verb : 'other', class: cls, enhanced: enhanced !== undefined && /^[245]\.\d{1,3}\.\d{1,3}$/.test(enhanced) ? enhanced : 'none' });
  }

  received(origin: string, recipients: number, bytes: number): void {
    this.messages.inc({ origin });
    this.recipients.inc({ origin }, recipients);
    this.bytes.inc({ origin }, bytes);
  }

  delivery(transport: Transport, outcome: DeliveryOutcome, domain: string, queueSeconds: number, error?: string): void {
    this.deliveries.inc({ transport, outcome });
    const d = this.domains.label(cleanLabel(domain, 'none'));
    this.destinations.inc({ domain: d, outcome });
    this.queueTime.observe({ transport, outcome }, Math.max(0, queueSeconds));
    if (outcome === 'delivered') this.failingByDomain.delete(d);
    else if (outcome === 'deferred' || outcome === 'bounced') {
      const prev = this.failingByDomain.get(d);
      this.failingByDomain.set(d, { domain: d, failures: (prev?.failures ?? 0) + 1, lastError: (error ?? '').slice(0, 300), at: Date.now() });
    }
  }

  transaction(transport: Transport, seconds: number): void {
    this.txTime.observe({ transport }, seconds);
  }

  tls(version: string): void {
    this.tlsVersions.inc({ version: /^(TLSv1(\.[0-3])?|SSLv3)$/.test(version) ? version : 'other' });
  }

  auth(mechanism: string, ok: boolean): void {
    const m = mechanism.toUpperCase();
    this.auths.inc({ mechanism: /^(PLAIN|LOGIN|CRAM-MD5)$/.test(m) ? m : 'other', result: ok ? 'success' : 'failure' });
  }

  policy(check: string, phase: string, decision: 'reject' | 'accept' | 'hold' | 'discard'): void {
    this.decisions.inc({ check: this.names.label(cleanLabel(check)), phase, decision });
  }

  spoolBatch(size: number, fsyncSeconds: number): void {
    this.batch.observe(size);
    this.fsync.observe(fsyncSeconds);
  }

  /* ----------------------------------------------------------- helpers */

  private src(): MetricsSource {
    return this.source as MetricsSource;
  }

  private counter(name: string, help: string, labelNames: string[]): Counter {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private histogram(name: string, help: string, labelNames: string[], buckets: number[]): Histogram {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }
}
