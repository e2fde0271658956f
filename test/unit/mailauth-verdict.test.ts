/*
 * From results to what happens to a received message
 * (mailauth/verify/verdict.ts): a table of cases, and the header and log
 * fields made from them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DKIMResult, DMARCResult, SPFResult } from 'mailauth';
import { decide, resultsHeader, summary, type AuthResults } from '../../src/mailauth/verify/verdict.js';
import type { MailAuthVerifyOptions } from '../../src/config/mailauth-options.js';

const TAG: MailAuthVerifyOptions = { spfReject: false, dmarcReject: false, quarantine: 'tag', minKeyBits: 1024 };
const ENFORCE: MailAuthVerifyOptions = { ...TAG, dmarcReject: true, quarantine: 'hold' };

const spf = (result: string): SPFResult => ({ domain: 'example.org', 'client-ip': '192.0.2.1', status: { result }, header: '', info: `spf=${result} smtp.mailfrom=example.org` }) as SPFResult;
const dkim = (result: string): DKIMResult => ({ signingDomain: 'example.org', status: { result }, info: `dkim=${result} header.i=@example.org` }) as unknown as DKIMResult;
const dmarc = (result: string, policy: string): DMARCResult => ({ domain: 'example.org', policy, p: policy, sp: policy, testMode: false, status: { result, header: { from: 'example.org' } }, alignment: { spf: { strict: false }, dkim: { strict: false } }, info: `dmarc=${result} header.from=example.org` }) as unknown as DMARCResult;
const results = (s: string, k: string, dm?: DMARCResult, extra: Partial<AuthResults> = {}): AuthResults => ({ spf: spf(s), dkim: [dkim(k)], arc: undefined, dmarc: dm, ...extra });

test('the verdict table', () => {
  const cases: [string, AuthResults, MailAuthVerifyOptions, string][] = [
    ['pass', results('pass', 'pass', dmarc('pass', 'reject')), ENFORCE, 'accept'],
    ['fail p=reject, enforced', results('fail', 'fail', dmarc('fail', 'reject')), ENFORCE, 'refuse 550 5.7.1'],
    ['fail p=reject, only tagged', results('fail', 'fail', dmarc('fail', 'reject')), TAG, 'accept'],
    ['fail p=reject, hold without reject', results('fail', 'fail', dmarc('fail', 'reject')), { ...TAG, quarantine: 'hold' }, 'hold'],
    ['fail p=quarantine, hold', results('fail', 'none', dmarc('fail', 'quarantine')), ENFORCE, 'hold'],
    ['fail p=none', results('fail', 'none', dmarc('fail', 'none')), ENFORCE, 'accept'],
    ['fail p=reject but DKIM temperror: might have passed', results('fail', 'temperror', dmarc('fail', 'reject')), ENFORCE, 'refuse 451 4.7.0'],
    ['fail p=quarantine but SPF temperror', results('temperror', 'none', dmarc('fail', 'quarantine')), ENFORCE, 'refuse 451 4.7.0'],
    ['dmarc temperror, enforced', results('pass', 'none', dmarc('temperror', 'none')), ENFORCE, 'refuse 451 4.7.0'],
    ['dmarc temperror, only tagged', results('pass', 'none', dmarc('temperror', 'none')), TAG, 'accept'],
    ['checks incomplete, enforced', { spf: undefined, dkim: [], arc: undefined, dmarc: undefined, incomplete: true, note: 'worker failed' }, ENFORCE, 'refuse 451 4.7.0'],
    ['checks incomplete, only tagged', { spf: undefined, dkim: [], arc: undefined, dmarc: undefined, incomplete: true }, TAG, 'accept'],
    ['no DMARC record', results('softfail', 'none'), ENFORCE, 'accept'],
  ];
  for (const [name, r, o, want] of cases) {
    const v = decide(r, o);
    const got = v.kind === 'refuse' ? `refuse ${v.reply.code} ${v.reply.enhanced}` : v.kind;
    assert.equal(got, want, name);
  }
});

test('the Authentication-Results field and the log fields', () => {
  const r = results('pass', 'pass', dmarc('pass', 'reject'));
  assert.equal(resultsHeader('mx.example.net', r), 'Authentication-Results: mx.example.net;\r\n\tdkim=pass header.i=@example.org;\r\n\tspf=pass smtp.mailfrom=example.org;\r\n\tdmarc=pass header.from=example.org\r\n');
  assert.equal(resultsHeader('mx.example.net', { spf: undefined, dkim: [], arc: undefined, dmarc: undefined }), 'Authentication-Results: mx.example.net;\r\n\tnone\r\n');
  assert.deepEqual(summary(r), { spf: 'pass:example.org', dkim: 'pass:example.org', dmarc: 'pass:p=reject', arc: 'none' });
  // Text from outside never breaks the field's lines.
  const hostile = { ...r, spf: { ...spf('fail'), info: 'spf=fail (evil\r\nX-Injected: yes) smtp.mailfrom=example.org' } as SPFResult };
  assert.doesNotMatch(resultsHeader('mx.example.net', hostile), /\r\nX-Injected/);
});
