/*
 * test/unit/transport-security.test.ts — the pure parts of outbound
 * transport security: the TLS policy table's values and lookups, the
 * MTA-STS TXT record and policy file (malformed ones included), MX
 * pattern matching, TLSA usability and matching against certificates the
 * test makes with openssl, and the `mta` statements of smtpd.conf.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lookupPolicy, nameMatches, parsePolicyValue } from '../../src/transport-security/policy-table.js';
import { mxAllowed, parseStsPolicy, parseStsRecord } from '../../src/transport-security/mta-sts-policy.js';
import { daneMatch, unusable } from '../../src/transport-security/tlsa.js';
import { FileStsCache } from '../../src/transport-security/sts-cache.js';
import { loadConfigText, formatDiagnostic } from '../../src/config/load.js';
import { makeCa, makeCert } from '../helpers/certs.js';
import { signedCert } from '../helpers/tls-policy-peers.js';

test('policy table values: levels, match=, errors', () => {
  assert.deepEqual(parsePolicyValue('verify', 'a.test'), { level: 'verify', match: [], key: 'a.test' });
  assert.deepEqual(parsePolicyValue('secure match=mx.a.test:.a.test', 'a.test'), { level: 'secure', match: ['mx.a.test', '.a.test'], key: 'a.test' });
  assert.match((parsePolicyValue('paranoid', 'a.test') as { error: string }).error, /unknown TLS policy "paranoid" for "a\.test"/);
  assert.match((parsePolicyValue('verify ciphers=high', 'a.test') as { error: string }).error, /unknown option "ciphers=high"/);
  assert.match((parsePolicyValue('', 'a.test') as { error: string }).error, /empty TLS policy/);
});

test('policy table lookup: exact key first, then the nearest .parent; a table error is an error', () => {
  const t = new Map([
    ['example.org', 'secure'],
    ['.example.org', 'encrypt'],
    ['.org', 'may'],
  ]);
  const get = (k: string) => (t.has(k) ? { kind: 'found' as const, value: t.get(k) as string } : { kind: 'notfound' as const });
  const level = (d: string) => {
    const r = lookupPolicy(get, d);
    return r.kind === 'policy' ? `${r.policy.level}:${r.policy.key}` : r.kind;
  };
  assert.equal(level('example.org'), 'secure:example.org');
  assert.equal(level('Sub.Example.org.'), 'encrypt:.example.org');
  assert.equal(level('other.org'), 'may:.org');
  assert.equal(level('example.net'), 'none');
  assert.equal(lookupPolicy(() => ({ kind: 'error', reason: 'db gone' }), 'x.test').kind, 'error');
  assert.equal(lookupPolicy(() => ({ kind: 'found', value: 'bogus' }), 'x.test').kind, 'error');
});

test('name patterns: exact, .parent, *.one-label', () => {
  assert.ok(nameMatches('mx.a.test', ['mx.a.test']));
  assert.ok(nameMatches('mx.a.test', ['.a.test']));
  assert.ok(!nameMatches('a.test', ['.a.test']));
  assert.ok(nameMatches('mx1.a.test', ['*.a.test']));
  assert.ok(!nameMatches('x.mx1.a.test', ['*.a.test']));
  assert.ok(mxAllowed({ mx: ['*.mail.a.test', 'mx.b.test'] }, 'MX.B.TEST.'));
});

test('MTA-STS TXT record: one v=STSv1 with an id; anything else is "no policy" with the reason', () => {
  assert.deepEqual(parseStsRecord([['v=STSv1; id=20260101T000000;']]), { id: '20260101T000000' });
  assert.deepEqual(parseStsRecord([['v=STSv1; ', 'id=abc']]), { id: 'abc' });
  assert.deepEqual(parseStsRecord([['v=spf1 -all']]), { none: 'no v=STSv1 TXT record' });
  assert.deepEqual(parseStsRecord([['v=STSv1; id=a'], ['v=STSv1; id=b']]), { none: 'more than one v=STSv1 TXT record' });
  assert.match((parseStsRecord([['v=STSv1; id=has-dash']]) as { none: string }).none, /invalid id/);
  assert.match((parseStsRecord([['v=STSv1;']]) as { none: string }).none, /has no id/);
  assert.match((parseStsRecord([['v=STSv1; garbage']]) as { none: string }).none, /malformed field/);
});

test('MTA-STS policy file: valid, and each kind of malformed', () => {
  const ok = parseStsPolicy('version: STSv1\r\nmode: enforce\r\nmx: mx1.a.test\r\nmx: *.b.test\r\nmax_age: 604800\r\n');
  assert.ok(!('error' in ok));
  assert.equal(ok.mode, 'enforce');
  assert.deepEqual(ok.mx, ['mx1.a.test', '*.b.test']);
  assert.equal(ok.maxAge, 604800);
  assert.equal((parseStsPolicy('version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\n') as { maxAge: number }).maxAge, undefined, 'an 11-digit max_age is refused');
  const capped = parseStsPolicy('version: STSv1\nmode: testing\nmx: a\nmax_age: 9999999999\n');
  assert.equal((capped as { maxAge: number }).maxAge, 31_557_600);
  const bad: [string, RegExp][] = [
    ['mode: enforce\nmx: a\nmax_age: 1\n', /no "version: STSv1"/],
    ['version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n', /unknown version/],
    ['version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n', /unknown mode/],
    ['version: STSv1\nmode: enforce\nmax_age: 1\n', /no "mx"/],
    ['version: STSv1\nmode: enforce\nmx: a\n', /no "max_age"/],
    ['version: STSv1\nmode: enforce\nmx: a\nmax_age: soon\n', /not a number/],
    ['version: STSv1\nmode: enforce\nmx: a b c\nmax_age: 1\n', /invalid mx pattern/],
    ['<html><body>Not here</body></html>', /expected "key: value"/],
    ['\u0000\u0001\u0002', /expected "key: value"/],
  ];
  for (const [text, re] of bad) assert.match((parseStsPolicy(text) as { error: string }).error, re, text);
});

test('the MTA-STS file cache survives a new instance; a corrupt file is absent', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-sts-'));
  try {
    const policy = { mode: 'enforce' as const, mx: ['mx.a.test'], maxAge: 3600, text: 'x' };
    await new FileStsCache(dir).put('a.test', { id: 'one', policy, fetched: 1000 });
    assert.deepEqual(await new FileStsCache(dir).get('A.TEST'), { id: 'one', policy, fetched: 1000 });
    await import('node:fs').then((fs) => fs.writeFileSync(join(dir, 'b.test.json'), '{"id": 3'));
    assert.equal(await new FileStsCache(dir).get('b.test'), undefined);
    assert.equal(await new FileStsCache(dir).get('../../etc/passwd'), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TLSA usability (RFC 7672 §3.1)', () => {
  const h = Buffer.alloc(32, 1);
  assert.equal(unusable({ usage: 3, selector: 1, matchingType: 1, data: h }), undefined);
  assert.equal(unusable({ usage: 2, selector: 0, matchingType: 2, data: Buffer.alloc(64) }), undefined);
  assert.match(unusable({ usage: 1, selector: 1, matchingType: 1, data: h }) ?? '', /usage 1/);
  assert.match(unusable({ usage: 0, selector: 1, matchingType: 1, data: h }) ?? '', /usage 0/);
  assert.match(unusable({ usage: 3, selector: 2, matchingType: 1, data: h }) ?? '', /selector 2/);
  assert.match(unusable({ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(20) }) ?? '', /20 bytes/);
  assert.match(unusable({ usage: 3, selector: 1, matchingType: 7, data: h }) ?? '', /matching type 7/);
});

test('DANE-EE and DANE-TA matching against real certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-tlsa-'));
  try {
    const ca = makeCa(dir, 'dane-ca');
    const leaf = signedCert(dir, 'mx.dane.test', ca);
    const other = makeCert(dir, 'other.test');
    const der = (f: string) => new X509Certificate(readFileSync(f)).raw;
    const spki = (f: string) => new X509Certificate(readFileSync(f)).publicKey.export({ type: 'spki', format: 'der' }) as Buffer;
    const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();
    const sha512 = (b: Buffer) => createHash('sha512').update(b).digest();
    const chain = [der(leaf.cert), der(ca.cert)];
    // DANE-EE: SPKI SHA2-256, full certificate, SHA2-512; no name check.
    assert.equal(daneMatch([{ usage: 3, selector: 1, matchingType: 1, data: sha256(spki(leaf.cert)) }], chain, ['wrong.name']).ok, true);
    assert.equal(daneMatch([{ usage: 3, selector: 0, matchingType: 0, data: der(leaf.cert) }], chain, []).ok, true);
    assert.equal(daneMatch([{ usage: 3, selector: 0, matchingType: 2, data: sha512(der(leaf.cert)) }], chain, []).ok, true);
    assert.equal(daneMatch([{ usage: 3, selector: 1, matchingType: 1, data: sha256(spki(other.cert)) }], chain, []).ok, false);
    // DANE-TA: the CA in the chain, the leaf names the MX host.
    const ta = { usage: 2, selector: 1, matchingType: 1, data: sha256(spki(ca.cert)) };
    assert.equal(daneMatch([ta], chain, ['mx.dane.test']).ok, true);
    const wrongName = daneMatch([ta], chain, ['mx.elsewhere.test']);
    assert.equal(wrongName.ok, false);
    assert.match((wrongName as { reason: string }).reason, /names none of mx\.elsewhere\.test/);
    // DANE-TA whose anchor did not sign the leaf.
    const notSigned = daneMatch([ta], [der(other.cert), der(ca.cert)], ['other.test']);
    assert.match((notSigned as { reason: string }).reason, /does not verify/);
    // Unusable records never match; garbage certificates are a reason, not a throw.
    assert.equal(daneMatch([{ usage: 1, selector: 1, matchingType: 1, data: sha256(spki(leaf.cert)) }], chain, []).ok, false);
    assert.match((daneMatch([ta], [Buffer.from('not a certificate')], []) as { reason: string }).reason, /cannot be read/);
    assert.match((daneMatch([ta], [], []) as { reason: string }).reason, /no certificate/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function load(text: string) {
  return loadConfigText(text, 'test.conf', { cwd: tmpdir(), hostname: 'mail.postern.test' });
}

test('mta statements: parsed into Config.transportSecurity', () => {
  const r = load(`table tlspol { "example.org" = "secure", ".example.net" = "dane" }
mta tls-policy <tlspol>
mta mta-sts cache "/var/spool/postern/sts"
mta dane resolver "127.0.0.1:53" trusted
mta tls-report from "tlsrpt@mail.postern.test" organization "Postern Test" contact "postmaster@postern.test"
action "out" relay
match from any for any action "out"
`);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic), []);
  assert.deepEqual(r.config?.transportSecurity, {
    policyTable: 'tlspol',
    mtaSts: { cacheDir: '/var/spool/postern/sts' },
    dane: { resolver: '127.0.0.1:53', trusted: true },
    tlsReport: { from: 'tlsrpt@mail.postern.test', organization: 'Postern Test', contact: 'postmaster@postern.test' },
  });
  assert.equal(load('action "out" relay\nmatch from any for any action "out"\n').config?.transportSecurity, undefined);
});

test('mta statements: errors with their position; an untrusted resolver is a warning', () => {
  const errs = (text: string) => load(text).diagnostics.map(formatDiagnostic).join('\n');
  assert.match(errs('mta tls-polcy <x>\n'), /test\.conf:1:5: .*tls-polcy/);
  assert.match(errs('mta tls-policy <nosuch>\n'), /nosuch/);
  assert.match(errs('mta dane resolver "not-an-ip"\n'), /test\.conf:1:19: invalid resolver/);
  assert.match(errs('mta dane resolver "127.0.0.1"\n'), /warning.*not trusted/);
  assert.match(errs('mta mta-sts\nmta mta-sts\n'), /test\.conf:2:5: "mta mta-sts" is already given at line 1/);
  assert.match(errs('mta tls-report from nobody\n'), /invalid address "nobody"/);
  assert.match(errs('mta tls-report from a@b.test colour "red"\n'), /colour/);
});

test('the DNSSEC client: a garbage answer and a wrong-id answer are errors, not throws or hangs', async () => {
  const { createSocket } = await import('node:dgram');
  const { DnssecClient } = await import('../../src/transport-security/dnssec-client.js');
  const server = createSocket('udp4');
  await new Promise<void>((r) => server.bind(0, '127.0.15.60', r));
  let mode: 'garbage' | 'wrong-id' = 'garbage';
  server.on('message', (msg, rinfo) => {
    const reply = mode === 'garbage' ? Buffer.from([1, 2, 3]) : Buffer.concat([Buffer.from([(msg[0] ?? 0) ^ 0xff, msg[1] ?? 0]), msg.subarray(2)]);
    server.send(reply, rinfo.port, rinfo.address);
  });
  try {
    const c = new DnssecClient({ address: '127.0.15.60', port: (server.address() as { port: number }).port }, 500);
    const g = await c.query('x.test', 'TLSA');
    assert.equal(g.kind, 'error');
    assert.match((g as { reason: string }).reason, /malformed DNS answer/);
    mode = 'wrong-id';
    const w = await c.query('x.test', 'TLSA');
    assert.equal(w.kind, 'error');
    assert.match((w as { reason: string }).reason, /no answer within 500 ms/);
  } finally {
    server.close();
  }
});
