/*
 * http/live.ts — what the dashboard shows, as one JSON snapshot: traffic
 * counters (the page turns two snapshots into rates), refusals by reason,
 * the queue by state and destination, failing destinations with their last
 * error, certificate expiry, and the process's health. Made from the same
 * control handlers smtpctl uses (`show status`, `show stats`, `show
 * queue`) and the metrics registry; at most once per interval whatever
 * the number of watchers (server.ts shares it).
 */
import type { QueueEntry } from '../control/queue-view.js';
import type { ControlServer } from '../control/server.js';
import type { Metrics } from '../metrics/registry.js';
import type { CertExpiry } from './certs.js';

export interface LiveDeps {
  readonly control: Pick<ControlServer, 'execute' | 'live'>;
  readonly metrics: Metrics;
  certificates(): readonly CertExpiry[];
}

const top = <T>(m: Map<string, number>, n: number, f: (k: string, v: number) => T): T[] =>
  [...m.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, n).map(([k, v]) => f(k, v));

export async function snapshot(d: LiveDeps, now = Date.now()): Promise<Record<string, unknown>> {
  const [status, stats, entries] = await Promise.all([d.control.execute('show status', {}), d.control.execute('show stats', {}), d.control.execute('show queue', {})]);
  const s = stats as Record<string, number | string>;
  const n = (k: string): number => (typeof s[k] === 'number' ? (s[k] as number) : 0);
  const byState = new Map<string, number>();
  const byDomain = new Map<string, number>();
  let oldest: number | undefined;
  const msgids = new Set<string>();
  for (const e of entries as QueueEntry[]) {
    byState.set(e.state, (byState.get(e.state) ?? 0) + 1);
    const at = e.rcpt.lastIndexOf('@');
    const dom = at < 0 ? '(local)' : e.rcpt.slice(at + 1).toLowerCase();
    byDomain.set(dom, (byDomain.get(dom) ?? 0) + 1);
    msgids.add(e.msgid);
    if (oldest === undefined || e.ctime < oldest) oldest = e.ctime;
  }
  const refusals = new Map<string, number>();
  for (const v of await d.metrics.values('postern_smtp_refusals_total')) {
    const key = `${String(v.labels['command'])} ${String(v.labels['enhanced']) === 'none' ? String(v.labels['class']) : String(v.labels['enhanced'])}`;
    refusals.set(key, (refusals.get(key) ?? 0) + v.value);
  }
  const lag = (await d.metrics.values('nodejs_eventloop_lag_p99_seconds'))[0]?.value ?? 0;
  const mem = process.memoryUsage();
  const live = d.control.live();
  return {
    t: now,
    status,
    traffic: {
      received: n('smtp.message') + n('smtp.message.local'),
      delivered: n('scheduler.delivery.ok'),
      deferred: n('scheduler.delivery.tempfail'),
      bounced: n('scheduler.delivery.permfail'),
      expired: n('scheduler.envelope.expired'),
      sessions: n('smtp.session'),
      refused: n('smtp.session.refused'),
      rate: Math.round(live.messageRate * 100) / 100,
    },
    refusals: top(refusals, 10, (reason, count) => ({ reason, count })),
    queue: {
      envelopes: (entries as QueueEntry[]).length,
      messages: msgids.size,
      oldestSeconds: oldest === undefined ? null : Math.max(0, Math.round(now / 1000 - oldest)),
      byState: Object.fromEntries(byState),
      byDomain: top(byDomain, 10, (domain, count) => ({ domain, count })),
    },
    failing: d.metrics.failing(10),
    certificates: d.certificates().map((c) => ({ name: c.name, subject: c.subject, notAfter: c.notAfter, days: Math.floor((c.notAfter - now) / 86_400_000) })),
    health: {
      uptime: n('uptime'),
      pid: process.pid,
      node: process.version,
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
      eventLoopLagMs: Math.round(lag * 10_000) / 10,
      sessions: live.digest.clients,
    },
  };
}
