/*
 * params.test.ts — MAIL/RCPT ESMTP parameters (smtp/params.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseMailParams,
  parseRcptParams,
  type ExtensionsOn,
  type MailParams,
  type RcptParams,
} from '../../src/mail/params.js';

const ALL: ExtensionsOn = {
  size: true,
  maxSize: 1000,
  eightBitMime: true,
  smtputf8: true,
  dsn: true,
  chunking: true,
  auth: true,
};

const NONE: ExtensionsOn = {
  size: false,
  maxSize: 0,
  eightBitMime: false,
  smtputf8: false,
  dsn: false,
  chunking: false,
  auth: false,
};

interface Case<T> {
  readonly text: string;
  readonly ext?: Partial<ExtensionsOn>;
  readonly want?: T;
  readonly code?: number;
  readonly enhanced?: string;
}

const mail: Case<MailParams>[] = [
  { text: '', want: { smtputf8: false } },
  { text: '   ', want: { smtputf8: false } },
  { text: 'SIZE=1000', want: { smtputf8: false, size: 1000 } },
  { text: 'size=0', want: { smtputf8: false, size: 0 } },
  { text: 'SIZE=007', want: { smtputf8: false, size: 7 } },
  { text: 'SIZE=99999999999', ext: { maxSize: 0 }, want: { smtputf8: false, size: 99999999999 } },
  { text: 'BODY=7BIT', want: { smtputf8: false, body: '7BIT' } },
  { text: 'body=8bitmime', want: { smtputf8: false, body: '8BITMIME' } },
  { text: 'BODY=BinaryMIME', want: { smtputf8: false, body: 'BINARYMIME' } },
  { text: 'SMTPUTF8', want: { smtputf8: true } },
  { text: 'smtputf8', want: { smtputf8: true } },
  { text: 'RET=FULL', want: { smtputf8: false, ret: 'FULL' } },
  { text: 'ret=hdrs', want: { smtputf8: false, ret: 'HDRS' } },
  { text: 'ENVID=QQ314159', want: { smtputf8: false, envid: 'QQ314159' } },
  { text: 'ENVID=abc+2Bdef+3Dg+20h', want: { smtputf8: false, envid: 'abc+def=g h' } },
  { text: `ENVID=${'x'.repeat(100)}`, want: { smtputf8: false, envid: 'x'.repeat(100) } },
  { text: `ENVID=${'+2B'.repeat(100)}`, want: { smtputf8: false, envid: '+'.repeat(100) } },
  { text: 'AUTH=<>', want: { smtputf8: false, auth: '<>' } },
  { text: 'AUTH=e+2Bf@example.org', want: { smtputf8: false, auth: 'e+f@example.org' } },
  {
    text: '  SIZE=10   BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=QQ AUTH=<>  ',
    want: { smtputf8: true, size: 10, body: '8BITMIME', ret: 'FULL', envid: 'QQ', auth: '<>' },
  },
  // SIZE.
  { text: 'SIZE=1001', code: 552, enhanced: '5.3.4' },
  { text: 'SIZE=99999999999999999999', code: 552, enhanced: '5.3.4' },
  { text: 'SIZE=99999999999999999999', ext: { maxSize: 0 }, code: 552, enhanced: '5.3.4' },
  { text: 'SIZE=123456789012345678901', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=abc', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=-1', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=+1', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=1.5', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=1e3', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=0x10', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=1 SIZE=1', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=1 size=2', code: 501, enhanced: '5.5.4' },
  // BODY.
  { text: 'BODY=8BIT', code: 501, enhanced: '5.5.4' },
  { text: 'BODY=', code: 501, enhanced: '5.5.4' },
  { text: 'BODY', code: 501, enhanced: '5.5.4' },
  { text: 'BODY=7BIT BODY=8BITMIME', code: 501, enhanced: '5.5.4' },
  { text: 'BODY=BINARYMIME', ext: { chunking: false }, code: 555, enhanced: '5.5.4' },
  // SMTPUTF8.
  { text: 'SMTPUTF8=yes', code: 501, enhanced: '5.5.4' },
  { text: 'SMTPUTF8 SMTPUTF8', code: 501, enhanced: '5.5.4' },
  // RET.
  { text: 'RET=ALL', code: 501, enhanced: '5.5.4' },
  { text: 'RET', code: 501, enhanced: '5.5.4' },
  { text: 'RET=FULL RET=HDRS', code: 501, enhanced: '5.5.4' },
  // ENVID: xtext, printable ASCII, at most 100 characters, never CR/LF/NUL.
  { text: `ENVID=${'x'.repeat(101)}`, code: 501, enhanced: '5.5.4' },
  { text: `ENVID=${'+2B'.repeat(101)}`, code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=a+0Db', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=a+0A', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=+00', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=+09', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=+7F', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=+C3+A9', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=é', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=é', ext: { smtputf8: false }, code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=a+2b', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=abc+', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=a ENVID=b', code: 501, enhanced: '5.5.4' },
  // AUTH.
  { text: 'AUTH=a+0D+0Ab', code: 501, enhanced: '5.5.4' },
  { text: 'AUTH=+00', code: 501, enhanced: '5.5.4' },
  { text: 'AUTH=+C2+85', code: 501, enhanced: '5.5.4' },
  { text: 'AUTH=a+zz', code: 501, enhanced: '5.5.4' },
  { text: 'AUTH', code: 501, enhanced: '5.5.4' },
  { text: 'AUTH=<> AUTH=<>', code: 501, enhanced: '5.5.4' },
  // Syntax of the parameter list.
  { text: '=x', code: 501, enhanced: '5.5.4' },
  { text: '-SIZE=1', code: 501, enhanced: '5.5.4' },
  { text: 'SI_ZE=1', code: 501, enhanced: '5.5.4' },
  { text: '__proto__=1', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=1=2', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=1\r', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=1\tBODY=7BIT', code: 501, enhanced: '5.5.4' },
  { text: 'ENVID=a\0b', code: 501, enhanced: '5.5.4' },
  { text: '<c@d>', code: 501, enhanced: '5.5.4' },
  { text: 'SIZE=10 <c@d>', code: 501, enhanced: '5.5.4' },
  // Unknown parameters, or extensions that are off: 555 5.5.4.
  { text: 'FOO=bar', code: 555, enhanced: '5.5.4' },
  { text: 'FOO', code: 555, enhanced: '5.5.4' },
  { text: 'X-FOO=1', code: 555, enhanced: '5.5.4' },
  { text: 'constructor=1', code: 555, enhanced: '5.5.4' },
  { text: 'toString', code: 555, enhanced: '5.5.4' },
  { text: 'SIZE=10 FOO=bar', code: 555, enhanced: '5.5.4' },
  { text: 'NOTIFY=NEVER', code: 555, enhanced: '5.5.4' },
  { text: 'ORCPT=rfc822;a@b', code: 555, enhanced: '5.5.4' },
  { text: 'SIZE=10', ext: { size: false }, code: 555, enhanced: '5.5.4' },
  { text: 'BODY=8BITMIME', ext: { eightBitMime: false }, code: 555, enhanced: '5.5.4' },
  { text: 'SMTPUTF8', ext: { smtputf8: false }, code: 555, enhanced: '5.5.4' },
  { text: 'RET=FULL', ext: { dsn: false }, code: 555, enhanced: '5.5.4' },
  { text: 'ENVID=x', ext: { dsn: false }, code: 555, enhanced: '5.5.4' },
  { text: 'AUTH=<>', ext: { auth: false }, code: 555, enhanced: '5.5.4' },
];

const rcpt: Case<RcptParams>[] = [
  { text: '', want: {} },
  { text: 'NOTIFY=NEVER', want: { notify: 'NEVER' } },
  { text: 'notify=never', want: { notify: 'NEVER' } },
  { text: 'NOTIFY=SUCCESS', want: { notify: ['SUCCESS'] } },
  { text: 'NOTIFY=delay,Failure', want: { notify: ['DELAY', 'FAILURE'] } },
  { text: 'NOTIFY=SUCCESS,FAILURE,DELAY', want: { notify: ['SUCCESS', 'FAILURE', 'DELAY'] } },
  { text: 'ORCPT=rfc822;a@b', want: { orcpt: 'rfc822;a@b' } },
  { text: 'ORCPT=RFC822;A+2Bb@C', want: { orcpt: 'rfc822;A+b@C' } },
  { text: 'ORCPT=rfc822;"a+20b"@c', want: { orcpt: 'rfc822;"a b"@c' } },
  { text: 'ORCPT=x400;c=us', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=x400;c+3Dus', want: { orcpt: 'x400;c=us' } },
  { text: 'ORCPT=utf-8;j\\x{F6}@example.org', want: { orcpt: 'utf-8;jö@example.org' } },
  { text: 'ORCPT=UTF-8;jö@example.org', want: { orcpt: 'utf-8;jö@example.org' } },
  { text: 'ORCPT=utf-8;jö@example.org', ext: { smtputf8: false }, code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=utf-8;j\\x{F6}@example.org', ext: { smtputf8: false }, want: { orcpt: 'utf-8;jö@example.org' } },
  { text: `ORCPT=rfc822;${'a'.repeat(493)}`, want: { orcpt: `rfc822;${'a'.repeat(493)}` } },
  {
    text: 'NOTIFY=FAILURE,DELAY ORCPT=rfc822;a@b',
    want: { notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;a@b' },
  },
  // NOTIFY.
  { text: 'NOTIFY=NEVER,SUCCESS', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY=SUCCESS,NEVER', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY=NEVER,NEVER', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY=SUCCESS,SUCCESS', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY=success,SUCCESS', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY=SUCCESS,', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY=,SUCCESS', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY=SUCCESS,,DELAY', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY=ALWAYS', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY=', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY', code: 501, enhanced: '5.5.4' },
  { text: 'NOTIFY=NEVER NOTIFY=NEVER', code: 501, enhanced: '5.5.4' },
  // ORCPT.
  { text: 'ORCPT=a@b', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=;a@b', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=rfc822;', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=rf(c;a@b', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=rfc822;a+0D+0Ab', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=rfc822;a+00b', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=rfc822;a+2bb', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=rfc822;a+C3+A9', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=rfc822;jö@b', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT', code: 501, enhanced: '5.5.4' },
  { text: `ORCPT=rfc822;${'a'.repeat(494)}`, code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=utf-8;\\x{61}', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=utf-8;a\\x{D}b', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=utf-8;a\\x{85}b', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=utf-8;a+0Db', code: 501, enhanced: '5.5.4' },
  { text: 'ORCPT=rfc822;a@b ORCPT=rfc822;c@d', code: 501, enhanced: '5.5.4' },
  // Unknown, or the extension is off.
  { text: 'SIZE=10', code: 555, enhanced: '5.5.4' },
  { text: 'BODY=8BITMIME', code: 555, enhanced: '5.5.4' },
  { text: 'FOO=bar', code: 555, enhanced: '5.5.4' },
  { text: 'NOTIFY=NEVER', ext: { dsn: false }, code: 555, enhanced: '5.5.4' },
  { text: 'ORCPT=rfc822;a@b', ext: { dsn: false }, code: 555, enhanced: '5.5.4' },
  { text: 'NOTIFY=NEVER FOO', code: 555, enhanced: '5.5.4' },
];

function check<T>(name: string, cases: Case<T>[], parse: (text: string, ext: ExtensionsOn) => { ok: true; value: T } | { ok: false; reply: { code: number; enhanced?: string; lines: readonly string[] } }): void {
  for (const c of cases) {
    const r = parse(c.text, { ...ALL, ...c.ext });
    const label = `${name} ${JSON.stringify(c.text.length > 60 ? c.text.slice(0, 60) + '…' : c.text)}`;
    if (c.want !== undefined) {
      assert.ok(r.ok, `${label} refused: ${r.ok ? '' : r.reply.lines.join(' ')}`);
      assert.deepEqual(r.value, c.want, label);
    } else {
      assert.ok(!r.ok, `${label} accepted`);
      assert.equal(r.reply.code, c.code, `${label}: ${r.reply.lines.join(' ')}`);
      assert.equal(r.reply.enhanced, c.enhanced, `${label}: ${r.reply.lines.join(' ')}`);
    }
  }
}

test('MAIL parameters', () => {
  check('MAIL', mail, parseMailParams);
});

test('RCPT parameters', () => {
  check('RCPT', rcpt, parseRcptParams);
});

test('SIZE over the maximum gets the RFC 1870 text', () => {
  const r = parseMailParams('SIZE=1001', ALL);
  assert.ok(!r.ok);
  assert.deepEqual(r.reply.lines, ['Message size exceeds fixed maximum message size']);
});

test('with every extension off, any parameter is 555', () => {
  for (const text of ['SIZE=1', 'BODY=7BIT', 'SMTPUTF8', 'RET=FULL', 'ENVID=x', 'AUTH=<>']) {
    const r = parseMailParams(text, NONE);
    assert.ok(!r.ok && r.reply.code === 555, text);
  }
  for (const text of ['NOTIFY=NEVER', 'ORCPT=rfc822;a@b']) {
    const r = parseRcptParams(text, NONE);
    assert.ok(!r.ok && r.reply.code === 555, text);
  }
  assert.deepEqual(parseMailParams('', NONE), { ok: true, value: { smtputf8: false } });
});

test('decoded values never carry CR, LF or NUL', () => {
  const nasty = ['+0D', '+0A', '+00', '+0D+0A', 'a+0D+0AMAIL+20FROM:<x>'];
  for (const n of nasty) {
    for (const text of [`ENVID=${n}`, `AUTH=${n}`]) assert.ok(!parseMailParams(text, ALL).ok, text);
    for (const text of [`ORCPT=rfc822;${n}`, `ORCPT=x400;${n}`]) assert.ok(!parseRcptParams(text, ALL).ok, text);
  }
});
