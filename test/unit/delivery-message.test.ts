/*
 * test/unit/delivery-message.test.ts — LF conversion, mboxrd quoting, the
 * header scan and the whole-message read, the From_ line; LMTP replies and
 * dot-stuffing. Every streaming encoder is fed its input cut at every split
 * point.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { DotStuffer, dotStuff, parseDestination, ReplyParser, LmtpProtocolError, type LmtpReply } from '../../src/delivery/local/lmtp-wire.js';
import { asctime, fromLine } from '../../src/delivery/local/mbox.js';
import { deliveryHeaders, headerFacts, headerFactsIn, LfFormatter, readUpTo, scanHeader, toLf } from '../../src/delivery/local/message.js';
import { wholeBodyStream } from '../../src/spool/whole-body.js';
import { exitOutcome } from '../../src/delivery/local/mda.js';

function atEverySplit(input: Buffer, make: () => { push(b: Buffer): Buffer[]; end(): Buffer[] }, expected: Buffer): void {
  for (let cut = 0; cut <= input.length; cut++) {
    for (let cut2 = cut; cut2 <= input.length; cut2 += 3) {
      const f = make();
      const out = Buffer.concat([...f.push(input.subarray(0, cut)), ...f.push(input.subarray(cut, cut2)), ...f.push(input.subarray(cut2)), ...f.end()]);
      assert.equal(out.toString('latin1'), expected.toString('latin1'), `cut at ${cut}/${cut2}`);
    }
  }
  // and one byte at a time
  const f = make();
  const parts: Buffer[] = [];
  for (const b of input) parts.push(...f.push(Buffer.from([b])));
  parts.push(...f.end());
  assert.equal(Buffer.concat(parts).toString('latin1'), expected.toString('latin1'), 'byte by byte');
}

describe('LfFormatter', () => {
  const cases: [string, string, string][] = [
    // input, LF only, mboxrd
    ['a\r\nb\r\n', 'a\nb\n', 'a\nb\n'],
    ['From me\r\n', 'From me\n', '>From me\n'],
    ['x\r\nFrom here\r\n>From there\r\n>>From x\r\nFrom\r\nFromage\r\n From \r\n', 'x\nFrom here\n>From there\n>>From x\nFrom\nFromage\n From \n', 'x\n>From here\n>>From there\n>>>From x\nFrom\nFromage\n From \n'],
    ['no end', 'no end\n', 'no end\n'],
    ['lone\rcr\r\n', 'lone\rcr\n', 'lone\rcr\n'],
    ['ends in cr\r', 'ends in cr\r\n', 'ends in cr\r\n'],
    ['\r\n\r\nFrom ', '\n\nFrom \n', '\n\n>From \n'],
    ['>>>', '>>>\n', '>>>\n'],
    ['From', 'From\n', 'From\n'],
    ['', '', ''],
  ];
  for (const [input, lf, rd] of cases) {
    it(`converts ${JSON.stringify(input)}`, () => {
      atEverySplit(Buffer.from(input, 'latin1'), () => new LfFormatter(false), Buffer.from(lf, 'latin1'));
      atEverySplit(Buffer.from(input, 'latin1'), () => new LfFormatter(true), Buffer.from(rd, 'latin1'));
    });
  }

  it('drops exactly the CR of each CR LF in random content, at every split (no quoting)', () => {
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const alphabet = Buffer.from('\r\n\r\nab.>F\0', 'latin1');
    for (let round = 0; round < 30; round++) {
      const input = Buffer.from(Array.from({ length: 1 + rnd(40) }, () => alphabet[rnd(alphabet.length)] as number));
      let expected = input.toString('latin1').replace(/\r\n/g, '\n');
      if (expected !== '' && !expected.endsWith('\n')) expected += '\n';
      atEverySplit(input, () => new LfFormatter(false), Buffer.from(expected, 'latin1'));
    }
  });

  it('keeps binary bytes', () => {
    const b = Buffer.from([0, 1, 0xff, 0x0d, 0x0a, 0x80]);
    assert.deepEqual([...toLf(b, true)], [0, 1, 0xff, 0x0a, 0x80, 0x0a]);
  });
});

describe('header facts', () => {
  it('finds Delivered-To and spam marks in the header only', () => {
    const f = headerFacts('Subject: x\r\nDelivered-To: Bob@Example.org \r\nX-Spam: Yes\r\n\r\nDelivered-To: body@x\r\n');
    assert.deepEqual(f, { deliveredTo: ['bob@example.org'], spam: true });
    assert.deepEqual(headerFacts('X-Spam-Flag: YES\r\nX-Spam: no\r\n'), { deliveredTo: [], spam: true });
    assert.deepEqual(headerFacts('X-Spam-Status: yes\r\n'), { deliveredTo: [], spam: false });
    assert.deepEqual(headerFacts('Delivered-To:\r\n a@b\r\n'), { deliveredTo: ['a@b'], spam: false });
  });

  it('stops reading at the end of the header', async () => {
    let pulled = 0;
    const body = Readable.from(
      (function* () {
        for (const c of ['Delivered-To: a@b\r\n', 'X-Spam: yes\r\n\r\n', 'x'.repeat(1000), 'y'.repeat(1000)]) {
          pulled++;
          yield Buffer.from(c);
        }
      })(),
    );
    assert.deepEqual(await scanHeader(body), { deliveredTo: ['a@b'], spam: true });
    assert.ok(pulled <= 3);
  });

  it('scans a body still in the spool\'s memory in place, with the same facts as a stream', async () => {
    const cases = [
      ['Delivered-To: a@b\r\n', 'X-Spam: yes\r\n\r\nDelivered-To: c@d\r\n'],
      ['\r\nDelivered-To: a@b\r\n'],
      ['Delivered-To: a@b\r\nno end of header'],
    ];
    for (const pieces of cases) {
      const bufs = pieces.map((p) => Buffer.from(p));
      const whole = wholeBodyStream(bufs);
      assert.deepEqual(await scanHeader(whole), await scanHeader(Readable.from(bufs)), pieces.join(''));
      assert.equal(whole.destroyed, true);
    }
  });

  it('finds the facts in the first bytes, or says the header goes on', () => {
    assert.deepEqual(headerFactsIn(Buffer.from('X-Spam: yes\r\n\r\nbody'), false), { deliveredTo: [], spam: true });
    assert.equal(headerFactsIn(Buffer.from('X-Spam: yes\r\nSubject: x'), false), undefined);
    assert.deepEqual(headerFactsIn(Buffer.from('X-Spam: yes\r\nSubject: x'), true), { deliveredTo: [], spam: true });
    assert.deepEqual(headerFactsIn(Buffer.from('\r\nX-Spam: yes\r\n'), false), { deliveredTo: [], spam: false });
  });

  it('reads a small message whole, once, and only the start of a large one', async () => {
    const parts = ['Delivered-To: a@b\r\n\r\n', 'x'.repeat(100), 'y'.repeat(100)].map((c) => Buffer.from(c));
    const small = await readUpTo(Readable.from(parts), 1000);
    assert.equal(small.whole, true);
    assert.equal(small.bytes.toString(), parts.join(''));
    let pulled = 0;
    const large = await readUpTo(
      Readable.from(
        (function* () {
          for (const p of parts) {
            pulled++;
            yield p;
          }
        })(),
      ),
      30,
    );
    assert.equal(large.whole, false);
    assert.equal(pulled, 2);
    // A body the spool holds whole is taken without going through the stream.
    const held = await readUpTo(wholeBodyStream(parts), 1000);
    assert.equal(held.whole, true);
    assert.equal(held.bytes.toString(), parts.join(''));
    const one = await readUpTo(wholeBodyStream([parts[1] as Buffer]), 1000);
    assert.equal(one.bytes, parts[1], 'one piece is not copied');
  });

  it('writes the delivery headers without letting a value start a line', () => {
    assert.equal(deliveryHeaders('a@b', 'c@d'), 'Return-Path: <a@b>\nDelivered-To: c@d\n');
    assert.equal(deliveryHeaders('', 'c@d'), 'Delivered-To: c@d\n');
    assert.equal(deliveryHeaders('a\r\nX: y@b', 'c\n@d'), 'Return-Path: <aX: y@b>\nDelivered-To: c@d\n');
  });
});

describe('From_ line', () => {
  it('is asctime in local time with the sender as one word', () => {
    const d = new Date(2024, 10, 4, 8, 5, 9);
    assert.equal(asctime(d), 'Mon Nov  4 08:05:09 2024');
    assert.equal(fromLine('', d), 'From MAILER-DAEMON Mon Nov  4 08:05:09 2024');
    assert.equal(fromLine('"a b"@x', d), 'From "a_b"@x Mon Nov  4 08:05:09 2024');
  });
});

describe('mda exit codes', () => {
  const table: [number | null, string | null, string][] = [
    [0, null, 'ok 2.0.0'],
    [75, null, 'tempfail 4.3.0'],
    [71, null, 'tempfail 4.3.0'],
    [67, null, 'permfail 5.1.1'],
    [1, null, 'permfail 5.3.0'],
    [77, null, 'permfail 5.3.0'],
    [null, 'SIGSEGV', 'permfail 5.3.0'],
  ];
  for (const [code, sig, want] of table) {
    it(`${code ?? sig} → ${want}`, () => {
      const o = exitOutcome('mda', code, sig, 'some output\n');
      assert.equal(`${o.status} ${o.enhanced}`, want);
      if (code !== 0) assert.match(o.detail, /some output/);
    });
  }
  it('names sysexits', () => {
    assert.equal(exitOutcome('mda', 75, null, '').detail, 'mda: exited 75 (EX_TEMPFAIL)');
  });
});

describe('LMTP replies', () => {
  function parseAll(text: string, step: number): LmtpReply[] {
    const p = new ReplyParser();
    const out: LmtpReply[] = [];
    for (let i = 0; i < text.length; i += step) {
      p.push(Buffer.from(text.slice(i, i + step), 'latin1'));
      for (let r = p.take(); r; r = p.take()) out.push(r);
    }
    return out;
  }

  it('parses single and multi-line replies at every chunk size', () => {
    const text = '220 lmtp.example ready\r\n250-lmtp.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n550 5.1.1 <x@y>: no such user\r\n452 4.2.2 Mailbox full\r\n250\r\n';
    for (let step = 1; step <= text.length; step++) {
      assert.deepEqual(parseAll(text, step), [
        { code: 220, lines: ['lmtp.example ready'] },
        { code: 250, lines: ['lmtp.example', 'PIPELINING', '8BITMIME'] },
        { code: 550, enhanced: '5.1.1', lines: ['<x@y>: no such user'] },
        { code: 452, enhanced: '4.2.2', lines: ['Mailbox full'] },
        { code: 250, lines: [''] },
      ]);
    }
  });

  it('ignores an enhanced code of the wrong class', () => {
    assert.deepEqual(parseAll('250 5.1.1 odd\r\n', 100), [{ code: 250, lines: ['5.1.1 odd'] }]);
  });

  it('refuses malformed replies', () => {
    for (const bad of ['hello\r\n', '25 x\r\n', '250-a\r\n251 b\r\n', '250x\r\n', '600 no\r\n']) {
      assert.throws(() => parseAll(bad, 100), LmtpProtocolError, bad);
    }
  });
});

describe('dot-stuffing', () => {
  const cases: [string, string][] = [
    ['a\r\nb\r\n', 'a\r\nb\r\n.\r\n'],
    ['.\r\n', '..\r\n.\r\n'],
    ['.a\r\n..b\r\nc.\r\n', '..a\r\n...b\r\nc.\r\n.\r\n'],
    ['no end', 'no end\r\n.\r\n'],
    ['bare\nlf\rcr\r\n.x', 'bare\r\nlf\r\ncr\r\n..x\r\n.\r\n'],
    ['\r\n.\r\n', '\r\n..\r\n.\r\n'],
    ['x\r', 'x\r\n.\r\n'],
    ['', '.\r\n'],
  ];
  for (const [input, want] of cases) {
    it(`encodes ${JSON.stringify(input)}`, () => {
      atEverySplit(Buffer.from(input, 'latin1'), () => new DotStuffer(), Buffer.from(want, 'latin1'));
      assert.equal(dotStuff(Buffer.from(input, 'latin1')).toString('latin1'), want);
    });
  }

  it('never emits a bare CR or LF', () => {
    const input = Buffer.from('\r\r\n\n\r.\n.\r.\r\n\n.', 'latin1');
    const out = dotStuff(input).toString('latin1');
    assert.doesNotMatch(out.replace(/\r\n/g, ''), /[\r\n]/);
  });
});

describe('LMTP destinations', () => {
  it('parses sockets, hosts and ports', () => {
    assert.deepEqual(parseDestination('/run/dovecot/lmtp'), { kind: 'unix', path: '/run/dovecot/lmtp' });
    assert.deepEqual(parseDestination('127.0.0.1:24'), { kind: 'tcp', host: '127.0.0.1', port: 24 });
    assert.deepEqual(parseDestination('[::1]:2424'), { kind: 'tcp', host: '::1', port: 2424 });
    assert.deepEqual(parseDestination('lmtp.example'), { kind: 'tcp', host: 'lmtp.example', port: 24 });
    for (const bad of ['host:', 'host:99999', ':24', 'host:x']) assert.ok('error' in parseDestination(bad), bad);
  });
});
