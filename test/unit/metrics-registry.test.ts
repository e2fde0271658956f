/*
 * The metrics registry (metrics/registry.ts): what the Probe's calls and
 * the scrape-time source come to in the Prometheus text, label values kept
 * bounded and clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DOMAIN_LABELS, Metrics } from '../../src/metrics/registry.js';
import { NOOP_PROBE } from '../../src/metrics/probe.js';
import { Stats } from '../../src/stats.js';

function line(text: string, prefix: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(prefix));
}

test('probe calls become counters and histograms with their labels', async () => {
  const m = new Metrics({ defaultMetrics: false });
  m.session('127.0.0.1:25', 'accepted');
  m.session('127.0.0.1:25', 'accepted');
  m.session('127.0.0.1:25', 'refused');
  m.refusal('rcpt', 550, '5.7.1');
  m.refusal('(connect)', 554, '5.7.1');
  m.sessionEnd('timeout');
  m.refusal('X"BAD', 421, undefined);
  m.received('smtp', 2, 100);
  m.delivery('relay', 'deferred', 'Example.ORG', 30, '421 4.4.2 try later');
  m.delivery('relay', 'delivered', 'example.org', 90);
  m.transaction('relay', 0.2);
  m.tls('TLSv1.3');
  m.tls('weird');
  m.auth('plain', true);
  m.auth('cram-md5', false);
  m.policy('dnsbl', 'connect', 'reject');
  m.spoolBatch(3, 0.0004);
  const { body, contentType } = await m.text();
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  assert.equal(line(body, 'postern_smtp_sessions_total{listener="127.0.0.1:25",outcome="accepted"}'), 'postern_smtp_sessions_total{listener="127.0.0.1:25",outcome="accepted"} 2');
  assert.ok(line(body, 'postern_smtp_refusals_total{command="RCPT",class="5xx",enhanced="5.7.1"} 1'));
  assert.ok(line(body, 'postern_smtp_refusals_total{command="other",class="4xx",enhanced="none"} 1'), 'an unknown verb is "other"');
  assert.ok(line(body, 'postern_smtp_refusals_total{command="CONNECT",class="5xx",enhanced="5.7.1"} 1'), 'a refused greeting');
  assert.ok(line(body, 'postern_smtp_session_ends_total{reason="timeout"} 1'));
  assert.ok(line(body, 'postern_recipients_received_total{origin="smtp"} 2'));
  assert.ok(line(body, 'postern_received_bytes_total{origin="smtp"} 100'));
  assert.ok(line(body, 'postern_deliveries_total{transport="relay",outcome="deferred"} 1'));
  assert.ok(line(body, 'postern_destination_deliveries_total{domain="example.org",outcome="delivered"} 1'), 'domains are lower-cased');
  assert.ok(line(body, 'postern_delivery_queue_time_seconds_bucket{le="60",transport="relay",outcome="deferred"} 1'));
  assert.ok(line(body, 'postern_delivery_queue_time_seconds_bucket{le="60",transport="relay",outcome="delivered"} 0'));
  assert.ok(line(body, 'postern_delivery_transaction_seconds_count{transport="relay"} 1'));
  assert.ok(line(body, 'postern_smtp_tls_handshakes_total{version="other"} 1'));
  assert.ok(line(body, 'postern_smtp_auth_total{mechanism="CRAM-MD5",result="failure"} 1'));
  assert.ok(line(body, 'postern_policy_decisions_total{check="dnsbl",phase="connect",decision="reject"} 1'));
  assert.ok(line(body, 'postern_spool_commit_batch_size_bucket{le="4"} 1'));
  assert.ok(line(body, 'postern_spool_fsync_seconds_bucket{le="0.0005"} 1'));
  // A failure is remembered until the next success.
  assert.deepEqual(m.failing(), []);
  m.delivery('relay', 'deferred', 'down.example', 5, '421 4.4.1 connection refused');
  assert.deepEqual(m.failing().map((f) => [f.domain, f.failures, f.lastError]), [['down.example', 1, '421 4.4.1 connection refused']]);
});

test('destination domains are bounded: the first N, then "other"', async () => {
  const m = new Metrics({ defaultMetrics: false });
  for (let i = 0; i < DOMAIN_LABELS + 25; i++) m.delivery('relay', 'delivered', `d${i}.example`, 1);
  const body = (await m.text()).body;
  const series = body.split('\n').filter((l) => l.startsWith('postern_destination_deliveries_total{'));
  assert.equal(series.length, DOMAIN_LABELS + 1);
  assert.ok(line(body, 'postern_destination_deliveries_total{domain="other",outcome="delivered"} 25'));
});

test('scrape-time gauges come from the source', async () => {
  const m = new Metrics({ defaultMetrics: false });
  m.setSource({
    queue: () => ({ messages: 2, bytes: 2048, envelopes: { pending: 3, held: 1 }, oldestSeconds: 42 }),
    activeSessions: () => 5,
    paused: () => ({ smtp: false, mta: true, mda: false }),
    certificates: () => [{ name: 'mx', notAfter: Date.UTC(2030, 0, 1) }],
  });
  const body = (await m.text()).body;
  for (const l of [
    'postern_queue_messages 2',
    'postern_queue_bytes 2048',
    'postern_queue_envelopes{state="pending"} 3',
    'postern_queue_envelopes{state="held"} 1',
    'postern_queue_oldest_message_age_seconds 42',
    'postern_smtp_sessions_active 5',
    'postern_service_paused{service="mta"} 1',
    `postern_certificate_expiry_timestamp_seconds{pki="mx"} ${Date.UTC(2030, 0, 1) / 1000}`,
  ]) assert.ok(line(body, l), `${l} in\n${body}`);
});

test('default metrics include event-loop lag and heap, without *_total gauges', async () => {
  const body = (await new Metrics().text()).body;
  assert.match(body, /^nodejs_eventloop_lag_p99_seconds /m);
  assert.match(body, /^nodejs_heap_size_used_bytes /m);
  assert.doesNotMatch(body, /^nodejs_active_handles_total/m);
});

test('Stats carries a no-op probe until the daemon sets one', () => {
  assert.equal(new Stats().probe, NOOP_PROBE);
});
