/*
 * test/e2e/mta-sts.test.ts — outbound TLS policies end to end: the relay
 * agent with the transport-security engine, real DNS (nsd on loopback),
 * an HTTPS policy server with a certificate from the test's CA, and real
 * receiving MTAs (Python aiosmtpd with STARTTLS; Postfix's smtp-sink
 * without). MTA-STS enforce / testing / MX mismatch / bad certificate /
 * no STARTTLS; malformed TXT records; malformed, huge and stalled policy files; the policy cache
 * on disk across a new engine and its refresh when the id changes; the
 * `mta tls-policy` table's levels. Addresses: 127.0.15.0/24.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNsd, type NsdHandle } from '../helpers/nsd.js';
import { makeCa, makeCert as selfSigned, type CertFiles } from '../helpers/certs.js';
import { policyAgent, signedCert, startPolicyServer, type PolicyServer } from '../helpers/tls-policy-peers.js';
import { actionOf, configFrom, freePort, makeTask, MESSAGE, startAiosmtpd, startSmtpSink, type Aiosmtpd, type Sink } from '../helpers/mta-peers.js';
import { StsResolver } from '../../src/transport-security/mta-sts.js';
import { FileStsCache } from '../../src/transport-security/sts-cache.js';
import type { Config } from '../../src/config/model.js';

const A = { dns: '127.0.15.53', https: '127.0.15.80', mx1: '127.0.15.10', mx2: '127.0.15.11', mx3: '127.0.15.12' };
const POLICY = (mode: string, mx: string) => `version: STSv1\r\nmode: ${mode}\r\nmx: ${mx}\r\nmax_age: 86400\r\n`;

let dir: string;
let ca: CertFiles;
let dns: NsdHandle;
let https: PolicyServer;
let mx1: Aiosmtpd;
let mx2: Aiosmtpd;
let mx3: Sink;
let port: number;
let config: Config;

function zone(id: string): string[] {
  const lines = ['mx1 A 127.0.15.10', 'mx2 A 127.0.15.11', 'mx3 A 127.0.15.12'];
  const dom = (name: string, mx: string, sts = true) => {
    lines.push(`${name} MX 10 ${mx}`);
    if (sts) lines.push(`_mta-sts.${name} TXT "v=STSv1; id=${name === 'enforce' ? id : '1'};"`, `mta-sts.${name} A ${A.https}`);
  };
  dom('enforce', 'mx1');
  dom('badcert', 'mx2');
  dom('mismatch', 'mx1');
  dom('testing', 'mx2');
  dom('malformed', 'mx1');
  dom('huge', 'mx1');
  dom('slow', 'mx1');
  dom('notls', 'mx3');
  dom('testing-notls', 'mx3');
  dom('webpki', 'mx1'); // its mta-sts name is not on the policy server's certificate
  dom('plain', 'mx2', false);
  lines.push('badtxt MX 10 mx1', '_mta-sts.badtxt TXT "v=STSv1; id=not-valid!;"', 'twotxt MX 10 mx1', '_mta-sts.twotxt TXT "v=STSv1; id=1;"', '_mta-sts.twotxt TXT "v=STSv1; id=2;"');
  dom('table-verify', 'mx2', false);
  dom('table-encrypt', 'mx2', false);
  dom('table-secure', 'mx1', false);
  dom('table-secure-match', 'mx1', false);
  dom('table-none', 'mx1', false);
  return lines;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-mta-sts-'));
  ca = makeCa(dir, 'sts-test-ca');
  const web = signedCert(dir, 'mta-sts.enforce.sts.test', ca, {
    names: ['enforce', 'badcert', 'mismatch', 'testing', 'malformed', 'huge', 'slow', 'notls', 'testing-notls'].map((d) => `mta-sts.${d}.sts.test`),
  });
  const c1 = signedCert(dir, 'mx1.sts.test', ca);
  const c2 = selfSigned(dir, 'mx2.sts.test'); // not from the CA: "certificate-not-trusted"
  port = await freePort([A.mx1, A.mx2, A.mx3]);
  [dns, https, mx1, mx2, mx3] = await Promise.all([
    startNsd({ address: A.dns, zones: { 'sts.test': zone('1') } }),
    startPolicyServer(A.https, web),
    startAiosmtpd({ mode: 'starttls', cert: { dir, ...c1 }, address: A.mx1, port, user: 'u', password: 'p', authRequired: false }),
    startAiosmtpd({ mode: 'starttls', cert: { dir, ...c2, pem: '' }, address: A.mx2, port, user: 'u', password: 'p', authRequired: false }),
    startSmtpSink(A.mx3, port),
  ]);
  https.set('mta-sts.enforce.sts.test', { body: POLICY('enforce', 'mx1.sts.test') });
  https.set('mta-sts.badcert.sts.test', { body: POLICY('enforce', 'mx2.sts.test') });
  https.set('mta-sts.mismatch.sts.test', { body: POLICY('enforce', 'other.sts.test') });
  https.set('mta-sts.testing.sts.test', { body: POLICY('testing', '*.sts.test') });
  https.set('mta-sts.malformed.sts.test', { body: '<html>policy moved</html>' });
  https.set('mta-sts.huge.sts.test', { huge: 2_000_000 });
  https.set('mta-sts.slow.sts.test', { stall: true });
  https.set('mta-sts.notls.sts.test', { body: POLICY('enforce', 'mx3.sts.test') });
  https.set('mta-sts.testing-notls.sts.test', { body: POLICY('testing', 'mx3.sts.test') });
  config = configFrom(`table tlspol { "table-verify.sts.test" = "verify", "table-encrypt.sts.test" = "encrypt", "table-secure.sts.test" = "secure", "table-secure-match.sts.test" = "secure match=.sts.test", "table-none.sts.test" = "none" }
mta tls-policy <tlspol>
mta mta-sts
action "mx" relay
match from any for any action "mx"
`);
});

after(async () => {
  await Promise.all([dns?.close(), https?.close(), mx1?.close(), mx2?.close(), mx3?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function harness(cacheDir = join(dir, 'sts-cache')) {
  return policyAgent({
    config,
    dnsServer: dns.server,
    port,
    tlsCa: pem(ca.cert),
    parts: (resolver) => ({ sts: new StsResolver(resolver.raw, new FileStsCache(cacheDir), { timeoutMs: 1500, maxBytes: 64 * 1024, ca: [pem(ca.cert)], resolve: (h) => resolver.raw.resolve4(h), port: https.port }) }),
  });
}

function pem(file: string): string {
  return readFileSync(file, 'utf8');
}

async function send(h: ReturnType<typeof harness>, domain: string) {
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, 'mx'), rcpts: [`bob@${domain}`], body: MESSAGE }));
  await h.agent.close();
  assert.ok(r);
  return r;
}

function reportOf(h: ReturnType<typeof harness>, domain: string) {
  const today = new Date().toISOString().slice(0, 10);
  return h.report.day(today).get(domain) ?? [];
}

test('MTA-STS enforce: the MX matches, the certificate verifies: delivered over verified TLS, counted as a success', async () => {
  const h = harness();
  const r = await send(h, 'enforce.sts.test');
  assert.equal(r.status, 'ok', r.detail);
  assert.equal(mx1.messages().at(-1)?.tls, true);
  assert.match(h.logs.join('\n'), /mta connected address=127\.0\.15\.10:\d+ host=mx1\.sts\.test tls=TLSv1\.[23]:\S+ verified=yes tls-policy="?mta-sts enforce/);
  const [c] = reportOf(h, 'enforce.sts.test');
  assert.equal(c?.policy.type, 'sts');
  assert.deepEqual(c?.policy.mxHost, ['mx1.sts.test']);
  assert.equal(c?.success, 1);
  assert.equal(c?.failure, 0);
});

test('MTA-STS enforce: a certificate from no trusted CA defers (4.7.5) with the policy named in the detail and the log', async () => {
  const h = harness();
  const r = await send(h, 'badcert.sts.test');
  assert.equal(r.status, 'tempfail');
  assert.equal(r.enhanced, '4.7.5');
  assert.match(r.detail ?? '', /TLS policy mta-sts enforce for badcert\.sts\.test: mx2\.sts\.test\[127\.0\.15\.11\]: the certificate does not verify/);
  assert.match(h.logs.join('\n'), /mta tls-policy domain=badcert\.sts\.test host=mx2\.sts\.test address=127\.0\.15\.11 policy="mta-sts enforce" result=failed reason="the certificate does not verify: \S+"/);
  const [c] = reportOf(h, 'badcert.sts.test');
  assert.equal(c?.failure, 1);
  assert.equal(c?.failures[0]?.resultType, 'certificate-not-trusted');
  assert.equal(c?.failures[0]?.receivingIp, '127.0.15.11');
});

test('MTA-STS enforce: an MX host outside the policy is not used (4.7.5, no connection)', async () => {
  const h = harness();
  const before = mx1.messages().length;
  const r = await send(h, 'mismatch.sts.test');
  assert.equal(r.status, 'tempfail');
  assert.equal(r.enhanced, '4.7.5');
  assert.match(r.detail ?? '', /MX host mx1\.sts\.test is not among the policy's mx patterns \(other\.sts\.test\)/);
  assert.equal(mx1.messages().length, before);
  assert.doesNotMatch(h.logs.join('\n'), /mta connecting/);
});

test('MTA-STS enforce: an MX without STARTTLS defers (4.7.4), reported as starttls-not-supported', async () => {
  const h = harness();
  const r = await send(h, 'notls.sts.test');
  assert.equal(r.status, 'tempfail');
  assert.equal(r.enhanced, '4.7.4');
  assert.equal(mx3.messages().length, 0);
  assert.equal(reportOf(h, 'notls.sts.test')[0]?.failures[0]?.resultType, 'starttls-not-supported');
});

test('MTA-STS testing: the same bad certificate is delivered, and reported', async () => {
  const h = harness();
  const r = await send(h, 'testing.sts.test');
  assert.equal(r.status, 'ok', r.detail);
  assert.match(h.logs.join('\n'), /mta tls-policy domain=testing\.sts\.test host=mx2\.sts\.test policy="mta-sts testing" result=report-only/);
  const [c] = reportOf(h, 'testing.sts.test');
  assert.equal(c?.failure, 1);
  assert.equal(c?.failures[0]?.resultType, 'certificate-not-trusted');
});

test('MTA-STS testing and an MX without STARTTLS: delivered in clear, reported as starttls-not-supported', async () => {
  const h = harness();
  const r = await send(h, 'testing-notls.sts.test');
  assert.equal(r.status, 'ok', r.detail);
  const [c] = reportOf(h, 'testing-notls.sts.test');
  assert.equal(c?.policy.type, 'sts');
  assert.equal(c?.failure, 1);
  assert.equal(c?.failures[0]?.resultType, 'starttls-not-supported');
});

for (const [domain, why, type] of [
  ['malformed.sts.test', /malformed MTA-STS policy of malformed\.sts\.test: line 1: expected \\"key: value\\"/, 'sts-policy-invalid'],
  ['huge.sts.test', /the policy from mta-sts\.huge\.sts\.test is too large \(more than 65536 bytes\)/, 'sts-policy-fetch-error'],
  ['slow.sts.test', /no complete answer from mta-sts\.slow\.sts\.test within 1\.5 s/, 'sts-policy-fetch-error'],
  ['webpki.sts.test', /fetching the policy from mta-sts\.webpki\.sts\.test: ERR_TLS_CERT_ALTNAME_INVALID/, 'sts-webpki-invalid'],
  ['badtxt.sts.test', /_mta-sts\.badtxt\.sts\.test: invalid id \\"not-valid!\\"/, 'sts-policy-invalid'],
  ['twotxt.sts.test', /_mta-sts\.twotxt\.sts\.test: more than one v=STSv1 TXT record/, 'sts-policy-invalid'],
] as const) {
  test(`a policy that cannot be had (${domain}): no policy, delivered, a log line and a report entry`, async () => {
    const h = harness(join(dir, `cache-${domain}`));
    const r = await send(h, domain);
    assert.equal(r.status, 'ok', r.detail);
    const line = h.logs.find((l) => l.includes('tls-policy') && l.includes(domain)) ?? '';
    assert.match(line, /policy=mta-sts result=unavailable/);
    assert.match(line, why);
    const entry = reportOf(h, domain).find((c) => c.policy.type === 'no-policy-found' && c.failure > 0);
    assert.equal(entry?.failures[0]?.resultType, type);
  });
}

test('the MTA-STS cache is on disk: a new engine enforces the cached policy while the server is down; a new id is fetched again', async () => {
  const cache = join(dir, 'cache-restart');
  await send(harness(cache), 'enforce.sts.test');
  const fetches = () => https.requests.filter((r) => r.startsWith('mta-sts.enforce.sts.test ')).length;
  const n = fetches();
  https.set('mta-sts.enforce.sts.test', { status: 500 });
  const r = await send(harness(cache), 'enforce.sts.test');
  assert.equal(r.status, 'ok', r.detail);
  assert.equal(fetches(), n, 'same id: no fetch');
  // The domain changes its policy (and the id): the new one is fetched and enforced.
  https.set('mta-sts.enforce.sts.test', { body: POLICY('enforce', 'elsewhere.sts.test') });
  await dns.setZones({ 'sts.test': zone('2') });
  const h = harness(cache);
  const r2 = await send(h, 'enforce.sts.test');
  assert.equal(fetches(), n + 1);
  assert.equal(r2.status, 'tempfail');
  assert.match(r2.detail ?? '', /not among the policy's mx patterns \(elsewhere\.sts\.test\)/);
  https.set('mta-sts.enforce.sts.test', { body: POLICY('enforce', 'mx1.sts.test') });
  await dns.setZones({ 'sts.test': zone('1') });
});

test('policy table: verify refuses an untrusted certificate; encrypt takes it; none sends in clear', async () => {
  const h = harness();
  const v = await send(h, 'table-verify.sts.test');
  assert.equal(v.status, 'tempfail');
  assert.match(v.detail ?? '', /TLS policy table verify \(table-verify\.sts\.test\)/);
  assert.match(h.logs.join('\n'), /policy="table verify \(table-verify\.sts\.test\)" result=failed/);
  const e = await send(harness(), 'table-encrypt.sts.test');
  assert.equal(e.status, 'ok', e.detail);
  assert.equal(mx2.messages().at(-1)?.tls, true);
  // aiosmtpd here requires STARTTLS: "none" is refused by the server, which shows no TLS was tried.
  const n = await send(harness(), 'table-none.sts.test');
  assert.notEqual(n.status, 'ok');
  assert.match(n.detail ?? '', /STARTTLS|530/i);
});

test('policy table: secure checks the destination name, not the MX name (unless match= says so)', async () => {
  const s = await send(harness(), 'table-secure.sts.test');
  assert.equal(s.status, 'tempfail');
  assert.match(s.detail ?? '', /does not name table-secure\.sts\.test or \.table-secure\.sts\.test/);
  const m = await send(harness(), 'table-secure-match.sts.test');
  assert.equal(m.status, 'ok', m.detail);
});

test('no policy at all: opportunistic as before, counted as no-policy-found', async () => {
  const h = harness();
  const r = await send(h, 'plain.sts.test');
  assert.equal(r.status, 'ok', r.detail);
  assert.equal(reportOf(h, 'plain.sts.test')[0]?.policy.type, 'no-policy-found');
});
