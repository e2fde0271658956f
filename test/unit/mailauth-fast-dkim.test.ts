/*
 * mailauth/verify/fast-dkim.ts cross-checked: many messages signed by
 * mailauth and by dkimpy (Debian python3-dkim, a real third-party signer
 * and verifier), RSA and Ed25519, every canonicalization, one and two
 * signatures, l=, then left valid or broken (body, header, whitespace, an
 * added ARC field). For each, the engine with the fast path (engine.ts)
 * must give what mailauth alone gives — the same Authentication-Results,
 * log fields and result words — and the fast path may answer only a pass
 * that dkimpy confirms; the common valid cases must take it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dkimSign, type MailAuthResolver } from '../../src/mailauth/lib.js';
import { fastDkim } from '../../src/mailauth/verify/fast-dkim.js';
import { canonBody, canonField } from '../../src/mailauth/dkim-canon.js';
import { prng } from '../helpers/prng.js';
import { InlineEngine } from '../../src/mailauth/verify/engine.js';
import { authWords, resultsHeader, summary, type AuthResults } from '../../src/mailauth/verify/verdict.js';
import { dkimpySignMany, dkimpyVerifyMany, ed25519Key, rsaKey, type TestKey } from '../helpers/dkimpy.js';

const rsa = rsaKey(2048);
const ed = ed25519Key();
const rsa1024 = rsaKey(1024);
const records: Record<string, string> = {
  'rsa._domainkey.example.org': rsa.record,
  'ed._domainkey.example.org': ed.record,
  'short._domainkey.example.org': rsa1024.record,
  // key records the fast path leaves to mailauth: testing flag, no k= for Ed25519
  'flag._domainkey.example.org': `${rsa.record}; t=y`,
  'nok._domainkey.example.org': ed.record.replace('k=ed25519; ', ''),
  '_dmarc.example.org': 'v=DMARC1; p=reject',
};
const resolver: MailAuthResolver = async (name) => {
  const r = records[name.toLowerCase()];
  if (r === undefined) throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  return [[r.slice(0, 200), r.slice(200)].filter((s) => s !== '')];
};

const heads = [
  'From: "A, B" <a@example.org>\r\nTo: b@example.net\r\nSubject: hello\r\n  folded   line\r\nDate: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n',
  'from: a@Example.ORG\r\nSubject:nospace \t\r\nX-Dup: 1\r\nX-Dup: 2\r\nTo: c@example.net\r\n',
  `From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\nSubject: ${Buffer.from('Grüße', 'utf8').toString('latin1')}\r\nTo: d@example.net\r\n`,
];
const bodies = ['Hello\r\n', '', 'line  with   spaces \t \r\n\r\n\r\n', `${'Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n'.repeat(60)}`, 'tab\there\r\n \r\nend\r\n'];

type Canon = 'relaxed' | 'simple';
const canons: [Canon, Canon][] = [['relaxed', 'relaxed'], ['simple', 'simple'], ['relaxed', 'simple'], ['simple', 'relaxed']];

function message(h: string, b: string): Buffer {
  return Buffer.from(`${h}\r\n${b}`, 'latin1');
}

/** Ways to break (or not) a signed message. */
const mutations: Record<string, (m: string) => string> = {
  valid: (m) => m,
  'body changed': (m) => `${m}one more line\r\n`,
  'body whitespace': (m) => m.replace(/\r\n\r\n([^\r]*)\r\n/, (_all, first: string) => `\r\n\r\n${first}  \r\n`),
  'header changed': (m) => m.replace(/^To: .*$/m, 'To: mallory@example.net'),
  'header whitespace': (m) => m.replace(/^To: /m, 'To:    '),
  'header case changed': (m) => m.replace(/^To: (.)/m, (_all, c: string) => `To: ${c.toUpperCase()}`),
  'field folded': (m) => m.replace(/^To: /m, 'To:\r\n '),
  'body line moved': (m) => m.replace(/\r\n\r\n([^\r]+)\r\n([^\r]+)\r\n/, '\r\n\r\n$2\r\n$1\r\n'),
  'from changed': (m) => m.replace(/^(from: .*?)example/im, '$1exampl3'),
  'unsigned field added': (m) => `X-Added: yes\r\n${m}`,
  'ARC field added': (m) => `ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.org; s=rsa; t=1; b=AAAA\r\n${m}`,
};

async function engineResults(msg: Buffer, fastMax?: number): Promise<AuthResults> {
  const e = new InlineEngine({ resolver, minKeyBits: 1024, clientAddress: '192.0.2.1' }, fastMax);
  for (let i = 0; i < msg.length; i += 700) e.write(msg.subarray(i, i + 700));
  return e.results(Promise.resolve(undefined));
}

/** What Postern makes of the results: the field, the log line, the filter words, and per signature what DMARC reads. */
function seen(r: AuthResults): unknown {
  return {
    header: resultsHeader('mx.test', r),
    summary: summary(r),
    words: authWords(r),
    dkim: r.dkim.map((d) => ({ id: d.id, domain: d.signingDomain, selector: d.selector, status: d.status })),
  };
}

async function signedByMailauth(msg: Buffer, keys: { key: TestKey; selector: string }[], canon: string): Promise<Buffer> {
  const r = await dkimSign(msg, { canonicalization: canon, signatureData: keys.map((k) => ({ signingDomain: 'example.org', selector: k.selector, privateKey: k.key.pem, algorithm: k.key.alg === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256' })) });
  return Buffer.concat([Buffer.from(r.signatures ?? '', 'latin1'), msg]);
}

test('the fast path agrees with mailauth and dkimpy on many signed messages, valid and broken', async () => {
  const signed: { name: string; msg: Buffer; common: boolean }[] = [];
  const jobs: Parameters<typeof dkimpySignMany>[0][number][] = [];
  const jobNames: { name: string; msg: Buffer; common: boolean }[] = [];
  for (const [hi, h] of heads.entries()) {
    for (const [bi, b] of bodies.entries()) {
      const msg = message(h, b);
      for (const [hc, bc] of canons) {
        signed.push({ name: `mailauth rsa ${hc}/${bc} h${hi} b${bi}`, msg: await signedByMailauth(msg, [{ key: rsa, selector: 'rsa' }], `${hc}/${bc}`), common: true });
        for (const [key, sel] of [[rsa, 'rsa'], [ed, 'ed']] as const) {
          jobs.push({ msg, key, selector: sel, domain: 'example.org', canon: [hc, bc] });
          jobNames.push({ name: `dkimpy ${sel} ${hc}/${bc} h${hi} b${bi}`, msg, common: true });
        }
      }
      signed.push({ name: `mailauth rsa+ed h${hi} b${bi}`, msg: await signedByMailauth(msg, [{ key: rsa, selector: 'rsa' }, { key: ed, selector: 'ed' }], 'relaxed/relaxed'), common: true });
      signed.push({ name: `mailauth 1024-bit h${hi} b${bi}`, msg: await signedByMailauth(msg, [{ key: rsa1024, selector: 'short' }], 'relaxed/relaxed'), common: true });
      signed.push({ name: `mailauth t=y key h${hi} b${bi}`, msg: await signedByMailauth(msg, [{ key: rsa, selector: 'flag' }], 'relaxed/relaxed'), common: false });
      signed.push({ name: `mailauth ed without k= h${hi} b${bi}`, msg: await signedByMailauth(msg, [{ key: ed, selector: 'nok' }], 'relaxed/relaxed'), common: false });
      jobs.push({ msg, key: rsa, selector: 'rsa', domain: 'example.org', canon: ['relaxed', 'relaxed'], length: true });
      jobNames.push({ name: `dkimpy rsa l= h${hi} b${bi}`, msg, common: false });
    }
  }
  const sigs = dkimpySignMany(jobs);
  sigs.forEach((s, i) => {
    const j = jobNames[i] as { name: string; msg: Buffer; common: boolean };
    signed.push({ ...j, msg: Buffer.concat([Buffer.from(s, 'latin1'), j.msg]) });
  });
  // two signatures, the upper one broken: mailauth decides (a pass and a fail)
  const two = signed.find((s) => s.name.startsWith('mailauth rsa+ed')) as { msg: Buffer };
  signed.push({ name: 'two signatures, one broken', msg: Buffer.from(two.msg.toString('latin1').replace(/ b=[A-Za-z0-9+/]{4}/, ' b=AAAA'), 'latin1'), common: false });

  const cases: { name: string; msg: Buffer; common: boolean }[] = [];
  for (const s of signed) for (const [m, f] of Object.entries(mutations)) cases.push({ name: `${s.name}, ${m}`, msg: Buffer.from(f(s.msg.toString('latin1')), 'latin1'), common: s.common && (m === 'valid' || m === 'unsigned field added') });
  const dkimpy = dkimpyVerifyMany(cases.map((c) => c.msg), records);

  let fast = 0;
  for (const [i, c] of cases.entries()) {
    const viaMailauth = await engineResults(c.msg, 0);
    const withFast = await engineResults(c.msg);
    assert.deepEqual(seen(withFast), seen(viaMailauth), c.name);
    const f = await fastDkim(c.msg, resolver, 1024);
    const py = dkimpy[i] as boolean[];
    if (f !== undefined) {
      fast++;
      assert.ok(py.length > 0 && py.every((v) => v), `${c.name}: fast pass, dkimpy says ${JSON.stringify(py)}`);
      assert.ok(viaMailauth.dkim.every((d) => d.status.result === 'pass'), `${c.name}: fast pass, mailauth does not`);
    } else if (c.common) {
      assert.fail(`${c.name}: a common valid message left to mailauth (dkimpy ${JSON.stringify(py)})`);
    }
  }
  console.log(`the fast path answered ${fast} of ${cases.length} messages`);
  assert.ok(fast > 200, `the fast path answered ${fast} of ${cases.length}`);
});

test('unsigned mail: dkim=none from the fast path too, with the same authors for DMARC', async () => {
  for (const h of heads) {
    const msg = message(h, 'x\r\n');
    const f = await fastDkim(msg, resolver, 1024);
    assert.equal(f?.results[0]?.status.result, 'none');
    assert.deepEqual(seen(await engineResults(msg)), seen(await engineResults(msg, 0)));
  }
});

test('what the fast path leaves to mailauth: bare LF, no body separator, a key shorter than min-key-bits, DNS failure', async () => {
  const ok = await signedByMailauth(message(heads[0] as string, 'Hello\r\n'), [{ key: rsa, selector: 'rsa' }], 'relaxed/relaxed');
  assert.notEqual(await fastDkim(ok, resolver, 1024), undefined);
  assert.equal(await fastDkim(Buffer.from(ok.toString('latin1').replace('Hello\r\n', 'Hello\n')), resolver, 1024), undefined);
  assert.equal(await fastDkim(Buffer.from(ok.toString('latin1').replace('\r\n\r\n', '\r\n')), resolver, 1024), undefined);
  assert.equal(await fastDkim(ok, resolver, 4096), undefined);
  const failing: MailAuthResolver = async () => {
    throw Object.assign(new Error('queryTxt ETIMEOUT'), { code: 'ETIMEOUT' });
  };
  assert.equal(await fastDkim(ok, failing, 1024), undefined);
});

test('body canonicalization (RFC 6376 §3.4.3, §3.4.4 and its examples)', () => {
  assert.equal(canonBody('', 'simple'), '\r\n');
  assert.equal(canonBody('', 'relaxed'), '');
  assert.equal(canonBody('\r\n\r\n', 'simple'), '\r\n');
  assert.equal(canonBody(' \r\n\t\r\n', 'relaxed'), '');
  assert.equal(canonBody(' C \r\nD \t E\r\n\r\n\r\n', 'relaxed'), ' C\r\nD E\r\n');
  assert.equal(canonBody(' C \r\nD \t E\r\n\r\n\r\n', 'simple'), ' C \r\nD \t E\r\n');
});

test('relaxed canonicalization is the RFC rule (every run of SP/HTAB one SP) on 50,000 random strings of whitespace, CR, LF and bytes', () => {
  const rnd = prng(19);
  const alphabet = [' ', '\t', 'a', '\r\n', '\r', '\n', '\xa0', ':'];
  for (let i = 0; i < 50_000; i++) {
    let s = '';
    for (let n = Math.floor(rnd() * 14); n > 0; n--) s += alphabet[Math.floor(rnd() * alphabet.length)];
    const body = `${s}\r\n`;
    const b = body.replace(/[ \t]+\r\n/g, '\r\n').replace(/[ \t]+/g, ' ');
    let end = b.length;
    while (end >= 2 && b.endsWith('\r\n', end)) end -= 2;
    assert.equal(canonBody(body, 'relaxed'), end === 0 ? '' : `${b.slice(0, end)}\r\n`, JSON.stringify(body));
    const field = `X-F:${s}`;
    assert.equal(canonField(field, 'relaxed'), `x-f:${s.replace(/\r\n(?=[ \t])/g, '').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '')}`, JSON.stringify(field));
  }
});
