/*
 * test/e2e/dane.test.ts — DANE (RFC 7672) end to end: zones signed with
 * ldnsutils, served by nsd, validated by unbound with the test's trust
 * anchors (test/helpers/dnssec.ts); Postern's DNSSEC client reads the AD
 * bit; the relay agent delivers to aiosmtpd receivers whose certificates
 * match (DANE-EE 3 1 1, DANE-TA 2 1 1 with the CA in the chain) or do not,
 * with unusable and malformed TLSA records, an unsigned zone (AD=0: no
 * DANE) and a bogus one (validation failure: the host is not used).
 * Addresses: 127.0.15.0/24.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnssec, type DnssecHandle } from '../helpers/dnssec.js';
import { makeCa, makeCert as selfSigned, type CertFiles } from '../helpers/certs.js';
import { policyAgent, signedCert } from '../helpers/tls-policy-peers.js';
import { actionOf, configFrom, freePort, makeTask, MESSAGE, startAiosmtpd, type Aiosmtpd } from '../helpers/mta-peers.js';
import { DnssecClient, parseServer } from '../../src/transport-security/dnssec-client.js';
import type { Config } from '../../src/config/model.js';

const A = { nsd: '127.0.15.53', unbound: '127.0.15.54', ee: '127.0.15.20', ta: '127.0.15.21' };

let dir: string;
let dnssec: DnssecHandle;
let ee: Aiosmtpd;
let ta: Aiosmtpd;
let port: number;
let config: Config;

const spkiSha256 = (file: string) => createHash('sha256').update(new X509Certificate(readFileSync(file)).publicKey.export({ type: 'spki', format: 'der' }) as Buffer).digest('hex');

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-dane-'));
  const ca: CertFiles = makeCa(dir, 'dane-test-ca');
  const eeCert = selfSigned(dir, 'mx-ee.dane.test');
  const taLeaf = signedCert(dir, 'mx-ta.dane.test', ca);
  const chain = join(dir, 'mx-ta-chain.pem');
  writeFileSync(chain, readFileSync(taLeaf.cert, 'utf8') + readFileSync(ca.cert, 'utf8'));
  const other = selfSigned(dir, 'unrelated.test');
  port = await freePort([A.ee, A.ta]);
  const tlsa = (host: string, rr: string) => `_${port}._tcp.${host} TLSA ${rr}`;
  const mxTo = (name: string, host: string, addr: string) => [`${name} MX 10 ${host}`, `${host} A ${addr}`];
  dnssec = await startDnssec({
    nsdAddress: A.nsd,
    resolverAddress: A.unbound,
    signed: {
      'dane.test': [
        ...mxTo('ee', 'mx-ee', A.ee),
        tlsa('mx-ee', `3 1 1 ${spkiSha256(eeCert.cert)}`),
        ...mxTo('wrong', 'mx-wrong', A.ee),
        tlsa('mx-wrong', `3 1 1 ${spkiSha256(other.cert)}`),
        ...mxTo('ta', 'mx-ta', A.ta),
        tlsa('mx-ta', `2 1 1 ${spkiSha256(ca.cert)}`),
        ...mxTo('ta-wrongname', 'mx-ta2', A.ta),
        tlsa('mx-ta2', `2 1 1 ${spkiSha256(ca.cert)}`),
        ...mxTo('unusable', 'mx-unusable', A.ee),
        tlsa('mx-unusable', `1 1 1 ${spkiSha256(eeCert.cert)}`),
        ...mxTo('malformed', 'mx-malformed', A.ee),
        tlsa('mx-malformed', '3 1 1 0badc0de'),
        tlsa('mx-malformed', `3 7 1 ${spkiSha256(eeCert.cert)}`),
        ...mxTo('notlsa', 'mx-notlsa', A.ee),
        ...mxTo('daneonly', 'mx-daneonly', A.ee),
      ],
    },
    unsigned: { 'insecure.test': [...mxTo('@', 'mx', A.ee), tlsa('mx', `3 1 1 ${spkiSha256(other.cert)}`)] },
    bogus: { 'bogus.test': [...mxTo('@', 'mx', A.ee), tlsa('mx', `3 1 1 ${spkiSha256(eeCert.cert)}`)] },
  });
  [ee, ta] = await Promise.all([
    startAiosmtpd({ mode: 'starttls', cert: { dir, ...eeCert, pem: '' }, address: A.ee, port, user: 'u', password: 'p', authRequired: false }),
    startAiosmtpd({ mode: 'starttls', cert: { dir, cert: chain, key: taLeaf.key, pem: '' }, address: A.ta, port, user: 'u', password: 'p', authRequired: false }),
  ]);
  config = configFrom(`table tlspol { "daneonly.dane.test" = "dane-only", "mx-ee.dane.test" = "dane", "mx-wrong.dane.test" = "dane", "mx-notlsa.dane.test" = "dane-only", "mx-daneonly.dane.test" = "dane" }
mta tls-policy <tlspol>
mta dane resolver "${dnssec.resolver}" trusted
action "mx" relay
action "sh-ee" relay host "smtp://mx-ee.dane.test:${port}"
action "sh-wrong" relay host "smtp://mx-wrong.dane.test:${port}"
action "sh-notlsa" relay host "smtp://mx-notlsa.dane.test:${port}"
action "sh-plain" relay host "smtp://mx-daneonly.dane.test:${port}"
match from any for any action "mx"
`);
});

after(async () => {
  await Promise.all([dnssec?.close(), ee?.close(), ta?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function harness() {
  return policyAgent({ config, dnsServer: dnssec.resolver, port, parts: () => ({ dane: new DnssecClient(parseServer(dnssec.resolver), 2000) }) });
}

async function send(domain: string, action = 'mx') {
  const h = harness();
  const [r] = await h.agent.deliver(makeTask({ action: actionOf(config, action), rcpts: [`bob@${domain}`], body: MESSAGE }));
  await h.agent.close();
  assert.ok(r);
  return { r, logs: h.logs.join('\n'), report: h.report.day(new Date().toISOString().slice(0, 10)).get(domain) ?? [] };
}

test('the DNSSEC client sees the AD bit: signed → secure, unsigned → insecure, bogus → SERVFAIL', async () => {
  const c = new DnssecClient(parseServer(dnssec.resolver), 2000);
  const s = await c.query(`_${port}._tcp.mx-ee.dane.test`, 'TLSA');
  assert.equal(s.kind, 'answer');
  assert.equal(s.kind === 'answer' && s.secure, true, dnssec.log());
  assert.equal(s.kind === 'answer' && s.answers.filter((a) => a.type === 'TLSA').length, 1);
  const i = await c.query('mx.insecure.test', 'A');
  assert.equal(i.kind === 'answer' && i.secure, false);
  assert.equal(i.kind === 'answer' && i.rcode, 'NOERROR');
  const b = await c.query('mx.bogus.test', 'A');
  assert.equal(b.kind === 'answer' && b.rcode, 'SERVFAIL');
  // A resolver that does not answer: an error with the reason, not a hang.
  const dead = await new DnssecClient({ address: '127.0.15.99', port: 9 }, 300).query('x.dane.test', 'A');
  assert.equal(dead.kind, 'error');
});

test('DANE-EE 3 1 1: the self-signed certificate matches: delivered, logged as dane, counted under tlsa', async () => {
  const { r, logs, report } = await send('ee.dane.test');
  assert.equal(r.status, 'ok', r.detail);
  assert.equal(ee.messages().at(-1)?.tls, true);
  assert.match(logs, /mta connected address=127\.0\.15\.20:\d+ host=mx-ee\.dane\.test tls=\S+ verified=no tls-policy=dane/);
  assert.equal(report[0]?.policy.type, 'tlsa');
  assert.deepEqual(report[0]?.policy.mxHost, ['mx-ee.dane.test']);
  assert.match(report[0]?.policy.strings[0] ?? '', /^3 1 1 [0-9a-f]{64}$/);
  assert.equal(report[0]?.success, 1);
});

test('DANE-EE that matches no record: deferred 4.7.5, the policy and reason in the detail and the log', async () => {
  const before = ee.messages().length;
  const { r, logs, report } = await send('wrong.dane.test');
  assert.equal(r.status, 'tempfail');
  assert.equal(r.enhanced, '4.7.5');
  assert.match(r.detail ?? '', /TLS policy dane for wrong\.dane\.test: mx-wrong\.dane\.test\[127\.0\.15\.20\]: DANE: the certificate chain matches no usable TLSA record/);
  assert.match(logs, /mta tls-policy domain=wrong\.dane\.test host=mx-wrong\.dane\.test address=127\.0\.15\.20 policy=dane result=failed/);
  assert.equal(ee.messages().length, before);
  assert.equal(report[0]?.failures[0]?.resultType, 'validation-failure');
});

test('DANE-TA 2 1 1: the CA in the presented chain, the certificate names the MX: delivered; another MX name: deferred', async () => {
  const ok = await send('ta.dane.test');
  assert.equal(ok.r.status, 'ok', ok.r.detail);
  assert.equal(ta.messages().at(-1)?.tls, true);
  const bad = await send('ta-wrongname.dane.test');
  assert.equal(bad.r.status, 'tempfail');
  assert.match(bad.r.detail ?? '', /DANE: the certificate names none of mx-ta2\.dane\.test, ta-wrongname\.dane\.test/);
});

test('only unusable TLSA records (PKIX-EE; malformed data): TLS required, not authenticated: delivered, logged', async () => {
  for (const d of ['unusable.dane.test', 'malformed.dane.test']) {
    const { r, logs, report } = await send(d);
    assert.equal(r.status, 'ok', `${d}: ${r.detail}`);
    assert.match(logs, new RegExp(`mta tls-policy domain=${d.replace(/\./g, '\\.')} host=\\S+ policy=dane result=unusable reason="[^"]*(usage 1|data of 4 bytes)`));
    assert.match(logs, /tls-policy="dane \(unusable TLSA: encrypt only\)"/);
    assert.equal(report[0]?.failures[0]?.resultType, 'tlsa-invalid');
  }
});

test('a signed zone without TLSA: no DANE, delivered opportunistically; dane-only in the table defers', async () => {
  const plain = await send('notlsa.dane.test');
  assert.equal(plain.r.status, 'ok', plain.r.detail);
  const only = await send('daneonly.dane.test');
  assert.equal(only.r.status, 'tempfail');
  assert.match(only.r.detail ?? '', /TLS policy dane-only for daneonly\.dane\.test: mx-daneonly\.dane\.test: no TLSA record/);
  assert.equal(only.report[0]?.failures[0]?.resultType, 'dane-required');
});

test('an unsigned zone: its TLSA records are not believed (AD=0), delivered without DANE', async () => {
  const { r, logs } = await send('insecure.test');
  assert.equal(r.status, 'ok', r.detail);
  assert.doesNotMatch(logs, /tls-policy=dane/);
});

test('a bogus zone: the MX lookup itself fails validation — temporary failure, never a silent pass', async () => {
  const { r } = await send('bogus.test');
  assert.equal(r.status, 'tempfail');
  assert.match(r.enhanced ?? '', /^4\./);
});

test('a smarthost (relay host) whose table entry says dane uses its own TLSA records, as Postfix does for a non-MX nexthop', async () => {
  const ok = await send('elsewhere.example', 'sh-ee');
  assert.equal(ok.r.status, 'ok', ok.r.detail);
  assert.match(ok.logs, /mta connected address=127\.0\.15\.20:\d+ host=mx-ee\.dane\.test tls=\S+ verified=no tls-policy=dane/);
  const bad = await send('elsewhere.example', 'sh-wrong');
  assert.equal(bad.r.status, 'tempfail');
  assert.equal(bad.r.enhanced, '4.7.5');
  assert.match(bad.r.detail ?? '', /TLS policy dane for mx-wrong\.dane\.test: mx-wrong\.dane\.test\[127\.0\.15\.20\]: DANE: the certificate chain matches no usable TLSA record/);
  // No TLSA: dane-only defers, dane falls back to opportunistic TLS.
  const only = await send('elsewhere.example', 'sh-notlsa');
  assert.equal(only.r.status, 'tempfail');
  assert.match(only.r.detail ?? '', /TLS policy dane-only for mx-notlsa\.dane\.test: mx-notlsa\.dane\.test: no TLSA record/);
  const plain = await send('elsewhere.example', 'sh-plain');
  assert.equal(plain.r.status, 'ok', plain.r.detail);
  assert.doesNotMatch(plain.logs, /tls-policy=dane/);
});
