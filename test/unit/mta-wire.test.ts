/*
 * test/unit/mta-wire.test.ts — the relay client's pure parts: the reply
 * parser (fed whole, at every split point and byte by byte), EHLO
 * capabilities, the content encoder (CRLF, dot-stuffing, folding: the
 * SMTP smuggling table at every split point) and the MAIL/RCPT lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyParser, type ParseEvent, MAX_LINES } from '../../src/mta/reply-parser.js';
import { parseEhlo } from '../../src/mta/ehlo.js';
import { BodyEncoder } from '../../src/mta/encoder.js';
import { mailCommand, rcptCommand, rewriteSender, orcptParam, wantsRelayedDsn } from '../../src/mta/commands.js';
import { oneLine } from '../../src/delivery/agent.js';
import type { Envelope, EnvelopeRecipient } from '../../src/mail/envelope.js';
import { bytes, cuts, show } from './wire-harness.js';

function parseAll(chunks: Buffer[]): string[] {
  const p = new ReplyParser();
  const out: string[] = [];
  const drain = (): void => {
    for (let e: ParseEvent | null = p.next(); e !== null; e = p.next()) {
      if (e.kind === 'error') {
        out.push(`error: ${e.message}`);
        return;
      }
      out.push(`${e.reply.code}${e.reply.enhanced ? ` [${e.reply.enhanced}]` : ''} ${JSON.stringify(e.reply.lines)}`);
    }
  };
  for (const c of chunks) {
    p.push(c);
    drain();
    if (out.at(-1)?.startsWith('error')) break;
  }
  return out;
}

test('reply parser: single, multi-line, enhanced codes, bare LF, every split point', () => {
  const input = bytes('220 mx.test ESMTP\r\n250-mx.test hello\r\n250-PIPELINING\r\n250 SIZE 1000\r\n550 5.1.1 <x@y>: no\r\n451 4.7.1 later\n354\r\n250 2.0.0\r\n');
  const want = [
    '220 ["mx.test ESMTP"]',
    '250 ["mx.test hello","PIPELINING","SIZE 1000"]',
    '550 [5.1.1] ["5.1.1 <x@y>: no"]',
    '451 [4.7.1] ["4.7.1 later"]',
    '354 [""]',
    '250 [2.0.0] ["2.0.0"]',
  ];
  for (const c of cuts(input)) assert.deepEqual(parseAll(c.chunks), want, c.name);
});

test('reply parser: an enhanced code of another class is not taken', () => {
  assert.deepEqual(parseAll([bytes('550 2.0.0 odd\r\n')]), ['550 ["2.0.0 odd"]']);
});

test('reply parser: malformed lines and code changes are protocol errors', () => {
  assert.match(parseAll([bytes('hello\r\n')])[0] ?? '', /^error: malformed/);
  assert.match(parseAll([bytes('250-a\r\n550 b\r\n')])[0] ?? '', /^error: reply code changed/);
  assert.match(parseAll([bytes('25 short\r\n')])[0] ?? '', /^error/);
  assert.match(parseAll([bytes('650 x\r\n')])[0] ?? '', /^error/);
});

test('reply parser: bounded — endless lines and endless multi-line replies', () => {
  const long = parseAll([bytes(`250 ${'x'.repeat(100_000)}\r\n250 next\r\n`)]);
  assert.equal(long.length, 2);
  assert.ok((long[0] ?? '').length < 1100);
  assert.equal(long[1], '250 ["next"]');
  const many = parseAll([bytes('250-x\r\n'.repeat(MAX_LINES + 5) + '250 end\r\n')]);
  assert.match(many[0] ?? '', /^error: multi-line reply longer/);
});

test('a hostile multi-line reply is recorded as one clean bounded line', () => {
  const p = new ReplyParser();
  p.push(bytes('550-5.1.1 first\r\n550-\x1b[31mred\r\n550-evil\rinjected: yes\r\n550 5.1.1 last\x00\r\n'));
  const e = p.next();
  assert.ok(e?.kind === 'reply');
  const text = oneLine(`550 ${e.reply.lines.join(' ')}`);
  assert.doesNotMatch(text, /[\x00-\x1f\x7f]/);
  assert.match(text, /^550 5\.1\.1 first/);
  assert.ok(oneLine('x'.repeat(10_000)).length <= 512);
});

test('EHLO capabilities', () => {
  const caps = parseEhlo({ code: 250, lines: ['mx.test hi', 'PIPELINING', 'size 35882577', 'AUTH=LOGIN', 'AUTH PLAIN LOGIN CRAM-MD5', '8BITMIME', 'DSN', 'bad keyword!', 'STARTTLS'] });
  assert.equal(caps.maxSize, 35882577);
  assert.deepEqual([...caps.auth].sort(), ['CRAM-MD5', 'LOGIN', 'PLAIN']);
  for (const k of ['PIPELINING', 'SIZE', '8BITMIME', 'DSN', 'STARTTLS', 'AUTH']) assert.ok(caps.ext.has(k), k);
  assert.equal(parseEhlo({ code: 250, lines: ['x', 'SIZE'] }).maxSize, 0);
});

function encode(chunks: Buffer[], stuff: boolean, maxLine?: number): string {
  const e = new BodyEncoder({ stuff, ...(maxLine !== undefined ? { maxLine } : {}) });
  const out = chunks.map((c) => e.push(c));
  out.push(e.end());
  return show(out);
}

/** Stored content → what goes on the wire before the final ".\r\n" (DATA). */
const STUFFING: readonly [string, string][] = [
  ['', ''],
  ['a\r\n', 'a\r\n'],
  ['a', 'a\r\n'],
  ['.\r\n', '..\r\n'],
  ['.a\r\n..b\r\n', '..a\r\n...b\r\n'],
  ['x\r\n.\r\ny\r\n', 'x\r\n..\r\ny\r\n'],
  // SMTP smuggling shapes: every bare CR/LF becomes CRLF, so the dot line is stuffed.
  ['x\n.\ny\r\n', 'x\r\n..\r\ny\r\n'],
  ['x\r.\ry\r\n', 'x\r\n..\r\ny\r\n'],
  ['x\r\n.\ny\r\n', 'x\r\n..\r\ny\r\n'],
  ['x\n.\r\ny\r\n', 'x\r\n..\r\ny\r\n'],
  ['x\r\n.\r', 'x\r\n..\r\n'],
  ['x\r', 'x\r\n'],
  ['\r\r\n\n', '\r\n\r\n\r\n'],
  ['a.b\r\n . \r\n', 'a.b\r\n . \r\n'],
  ['x\r\n\x00.\r\n', 'x\r\n\x00.\r\n'],
];

test('encoder: CRLF everywhere and exact dot-stuffing, at every split point', () => {
  for (const [input, want] of STUFFING) {
    for (const c of cuts(bytes(input))) assert.equal(encode(c.chunks, true), want, `${JSON.stringify(input)} ${c.name}`);
  }
});

test('encoder: BDAT content is normalized but not stuffed', () => {
  assert.equal(encode([bytes('.a\n.\r\n')], false), '.a\r\n.\r\n');
});

test('encoder: lines longer than the limit are folded with CRLF SP, never split inside UTF-8', () => {
  for (const c of cuts(bytes('abcdefghij\r\n'))) assert.equal(encode(c.chunks, true, 4), 'abcd\r\n efg\r\n hij\r\n', c.name);
  assert.equal(encode([bytes('.abcdef\r\n')], true, 4), '..ab\r\n cde\r\n f\r\n');
  const utf = Buffer.from('aéé\r\n', 'utf8'); // a c3 a9 c3 a9
  const out = new BodyEncoder({ stuff: true, maxLine: 4 });
  const got = Buffer.concat([out.push(utf), out.end()]);
  assert.equal(got.toString('utf8'), 'aé\r\n é\r\n');
  // The real limit: 998 octets.
  const big = encode([bytes(`${'y'.repeat(2500)}\r\n`)], true);
  const lines = big.split('\r\n').filter((l) => l !== '');
  assert.ok(lines.every((l) => l.length <= 998));
  assert.equal(lines.join('').replace(/ /g, ''), 'y'.repeat(2500));
});

test('encoder output never has a bare CR or LF (random input)', () => {
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const alphabet = ['\r', '\n', '.', 'a', ' ', '\r\n', '\x00'];
  for (let k = 0; k < 300; k++) {
    let s = '';
    for (let i = 0; i < 40; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
    const out = encode([bytes(s.slice(0, 13)), bytes(s.slice(13))], true, 20) + '.\r\n';
    assert.doesNotMatch(out.replace(/\r\n/g, ''), /[\r\n]/, JSON.stringify(s));
    // The only line that is exactly "." is the terminator.
    const lines = out.split('\r\n');
    assert.equal(lines.filter((l) => l === '.').length, 1, JSON.stringify(s));
    assert.equal(lines.at(-2), '.');
  }
});

const ENV: Envelope = {
  version: 1,
  msgid: '0badcafe',
  sender: 'alice@example.org',
  recipients: [],
  body: '8BITMIME',
  smtputf8: false,
  arrival: 0,
  client: { address: '127.0.0.1', port: 1, proto: 'ESMTP', listener: '127.0.0.1:25' },
  size: 1234,
  ret: 'HDRS',
  envid: 'id+1=2',
};
const RCPT: EnvelopeRecipient = { evpid: '0badcafe00000001', address: 'bob@example.net', action: 'relay', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;Bob+x@example.net' };
const FULL = parseEhlo({ code: 250, lines: ['x', 'SIZE 100000', '8BITMIME', 'DSN', 'SMTPUTF8'] });
const BARE = parseEhlo({ code: 250, lines: ['x'] });

test('MAIL and RCPT lines carry only the parameters the server offered', () => {
  assert.equal(mailCommand(ENV, FULL, { sender: ENV.sender }), 'MAIL FROM:<alice@example.org> SIZE=1234 BODY=8BITMIME RET=HDRS ENVID=id+2B1+3D2');
  assert.equal(mailCommand(ENV, BARE, { sender: ENV.sender }), 'MAIL FROM:<alice@example.org>');
  assert.equal(mailCommand({ ...ENV, smtputf8: true }, FULL, { sender: '' }), 'MAIL FROM:<> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+3D2');
  assert.equal(rcptCommand(RCPT, FULL), 'RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2Bx@example.net');
  assert.equal(rcptCommand(RCPT, BARE), 'RCPT TO:<bob@example.net>');
  assert.equal(rcptCommand({ ...RCPT, notify: 'NEVER', orcpt: undefined }, FULL), 'RCPT TO:<bob@example.net> NOTIFY=NEVER');
  assert.equal(orcptParam('utf-8;用户@例子.test'), 'utf-8;\\x{7528}\\x{6237}@\\x{4F8B}\\x{5B50}.test');
  assert.equal(wantsRelayedDsn(RCPT, BARE), true);
  assert.equal(wantsRelayedDsn(RCPT, FULL), false);
  assert.equal(wantsRelayedDsn({ ...RCPT, notify: ['FAILURE'] }, BARE), false);
});

test('mail-from / as rewriting of the sender', () => {
  assert.equal(rewriteSender('alice@a.test', undefined), 'alice@a.test');
  assert.equal(rewriteSender('alice@a.test', 'relay@b.test'), 'relay@b.test');
  assert.equal(rewriteSender('alice@a.test', '@b.test'), 'alice@b.test');
  assert.equal(rewriteSender('alice@a.test', 'bounce'), 'bounce@a.test');
  assert.equal(rewriteSender('alice@a.test', 'bounce@'), 'bounce@a.test');
  assert.equal(rewriteSender('', 'relay@b.test'), '');
});
