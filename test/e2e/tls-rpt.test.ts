/*
 * test/e2e/tls-rpt.test.ts — TLS-RPT (RFC 8460) reports: counts recorded
 * on one day are sent the next, to the rua the domain publishes in its
 * `_smtp._tls` TXT record (real DNS: nsd on loopback): https: as a POST of
 * application/tlsrpt+gzip to a real HTTPS server with the test CA's
 * certificate, mailto: as a multipart/report mail. Each report is
 * gunzipped and checked field by field against the JSON schema of RFC
 * 8460 §4.4 (types, required members, the result-type enumeration, the
 * date-range format) and the mail against §5.3 (headers, media types,
 * the file name of §5.1). A domain without a record is forgotten, a rua
 * that cannot be reached is kept for the next run. Addresses 127.0.15.0/24.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { startNsd, type NsdHandle } from '../helpers/nsd.js';
import { makeCa } from '../helpers/certs.js';
import { signedCert, startPolicyServer, type PolicyServer } from '../helpers/tls-policy-peers.js';
import { Resolver } from '../../src/dns/resolver.js';
import { TlsRptStore } from '../../src/transport-security/tlsrpt-store.js';
import { sendReports } from '../../src/transport-security/tlsrpt-send.js';

const A = { dns: '127.0.15.55', https: '127.0.15.81' };
const DAY = 86_400_000;
let dir: string;
let dns: NsdHandle;
let web: PolicyServer;
let caPem: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-tlsrpt-'));
  const ca = makeCa(dir, 'rpt-ca');
  caPem = readFileSync(ca.cert, 'utf8');
  web = await startPolicyServer(A.https, signedCert(dir, 'reports.rpt.test', ca));
  dns = await startNsd({
    address: A.dns,
    zones: {
      'rpt.test': [
        `reports A ${A.https}`,
        `_smtp._tls.both TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.rpt.test,https://reports.rpt.test:${web.port}/v1/tlsrpt"`,
        '_smtp._tls.norua TXT "v=TLSRPTv1; rua=ftp://nowhere"',
        `_smtp._tls.down TXT "v=TLSRPTv1; rua=https://reports.rpt.test:1/closed"`,
      ],
    },
  });
});

after(async () => {
  await Promise.all([dns?.close(), web?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

const RESULT_TYPES = ['starttls-not-supported', 'certificate-host-mismatch', 'certificate-expired', 'certificate-not-trusted', 'validation-failure', 'tlsa-invalid', 'dnssec-invalid', 'dane-required', 'sts-policy-fetch-error', 'sts-policy-invalid', 'sts-webpki-invalid'];
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** RFC 8460 §4.4, member by member. */
function checkSchema(r: Record<string, unknown>, day: string): void {
  assert.deepEqual(Object.keys(r).sort(), ['contact-info', 'date-range', 'organization-name', 'policies', 'report-id']);
  assert.equal(typeof r['organization-name'], 'string');
  assert.equal(typeof r['contact-info'], 'string');
  assert.equal(typeof r['report-id'], 'string');
  const range = r['date-range'] as Record<string, string>;
  assert.match(range['start-datetime'] ?? '', DATETIME);
  assert.match(range['end-datetime'] ?? '', DATETIME);
  assert.equal(range['start-datetime'], `${day}T00:00:00Z`);
  assert.equal(range['end-datetime'], `${day}T23:59:59Z`);
  assert.ok(Array.isArray(r.policies));
  for (const p of r.policies as Record<string, unknown>[]) {
    const pol = p.policy as Record<string, unknown>;
    assert.ok(['tlsa', 'sts', 'no-policy-found'].includes(pol['policy-type'] as string));
    assert.equal(typeof pol['policy-domain'], 'string');
    if (pol['policy-string'] !== undefined) assert.ok((pol['policy-string'] as unknown[]).every((s) => typeof s === 'string'));
    if (pol['mx-host'] !== undefined) assert.ok((pol['mx-host'] as unknown[]).every((s) => typeof s === 'string'));
    const sum = p.summary as Record<string, unknown>;
    assert.ok(Number.isInteger(sum['total-successful-session-count']));
    assert.ok(Number.isInteger(sum['total-failure-session-count']));
    for (const f of (p['failure-details'] ?? []) as Record<string, unknown>[]) {
      assert.ok(RESULT_TYPES.includes(f['result-type'] as string), String(f['result-type']));
      assert.ok(Number.isInteger(f['failed-session-count']));
      for (const k of ['sending-mta-ip', 'receiving-mx-hostname', 'receiving-ip', 'additional-information']) if (f[k] !== undefined) assert.equal(typeof f[k], 'string', k);
    }
  }
}

function storeWithYesterday(now: number) {
  let clock = now - DAY;
  const store = new TlsRptStore(join(dir, `counts-${Math.random()}.json`), () => clock);
  const sts = { type: 'sts' as const, strings: ['version: STSv1', 'mode: enforce', 'mx: mx1.both.rpt.test', 'max_age: 86400'], mxHost: ['mx1.both.rpt.test'] };
  for (let i = 0; i < 3; i++) store.record({ domain: 'both.rpt.test', policy: sts });
  store.record({ domain: 'both.rpt.test', policy: sts, failure: { resultType: 'certificate-expired', receivingMx: 'mx1.both.rpt.test', receivingIp: '192.0.2.1', sendingIp: '198.51.100.7', additional: 'expired' } });
  store.record({ domain: 'both.rpt.test', policy: sts, failure: { resultType: 'certificate-expired', receivingMx: 'mx1.both.rpt.test', receivingIp: '192.0.2.1', sendingIp: '198.51.100.7' } });
  store.record({ domain: 'both.rpt.test', policy: { type: 'no-policy-found', strings: [], mxHost: [] }, failure: { resultType: 'sts-policy-invalid' } });
  store.record({ domain: 'none.rpt.test', policy: { type: 'no-policy-found', strings: [], mxHost: [] } });
  store.record({ domain: 'norua.rpt.test', policy: { type: 'no-policy-found', strings: [], mxHost: [] } });
  store.record({ domain: 'down.rpt.test', policy: { type: 'no-policy-found', strings: [], mxHost: [] } });
  clock = now;
  return store;
}

test('yesterday\'s counts go to the published rua: https POST and mailto, each a valid RFC 8460 report', async () => {
  const now = Date.parse('2026-12-07T12:00:00Z');
  const day = '2026-12-06';
  const store = storeWithYesterday(now);
  const resolver = new Resolver({ servers: [dns.server], timeoutMs: 1000 });
  const mails: { to: string; bytes: Buffer }[] = [];
  const logs: string[] = [];
  await sendReports({
    store,
    dns: resolver.raw,
    organization: 'Postern Test',
    contact: 'postmaster@mail.postern.test',
    submitter: 'mail.postern.test',
    from: 'tlsrpt@mail.postern.test',
    mail: async (to, bytes) => void mails.push({ to, bytes }),
    log: (l) => logs.push(l),
    httpsCa: [caPem],
    resolve: (h) => resolver.raw.resolve4(h),
    timeoutMs: 3000,
    now: () => now,
  });

  // https:
  const post = web.posts.find((p) => p.path === '/v1/tlsrpt');
  assert.ok(post, logs.join('\n'));
  assert.equal(post.type, 'application/tlsrpt+gzip');
  const json = JSON.parse(gunzipSync(post.body).toString('utf8')) as Record<string, unknown>;
  checkSchema(json, day);
  assert.equal(json['organization-name'], 'Postern Test');
  assert.equal(json['contact-info'], 'postmaster@mail.postern.test');
  const policies = json.policies as Record<string, any>[];
  const sts = policies.find((p) => p.policy['policy-type'] === 'sts');
  assert.deepEqual(sts?.policy, { 'policy-type': 'sts', 'policy-string': ['version: STSv1', 'mode: enforce', 'mx: mx1.both.rpt.test', 'max_age: 86400'], 'policy-domain': 'both.rpt.test', 'mx-host': ['mx1.both.rpt.test'] });
  assert.deepEqual(sts?.summary, { 'total-successful-session-count': 3, 'total-failure-session-count': 2 });
  assert.deepEqual(sts?.['failure-details'], [
    { 'result-type': 'certificate-expired', 'sending-mta-ip': '198.51.100.7', 'receiving-mx-hostname': 'mx1.both.rpt.test', 'receiving-ip': '192.0.2.1', 'failed-session-count': 2, 'additional-information': 'expired' },
  ]);
  const nopol = policies.find((p) => p.policy['policy-type'] === 'no-policy-found');
  assert.deepEqual(nopol?.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': 1 });
  assert.equal(nopol?.['failure-details'][0]['result-type'], 'sts-policy-invalid');

  // mailto:
  assert.equal(mails.length, 1);
  const m = mails[0] as { to: string; bytes: Buffer };
  assert.equal(m.to, 'tlsrpt@reports.rpt.test');
  const text = m.bytes.toString('ascii');
  const [head, ...rest] = text.split('\r\n\r\n');
  assert.match(head ?? '', /^Subject: Report Domain: both\.rpt\.test Submitter: mail\.postern\.test Report-ID: <[^>]+>$/m);
  assert.match(head ?? '', /^TLS-Report-Domain: both\.rpt\.test$/m);
  assert.match(head ?? '', /^TLS-Report-Submitter: mail\.postern\.test$/m);
  assert.match(head ?? '', /^Content-Type: multipart\/report; report-type="tlsrpt"; boundary="([^"]+)"$/m);
  assert.match(head ?? '', /^From: tlsrpt@mail\.postern\.test$/m);
  assert.ok(text.split('\r\n').every((l) => l.length <= 998));
  const body = rest.join('\r\n\r\n');
  const att = /Content-Type: application\/tlsrpt\+gzip\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="([^"]+)"\r\n\r\n([A-Za-z0-9+/=\r\n]+)\r\n--/.exec(body);
  assert.ok(att, body.slice(0, 500));
  const begin = Date.parse(`${day}T00:00:00Z`) / 1000;
  assert.match(att[1] ?? '', new RegExp(`^mail\\.postern\\.test!both\\.rpt\\.test!${begin}!${begin + 86399}![0-9a-f]+\\.json\\.gz$`));
  const mailed = JSON.parse(gunzipSync(Buffer.from((att[2] ?? '').replace(/\r\n/g, ''), 'base64')).toString('utf8')) as Record<string, unknown>;
  checkSchema(mailed, day);
  assert.deepEqual(mailed.policies, json.policies);

  // The others: no record → forgotten quietly; no usable rua → a log line; a closed port → kept for the next run.
  assert.match(logs.join('\n'), /tls-report domain=norua\.rpt\.test day=2026-12-06 result=skipped reason="the v=TLSRPTv1 record has no usable rua/);
  assert.match(logs.join('\n'), /tls-report domain=down\.rpt\.test day=2026-12-06 rua="https:\/\/reports\.rpt\.test:1\/closed" result=failed reason="/);
  assert.match(logs.join('\n'), /tls-report domain=both\.rpt\.test day=2026-12-06 rua="mailto:tlsrpt@reports\.rpt\.test" result=sent/);
  assert.deepEqual([...store.day(day).keys()], ['down.rpt.test']);
});

test('the counts survive a restart (the store\'s file), and a corrupt file starts empty', async () => {
  const file = join(dir, 'persist.json');
  const s = new TlsRptStore(file);
  s.record({ domain: 'a.test', policy: { type: 'no-policy-found', strings: [], mxHost: [] } });
  s.flush();
  const again = new TlsRptStore(file);
  const today = new Date().toISOString().slice(0, 10);
  assert.equal(again.day(today).get('a.test')?.[0]?.success, 1);
  (await import('node:fs')).writeFileSync(file, '{"2026-');
  assert.deepEqual([...new TlsRptStore(file).day(today).keys()], []);
});
