/*
 * test/unit/wire-framer.test.ts — Framer (src/wire/framer.ts): pipelined
 * dialogues, the SMTP smuggling table, BDAT, line limits and discard(),
 * each input fed whole, at every split point and byte by byte. A small
 * scripted "session" reacts to DATA and BDAT lines the way the real one does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Framer, type FrameEvent } from '../../src/wire/framer.js';
import type { BareNewlinePolicy } from '../../src/wire/line-endings.js';
import { bytes, cuts, show, strictCrlf } from './wire-harness.js';

interface DriveOpts {
  policy?: BareNewlinePolicy;
  maxLine?: number;
  maxSize?: number;
}

/** One event as a readable string; data-end lists its size and the flags set. */
function describe(e: FrameEvent): string {
  switch (e.type) {
    case 'line':
      return `line${e.bareLf ? '/lf' : ''}:${show(e.line)}`;
    case 'line-too-long':
    case 'bytes-end':
      return e.type;
    case 'data':
      return `data:${show(e.chunk)}`;
    case 'bytes':
      return `bytes:${show(e.chunk)}`;
    case 'data-end': {
      const flags = [e.overflow ? 'overflow' : '', e.bareCr ? 'CR' : '', e.bareLf ? 'LF' : '', e.nul ? 'NUL' : ''];
      return ['data-end', `size=${e.size}`, ...flags.filter(Boolean)].join(' ');
    }
  }
}

/**
 * Feed chunks to a Framer, draining events after each one and switching
 * mode on "DATA" and "BDAT n" lines. Consecutive data (bytes) events are
 * merged, since how content is sliced depends on the chunking.
 */
function drive(chunks: Buffer[], o: DriveOpts = {}): string[] {
  const maxLine = o.maxLine ?? 512;
  const f = new Framer({ maxLine, policy: o.policy ?? 'normalize' });
  const events: string[] = [];
  const add = (s: string): void => {
    const last = events[events.length - 1];
    for (const kind of ['data:', 'bytes:']) {
      if (s.startsWith(kind) && last?.startsWith(kind)) {
        events[events.length - 1] = last + s.slice(kind.length);
        return;
      }
    }
    events.push(s);
  };
  for (const c of chunks) {
    f.push(c);
    for (let e = f.next(); e !== null; e = f.next()) {
      add(describe(e));
      if (e.type === 'line') {
        const cmd = show(e.line);
        const bdat = /^BDAT (\d+)/i.exec(cmd);
        if (/^DATA$/i.test(cmd)) {
          f.startData(o.maxSize ?? 1e6);
          assert.equal(f.mode, 'data');
        } else if (bdat) {
          f.startBytes(Number(bdat[1]));
          assert.equal(f.mode, 'bytes');
        }
      }
      if (e.type === 'data-end' || e.type === 'bytes-end') assert.equal(f.mode, 'line');
    }
    assert.ok(f.buffered < maxLine, `at most maxLine - 1 bytes kept, got ${f.buffered}`);
  }
  return events;
}

/** drive() over every cut of the input must give the expected events. */
function allCuts(input: string, expected: string[], o: DriveOpts = {}): void {
  for (const cut of cuts(bytes(input))) assert.deepEqual(drive(cut.chunks, o), expected, cut.name);
}

test('Framer: pipelined lines, DATA, then more lines in one chunk', () => {
  const input =
    'EHLO client.example\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n' +
    'Subject: s\r\n\r\n..dot\r\nbody\r\n.\r\n' +
    'MAIL FROM:<e@f>\r\nRSET\r\nQUIT\r\n';
  allCuts(input, [
    'line:EHLO client.example',
    'line:MAIL FROM:<a@b>',
    'line:RCPT TO:<c@d>',
    'line:DATA',
    'data:Subject: s\r\n\r\n.dot\r\nbody\r\n',
    'data-end size=26',
    'line:MAIL FROM:<e@f>',
    'line:RSET',
    'line:QUIT',
  ]);
});

test('Framer: empty message and back-to-back DATA', () => {
  allCuts('DATA\r\n.\r\nDATA\r\nx\r\n.\r\nNOOP\r\n', ['line:DATA', 'data-end size=0', 'line:DATA', 'data:x\r\n', 'data-end size=3', 'line:NOOP']);
});

test('Framer: DATA over the size limit reports overflow and still ends at the terminator', () => {
  allCuts('DATA\r\n0123456789\r\n.\r\nQUIT\r\n', ['line:DATA', 'data:01234', 'data-end size=12 overflow', 'line:QUIT'], { maxSize: 5 });
});

test('Framer: line endings in line mode', () => {
  allCuts('NOOP\nQUIT\r\n', ['line/lf:NOOP', 'line:QUIT']);
  allCuts('NO\rOP\r\n\r\n\r\r\n\n', ['line:NO\rOP', 'line:', 'line:\r', 'line/lf:']);
  allCuts('HELO x\r', []); // incomplete: nothing yet
});

test('Framer: BDAT payload is raw, CR LF . CR LF included', () => {
  const payload = 'ab\r\n.\r\nMAIL FROM:<x@y>\r\n..\n';
  allCuts(`BDAT ${payload.length} LAST\r\n${payload}QUIT\r\n`, [
    `line:BDAT ${payload.length} LAST`,
    `bytes:${payload}`,
    'bytes-end',
    'line:QUIT',
  ]);
  allCuts('BDAT 3\r\nabcBDAT 0 LAST\r\nNOOP\r\n', ['line:BDAT 3', 'bytes:abc', 'bytes-end', 'line:BDAT 0 LAST', 'bytes-end', 'line:NOOP']);
});

test('Framer: line-too-long at the 512/513 boundary, with and without a split CR LF', () => {
  const a = (n: number): string => 'A'.repeat(n);
  allCuts(a(510) + '\r\nNOOP\r\n', [`line:${a(510)}`, 'line:NOOP']);
  allCuts(a(511) + '\r\nNOOP\r\n', ['line-too-long', 'line:NOOP']);
  allCuts(a(511) + '\nNOOP\r\n', [`line/lf:${a(511)}`, 'line:NOOP']);
  allCuts(a(512) + '\nNOOP\r\n', ['line-too-long', 'line:NOOP']);
  allCuts(a(2000) + '\r\n' + a(513) + '\r\nNOOP\r\n', ['line-too-long', 'line-too-long', 'line:NOOP']);
  allCuts('NOOP\r\n' + a(600), ['line:NOOP']); // still discarding: no event yet
  allCuts('\r'.repeat(600) + '\nDATA\r\n.\r\n', ['line-too-long', 'line:DATA', 'data-end size=0']);
});

test('Framer: line-too-long keeps at most maxLine bytes while a long line streams in', () => {
  const f = new Framer({ maxLine: 512, policy: 'normalize' });
  const events: string[] = [];
  for (let i = 0; i < 5000; i++) {
    f.push(bytes('x'));
    for (let e = f.next(); e !== null; e = f.next()) events.push(e.type);
    assert.ok(f.buffered < 512);
  }
  f.push(bytes('\r\nQUIT\r\n'));
  for (let e = f.next(); e !== null; e = f.next()) events.push(e.type === 'line' ? show(e.line) : e.type);
  assert.deepEqual(events, ['line-too-long', 'QUIT']);
});

test('Framer: discard() drops everything pipelined after STARTTLS', () => {
  const f = new Framer({ maxLine: 512, policy: 'normalize' });
  f.push(bytes('STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<y'));
  const e = f.next();
  assert.ok(e !== null && e.type === 'line' && show(e.line) === 'STARTTLS');
  assert.equal(f.buffered, 'MAIL FROM:<evil@x>\r\nRCPT TO:<y'.length);
  assert.equal(f.discard(), 'MAIL FROM:<evil@x>\r\nRCPT TO:<y'.length);
  assert.equal(f.buffered, 0);
  assert.equal(f.next(), null);
  f.push(bytes('EHLO tls\r\n'));
  const e2 = f.next();
  assert.ok(e2 !== null && e2.type === 'line' && show(e2.line) === 'EHLO tls');

  // A partial line already moved aside is dropped too.
  f.push(bytes('STARTTLS\r\nMAIL FR'));
  f.next();
  assert.equal(f.next(), null);
  assert.equal(f.buffered, 7);
  assert.equal(f.discard(), 7);
  f.push(bytes('OM:<x>\r\n'));
  const e3 = f.next();
  assert.ok(e3 !== null && e3.type === 'line' && show(e3.line) === 'OM:<x>');
});

test('Framer: content read as a partial line before startData is not lost', () => {
  const f = new Framer({ maxLine: 512, policy: 'normalize' });
  f.push(bytes('DATA\r\nhel'));
  assert.equal(f.next()?.type, 'line');
  assert.equal(f.next(), null); // "hel" is now a partial line
  assert.equal(f.buffered, 3);
  f.startData(100);
  f.push(bytes('lo\r\n.\r\nQUIT\r\n'));
  const got: string[] = [];
  for (let e = f.next(); e !== null; e = f.next()) got.push(describe(e));
  assert.deepEqual(got, ['data:hel', 'data:lo\r\n', 'data-end size=7', 'line:QUIT']);
});

test('Framer: mode switches are refused outside line mode', () => {
  const f = new Framer({ maxLine: 512, policy: 'normalize' });
  f.startData(10);
  assert.throws(() => f.startData(10));
  assert.throws(() => f.startBytes(1));
  assert.throws(() => new Framer({ maxLine: 1, policy: 'normalize' }));
});

/*
 * SMTP smuggling (CVE-2023-51764/51765/51766 and kin): a client hides a
 * second transaction behind something a lenient server takes for the end
 * of data. Postern must see exactly one message, ending at the real
 * CR LF . CR LF, with every smuggled command inside its content.
 */
const SMUGGLERS = [
  '\n.\n',
  '\r.\r',
  '\r\n.\n',
  '\n.\r\n',
  '\r\n.\r',
  '\r.\r\n',
  '\r\n\0.\r\n',
  '\r\n.\0\r\n',
  '\n.\r',
  '\r\n.\n\r\n',
  '\r\n\r.\r\n',
  '\n\n.\n\n',
  '\r\n.\r\r\n',
  '\r\n .\r\n',
];
const SMUGGLED = 'MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nsmuggled\r\n';
const REAL_END = '\r\n.\r\n';
const HEAD = 'EHLO c\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\n';

for (const policy of ['normalize', 'reject'] as const) {
  for (const s of SMUGGLERS) {
    test(`Framer smuggling ${policy} ${JSON.stringify(s)}`, () => {
      const input = HEAD + 'Subject: hi\r\n\r\nhello' + s + SMUGGLED + REAL_END + 'QUIT\r\n';
      const expectBare = /\r(?!\n)|(?<!\r)\n/.test(s);
      let reference: string[] | undefined;
      for (const cut of cuts(bytes(input))) {
        const ev = drive(cut.chunks, { policy });
        assert.deepEqual(
          ev.filter((e) => e.startsWith('line')),
          ['line:EHLO c', 'line:MAIL FROM:<x@y>', 'line:RCPT TO:<z@w>', 'line:DATA', 'line:QUIT'],
          cut.name,
        );
        const ends = ev.filter((e) => e.startsWith('data-end'));
        assert.equal(ends.length, 1, cut.name);
        assert.equal(ev.indexOf(ends[0]!), ev.length - 2, 'data-end just before QUIT');
        const data = ev.find((e) => e.startsWith('data:'))!.slice('data:'.length);
        assert.ok(data.endsWith(SMUGGLED + '\r\n'), `smuggled commands inside the data (${cut.name})`);
        assert.ok(strictCrlf(data), 'content is strict CR LF');
        if (expectBare) assert.match(ends[0]!, /\b(CR|LF)\b/, 'bare CR/LF flagged');
        if (s.includes('\0')) assert.match(ends[0]!, /\bNUL\b/);
        if (reference === undefined) reference = ev;
        else assert.deepEqual(ev, reference, cut.name);
      }
    });
  }
}
