/*
 * /metrics from the real daemon: real mail is sent over SMTP (accepted and
 * refused), then the scrape shows it, and `promtool check metrics` (the
 * Prometheus project's own linter) accepts the text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { RawClient, dialogue } from '../helpers/smtp-client.js';
import { ADMIN, READER, call, sendMail, startHttpDaemon } from './http-helpers.js';

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no ${series} in:\n${text}`);
  return Number(line.slice(series.length + 1));
}

test('/metrics counts real mail and passes promtool check metrics', async () => {
  const { d, base } = await startHttpDaemon();
  try {
    for (let i = 0; i < 3; i++) assert.match(await sendMail(d.port), /^250 /);
    // A refused recipient (no such user) is counted by command and enhanced code.
    const c = await RawClient.open(d.port);
    await dialogue(c, 'S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@client.example>\nS: 250\nC: RCPT TO:<nosuchuser@test.example>\nS: 550\nC: QUIT\nS: 221');
    c.close();

    const r = await call(base, '/metrics', READER);
    assert.equal(r.status, 200);
    const t = r.body;
    assert.equal(value(t, 'postern_messages_received_total{origin="smtp"}'), 3);
    assert.equal(value(t, 'postern_recipients_received_total{origin="smtp"}'), 3);
    assert.ok(value(t, 'postern_received_bytes_total{origin="smtp"}') > 0);
    assert.ok(value(t, 'postern_smtp_sessions_total{listener="127.0.0.1:0",outcome="accepted"}') >= 4);
    assert.ok(value(t, 'postern_smtp_session_ends_total{reason="quit"}') >= 1);
    assert.equal(value(t, 'postern_smtp_refusals_total{command="RCPT",class="5xx",enhanced="5.1.1"}'), 1);
    assert.equal(value(t, 'postern_policy_decisions_total{check="smtpd.conf",phase="rcpt",decision="accept"}'), 3);
    assert.equal(value(t, 'postern_queue_messages'), 3, 'deliveries are paused: all three wait');
    assert.equal(value(t, 'postern_queue_envelopes{state="pending"}') + (t.includes('state="held"') ? 0 : 0), 3);
    assert.ok(value(t, 'postern_queue_oldest_message_age_seconds') >= 0);
    assert.ok(value(t, 'postern_spool_commit_batch_size_count') >= 1, 'the spool reported its batches');
    assert.ok(value(t, 'postern_spool_fsync_seconds_count') >= 1);
    assert.equal(value(t, 'postern_service_paused{service="mta"}'), 1);
    assert.match(t, /^nodejs_eventloop_lag_seconds /m);
    assert.match(t, /^nodejs_heap_size_used_bytes /m);

    const check = spawnSync('promtool', ['check', 'metrics'], { input: t, encoding: 'utf8' });
    assert.equal(check.error, undefined, 'promtool must be installed (Debian package prometheus)');
    assert.equal(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);

    // Without a token: 401 (tokens are configured); with the admin one: 200 too.
    assert.equal((await call(base, '/metrics')).status, 401);
    assert.equal((await call(base, '/metrics', ADMIN)).status, 200);
  } finally {
    await d.stop();
    d.cleanup();
  }
});

test('deliveries are counted by transport, outcome and destination domain', async () => {
  const { d, base } = await startHttpDaemon('', { deliver: true });
  try {
    assert.match(await sendMail(d.port, 'root@test.example'), /^250 /);
    const deadline = Date.now() + 10_000;
    let t = '';
    while (Date.now() < deadline) {
      t = (await call(base, '/metrics', READER)).body;
      if (/postern_deliveries_total\{transport="local",outcome="(delivered|deferred|bounced)"\} [1-9]/.test(t)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(t, /postern_deliveries_total\{transport="local",outcome="(delivered|deferred|bounced)"\} 1/);
    assert.match(t, /postern_destination_deliveries_total\{domain="test\.example",outcome="(delivered|deferred|bounced)"\} 1/);
    assert.match(t, /postern_delivery_queue_time_seconds_count\{transport="local",outcome="\w+"\} 1/);
    assert.match(t, /postern_delivery_transaction_seconds_count\{transport="local"\} 1/);
  } finally {
    await d.stop();
    d.cleanup();
  }
});
