/*
 * test/e2e/tls-rpt-daemon.test.ts — the running daemon sends TLS-RPT
 * reports by mail through its own queue: smtpd starts with `mta
 * tls-report` and yesterday's counts in QUEUE/tlsrpt.json, looks up the
 * destination's `_smtp._tls` record (nsd on loopback), queues the report
 * by the front door, and relays it to the rua's domain — Postfix's
 * smtp-sink receives a multipart/report whose gzipped JSON is yesterday's
 * counts. Addresses 127.0.15.0/24.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { basicConfig, startDaemon, tempDir, type DaemonHandle } from '../helpers/daemon.js';
import { startNsd, type NsdHandle } from '../helpers/nsd.js';
import { freePort, startSmtpSink, type Sink } from '../helpers/mta-peers.js';

const A = { dns: '127.0.15.56', sink: '127.0.15.31' };
let dns: NsdHandle;
let sink: Sink;
let d: DaemonHandle;

before(async () => {
  dns = await startNsd({ address: A.dns, zones: { 'rpt2.test': ['_smtp._tls.dest TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.rpt2.test"'] } });
  const port = await freePort([A.sink]);
  sink = await startSmtpSink(A.sink, port);
  const dir = tempDir();
  const config = basicConfig(`resolver "${dns.server}"
mta tls-report from "tlsrpt@mx.test.example" organization "Postern e2e"
action "reports" relay host smtp://${A.sink}:${port}
match from any for domain "reports.rpt2.test" action "reports"`);
  // A first start makes the spool; the counts are put in it while the daemon is stopped (as a restart would find them).
  const first = await startDaemon(config, { dir, deliver: true });
  await first.stop();
  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  const counts = {
    [yesterday]: {
      'dest.rpt2.test': {
        k: { policy: { type: 'sts', strings: ['version: STSv1', 'mode: enforce', 'mx: mx.dest.rpt2.test', 'max_age: 86400'], mxHost: ['mx.dest.rpt2.test'] }, success: 7, failure: 1, failures: [{ resultType: 'certificate-host-mismatch', receivingMx: 'mx.dest.rpt2.test', receivingIp: '192.0.2.9', count: 1 }] },
      },
    },
  };
  writeFileSync(join(dir, 'spool', 'tlsrpt.json'), JSON.stringify(counts));
  d = await startDaemon(config, { dir, deliver: true });
});

after(async () => {
  await d?.stop();
  d?.cleanup();
  await Promise.all([dns?.close(), sink?.close()]);
});

test('the daemon mails yesterday\'s report to the rua through its own queue', async () => {
  await d.waitForLog(/tls-report domain=dest\.rpt2\.test day=\S+ rua="mailto:tlsrpt@reports\.rpt2\.test" result=sent/, 15_000);
  await d.waitForLog(/mta delivery .*to=<tlsrpt@reports\.rpt2\.test> .*result=Ok/, 15_000);
  const m = sink.messages().at(-1) ?? '';
  assert.match(m, /^TLS-Report-Domain: dest\.rpt2\.test$/m);
  assert.match(m, /^Content-Type: multipart\/report; report-type="tlsrpt"/m);
  const att = /Content-Type: application\/tlsrpt\+gzip\r?\nContent-Transfer-Encoding: base64\r?\nContent-Disposition: attachment; filename="mx\.test\.example!dest\.rpt2\.test![^"]+\.json\.gz"\r?\n\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n--/.exec(m);
  assert.ok(att, m.slice(0, 2000));
  const report = JSON.parse(gunzipSync(Buffer.from((att[1] ?? '').replace(/\r?\n/g, ''), 'base64')).toString('utf8')) as { 'organization-name': string; policies: { summary: unknown; 'failure-details': { 'result-type': string }[] }[] };
  assert.equal(report['organization-name'], 'Postern e2e');
  assert.deepEqual(report.policies[0]?.summary, { 'total-successful-session-count': 7, 'total-failure-session-count': 1 });
  assert.equal(report.policies[0]?.['failure-details'][0]?.['result-type'], 'certificate-host-mismatch');
});
