/*
 * test/e2e/transport-security-daemon.test.ts — the built smtpd with `mta
 * mta-sts` and `mta dane resolver … trusted` in its smtpd.conf, relaying by
 * MX on port 25 (so: root only, skipped otherwise) through a validating
 * unbound in front of nsd with a signed zone (test/helpers/dnssec.ts):
 * DANE-EE that matches → delivered; that does not → deferred with the
 * policy in the log; an MX without TLSA whose domain publishes MTA-STS
 * enforce (policy on https://mta-sts…:443, certificate from the test CA
 * the daemon trusts through NODE_EXTRA_CA_CERTS) → delivered over verified
 * TLS. Addresses 127.0.15.0/24.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { basicConfig, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { startDnssec, type DnssecHandle } from '../helpers/dnssec.js';
import { makeCa, makeCert as selfSigned } from '../helpers/certs.js';
import { signedCert, startPolicyServer, type PolicyServer } from '../helpers/tls-policy-peers.js';
import { startAiosmtpd, type Aiosmtpd } from '../helpers/mta-peers.js';
import { dialogue, RawClient } from '../helpers/smtp-client.js';

const ROOT = process.getuid?.() === 0;
const A = { nsd: '127.0.15.57', unbound: '127.0.15.58', a: '127.0.15.22', b: '127.0.15.23', c: '127.0.15.24', https: '127.0.15.82' };
let dir: string;
let dnssec: DnssecHandle;
let web: PolicyServer;
let peers: Aiosmtpd[] = [];
let d: DaemonHandle;

const spki = (file: string) => createHash('sha256').update(new X509Certificate(readFileSync(file)).publicKey.export({ type: 'spki', format: 'der' }) as Buffer).digest('hex');

before(async () => {
  if (!ROOT) return;
  dir = mkdtempSync(join(tmpdir(), 'postern-ts-daemon-'));
  const ca = makeCa(dir, 'ts-daemon-ca');
  const certA = selfSigned(dir, 'mx-a.d2.test');
  const certB = selfSigned(dir, 'mx-b.d2.test');
  const certC = signedCert(dir, 'mx-c.d2.test', ca);
  const other = selfSigned(dir, 'other.test');
  dnssec = await startDnssec({
    nsdAddress: A.nsd,
    resolverAddress: A.unbound,
    signed: {
      'd2.test': [
        'dane MX 10 mx-a',
        `mx-a A ${A.a}`,
        `_25._tcp.mx-a TLSA 3 1 1 ${spki(certA.cert)}`,
        'danebad MX 10 mx-b',
        `mx-b A ${A.b}`,
        `_25._tcp.mx-b TLSA 3 1 1 ${spki(other.cert)}`,
        'sts MX 10 mx-c',
        `mx-c A ${A.c}`,
        '_mta-sts.sts TXT "v=STSv1; id=1;"',
        `mta-sts.sts A ${A.https}`,
      ],
    },
  });
  web = await startPolicyServer(A.https, signedCert(dir, 'mta-sts.sts.d2.test', ca), 443);
  web.set('mta-sts.sts.d2.test', { body: 'version: STSv1\nmode: enforce\nmx: mx-c.d2.test\nmax_age: 3600\n' });
  peers = await Promise.all([
    startAiosmtpd({ mode: 'starttls', cert: { dir, ...certA, pem: '' }, address: A.a, port: 25, user: 'u', password: 'p', authRequired: false }),
    startAiosmtpd({ mode: 'starttls', cert: { dir, ...certB, pem: '' }, address: A.b, port: 25, user: 'u', password: 'p', authRequired: false }),
    startAiosmtpd({ mode: 'starttls', cert: { dir, ...certC }, address: A.c, port: 25, user: 'u', password: 'p', authRequired: false }),
  ]);
  d = await startDaemon(
    basicConfig(`resolver "${dnssec.resolver}"
mta mta-sts
mta dane resolver "${dnssec.resolver}" trusted
table d2 { "dane.d2.test", "danebad.d2.test", "sts.d2.test" }
action "out" relay
match from any for domain <d2> action "out"`),
    { deliver: true, env: { NODE_EXTRA_CA_CERTS: ca.cert } },
  );
});

after(async () => {
  if (!ROOT) return;
  await d?.stop();
  d?.cleanup();
  await Promise.all([dnssec?.close(), web?.close(), ...peers.map((p) => p.close())]);
  rmSync(dir, { recursive: true, force: true });
});

test('smtpd with mta mta-sts and mta dane: DANE match delivered, DANE mismatch deferred, MTA-STS enforce delivered verified', { skip: ROOT ? false : 'needs root (MX port 25)' }, async () => {
  const c = await RawClient.open(d.port);
  await dialogue(
    c,
    `S: 220
C: EHLO client.test
S: 250
C: MAIL FROM:<alice@test.example>
S: 250
C: RCPT TO:<bob@dane.d2.test>
S: 250
C: RCPT TO:<bob@danebad.d2.test>
S: 250
C: RCPT TO:<bob@sts.d2.test>
S: 250
C: DATA
S: 354
C: Subject: policies
C:
C: hello
C: .
S: 250
C: QUIT
S: 221`,
  );
  const ok = await d.waitForLog(/mta delivery .*to=<bob@dane\.d2\.test> .*result=Ok/, 20_000);
  assert.ok(ok);
  const bad = await d.waitForLog(/mta delivery .*to=<bob@danebad\.d2\.test> .*result=TempFail/, 20_000);
  assert.match(bad, /stat="TLS policy dane for danebad\.d2\.test: mx-b\.d2\.test\[127\.0\.15\.23\]: DANE: the certificate chain matches no usable TLSA record"/);
  assert.ok(d.logs.some((l) => /mta tls-policy domain=danebad\.d2\.test host=mx-b\.d2\.test address=127\.0\.15\.23 policy=dane result=failed/.test(l)));
  await d.waitForLog(/mta delivery .*to=<bob@sts\.d2\.test> .*result=Ok/, 20_000);
  assert.ok(d.logs.some((l) => /mta connected address=127\.0\.15\.24:25 host=mx-c\.d2\.test tls=\S+ verified=yes tls-policy="mta-sts enforce"/.test(l)), d.logs.join('\n'));
  assert.ok(d.logs.some((l) => /mta connected address=127\.0\.15\.22:25 host=mx-a\.d2\.test tls=\S+ verified=no tls-policy=dane/.test(l)));
  assert.equal(peers[1]?.messages().length, 0);
});
