/*
 * control/stats-view.ts — what `show stats` and `monitor` report, computed
 * in the daemon from the Stats counters and the queue runner. Pure: the
 * clock and the queue are passed in.
 *
 * `show stats` prints the counters under OpenSMTPD's names (smtp.session,
 * smtp.session.inet4, smtp.tls, scheduler.envelope,
 * scheduler.delivery.ok|tempfail|permfail|loop, mta.session, mda.envelope,
 * queue.bounce …), every one of STANDARD_KEYS even when still 0 so scripts
 * always find them, plus:
 *
 *   uptime, uptime.human      seconds since start, and as "1d2h3m4s"
 *   smtp.message.rate         messages received per second over the last minute (SMTP and sendmail)
 *   queue.message             messages in the queue
 *   queue.envelope            envelopes waiting (not yet delivered or failed)
 *   queue.size                bytes of the queued messages
 *   queue.oldest, queue.oldest.human   age of the oldest queued message
 *   OPENSMTPD_KEYS            OpenSMTPD's names (mta.sessions, parent.uptime, queue.inserts.remote,
 *                             smtp.sessions …) for the same figures
 *
 * `monitor` (OpenSMTPD's control.c digest): cumulative counters the client
 * turns into per-second differences. Envelopes enqueued are derived by
 * conservation — everything enqueued is either still queued or was
 * dequeued (delivered, failed, expired, removed) — and never go down.
 */
import type { EnvelopeView } from '../scheduler/types.js';

/** Counters always shown by `show stats`, 0 when nothing happened yet. */
export const STANDARD_KEYS: readonly string[] = [
  'mda.envelope',
  'mta.envelope',
  'mta.session',
  'queue.bounce',
  'scheduler.delivery.loop',
  'scheduler.delivery.ok',
  'scheduler.delivery.permfail',
  'scheduler.delivery.tempfail',
  'scheduler.envelope',
  'scheduler.envelope.expired',
  'scheduler.envelope.inflight',
  'scheduler.envelope.removed',
  'smtp.message',
  'smtp.message.bytes',
  'smtp.message.local',
  'smtp.session',
  'smtp.session.inet4',
  'smtp.session.inet6',
  'smtp.tls',
];

/**
 * OpenSMTPD's own key names (its `smtpctl show stats`, seed 002), printed beside
 * Postern's where Postern has the same figure, for scripts written for OpenSMTPD.
 */
export const OPENSMTPD_KEYS: Readonly<Record<string, string>> = {
  'mta.sessions': 'mta.session',
  'mta.sessions.active': 'mta.session.active',
  'parent.uptime': 'uptime',
  'queue.inserts.local': 'smtp.message.local',
  'queue.inserts.remote': 'smtp.message',
  'runner.active': 'scheduler.envelope.inflight',
  'smtp.errors.linetoolong': 'smtp.errors.linetoolong',
  'smtp.errors.toofast': 'smtp.errors.toofast',
  'smtp.sessions': 'smtp.session',
  'smtp.sessions.active': 'smtp.session.active',
  'smtp.sessions.timeout': 'smtp.session.timeout',
  'smtp.sessions.smtps': 'smtp.smtps',
  'smtp.sessions.starttls': 'smtp.tls.starttls',
};

/** OpenSMTPD's duration_to_text: "0s", "42s", "3m7s", "1h12s", "2d4h". Zero units are left out. */
export function durationText(seconds: number): string {
  let t = Math.trunc(seconds);
  if (t === 0) return '0s';
  let out = '';
  if (t < 0) {
    out = '-';
    t = -t;
  }
  const s = t % 60;
  t = Math.floor(t / 60);
  const m = t % 60;
  t = Math.floor(t / 60);
  const h = t % 24;
  const d = Math.floor(t / 24);
  if (d) out += `${d}d`;
  if (h) out += `${h}h`;
  if (m) out += `${m}m`;
  if (s) out += `${s}s`;
  return out;
}

/**
 * Rate of a growing counter over a sliding window: sample() it (about once
 * a second), rate() gives units per second over the last `windowMs` (or
 * over what has been seen, when less).
 */
export class RateMeter {
  private readonly samples: { t: number; v: number }[] = [];

  constructor(private readonly windowMs = 60_000) {}

  sample(t: number, v: number): void {
    this.samples.push({ t, v });
    // Keep one sample at or before the window's start, to measure the whole window.
    while (this.samples.length > 2 && (this.samples[1] as { t: number }).t <= t - this.windowMs) this.samples.shift();
  }

  rate(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (first === undefined || last === undefined || last.t <= first.t) return 0;
    return Math.max(0, last.v - first.v) / ((last.t - first.t) / 1000);
  }
}

export interface QueueSummary {
  readonly messages: number;
  /** Envelopes not yet final. */
  readonly envelopes: number;
  readonly bytes: number;
  /** Arrival of the oldest queued message, ms since the epoch. */
  readonly oldest?: number;
}

/** What is still queued: envelopes not delivered or failed, and their messages. */
export function summarize(views: Iterable<EnvelopeView>, sizeOf: (msgid: string) => number): QueueSummary {
  const msgids = new Set<string>();
  let envelopes = 0;
  let oldest: number | undefined;
  for (const v of views) {
    if (v.state === 'delivered' || v.state === 'failed') continue;
    envelopes++;
    msgids.add(v.msgid);
    if (oldest === undefined || v.ctime < oldest) oldest = v.ctime;
  }
  let bytes = 0;
  for (const m of msgids) bytes += sizeOf(m);
  return { messages: msgids.size, envelopes, bytes, ...(oldest !== undefined ? { oldest } : {}) };
}

export interface StatsInput {
  readonly counters: Readonly<Record<string, number>>;
  readonly now: number;
  /** Daemon start, ms since the epoch. */
  readonly startedAt: number;
  readonly queue: QueueSummary;
  /** Messages per second over the last minute. */
  readonly messageRate: number;
}

export type StatsView = Record<string, number | string>;

/** `show stats`: every counter, the standard ones, and the derived values; keys sorted. */
export function buildStats(i: StatsInput): StatsView {
  const all: StatsView = {};
  for (const k of STANDARD_KEYS) all[k] = 0;
  for (const [k, v] of Object.entries(i.counters)) all[k] = v;
  const up = Math.max(0, Math.floor((i.now - i.startedAt) / 1000));
  all['uptime'] = up;
  all['uptime.human'] = durationText(up);
  all['smtp.message.rate'] = Math.round(i.messageRate * 100) / 100;
  all['queue.message'] = i.queue.messages;
  all['queue.envelope'] = i.queue.envelopes;
  all['queue.size'] = i.queue.bytes;
  const age = i.queue.oldest === undefined ? 0 : Math.max(0, Math.floor((i.now - i.queue.oldest) / 1000));
  all['queue.oldest'] = age;
  all['queue.oldest.human'] = durationText(age);
  for (const [theirs, ours] of Object.entries(OPENSMTPD_KEYS)) all[theirs] ??= all[ours] ?? 0;
  const sorted: StatsView = {};
  for (const k of Object.keys(all).sort()) sorted[k] = all[k] as number | string;
  return sorted;
}

/** Cumulative counters for `monitor` (one per second; the client prints differences). */
export interface Digest {
  /** SMTP sessions now. */
  readonly clients: number;
  readonly connected: number;
  readonly disconnected: number;
  /** Envelopes queued now. */
  readonly envelopes: number;
  readonly enqueued: number;
  readonly dequeued: number;
  readonly ok: number;
  readonly tempfail: number;
  readonly permfail: number;
  readonly loop: number;
  readonly expired: number;
  readonly removed: number;
  readonly bounced: number;
}

export const DIGEST_KEYS: readonly (keyof Digest)[] = ['clients', 'connected', 'disconnected', 'envelopes', 'enqueued', 'dequeued', 'ok', 'tempfail', 'permfail', 'loop', 'expired', 'removed', 'bounced'];

/** Builds digests; remembers the enqueued count so that it never goes down. */
export class DigestMaker {
  private enqueued = 0;

  make(counters: Readonly<Record<string, number>>, sessions: number, queuedEnvelopes: number): Digest {
    const c = (k: string): number => counters[k] ?? 0;
    const ok = c('scheduler.delivery.ok');
    const permfail = c('scheduler.delivery.permfail');
    const loop = c('scheduler.delivery.loop');
    const expired = c('scheduler.envelope.expired');
    const removed = c('scheduler.envelope.removed');
    const dequeued = ok + permfail + loop + expired + removed;
    this.enqueued = Math.max(this.enqueued, queuedEnvelopes + dequeued);
    const connected = c('smtp.session');
    return {
      clients: sessions,
      connected,
      disconnected: Math.max(0, connected - sessions),
      envelopes: queuedEnvelopes,
      enqueued: this.enqueued,
      dequeued,
      ok,
      tempfail: c('scheduler.delivery.tempfail'),
      permfail,
      loop,
      expired,
      removed,
      bounced: c('queue.bounce'),
    };
  }
}

/** Is `v` a Digest (as a client reads it off the wire)? */
export function isDigest(v: unknown): v is Digest {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return DIGEST_KEYS.every((k) => typeof o[k] === 'number');
}
