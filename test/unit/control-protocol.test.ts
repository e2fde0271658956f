/*
 * test/unit/control-protocol.test.ts — the pure parts of the control
 * socket and smtpctl: request checking, line framing at every split point,
 * the command grammar (prefixes, ambiguity), and the text formats.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LineDecoder, MAX_REQUEST_BYTES, encodeRequest, parseReply, parseRequest, type LineEvent } from '../../src/control/protocol.js';
import { Grammar } from '../../src/control/grammar.js';
import { MONITOR_HEADER, MonitorPrinter, pipeField, queueLine, queueTable, shortDuration, statsLines, statusLines } from '../../src/control/format.js';
import { DigestMaker, RateMeter, buildStats, durationText, type Digest } from '../../src/control/stats-view.js';
import type { QueueEntry } from '../../src/control/queue-view.js';

describe('parseRequest', () => {
  it('accepts a well-formed request and normalises ids', () => {
    const p = parseRequest('{"id":7,"command":["show","queue"],"args":{"msgid":"1A2B3C4D"}}');
    assert.deepEqual(p, { ok: true, request: { id: 7, name: 'show queue', args: { msgid: '1a2b3c4d' } } });
    assert.deepEqual(parseRequest(encodeRequest(3, 'schedule', { target: 'all' }).trim()), { ok: true, request: { id: 3, name: 'schedule', args: { target: 'all' } } });
    assert.equal(parseRequest('{"id":1,"command":["stop"]}').ok, true);
  });

  const bad: [string, number | null, RegExp][] = [
    ['not json', null, /not JSON/],
    ['[1,2]', null, /not a JSON object/],
    ['"x"', null, /not a JSON object/],
    ['null', null, /not a JSON object/],
    ['{"command":["stop"]}', null, /"id"/],
    ['{"id":"1","command":["stop"]}', null, /"id"/],
    ['{"id":-1,"command":["stop"]}', null, /"id"/],
    ['{"id":1.5,"command":["stop"]}', null, /"id"/],
    ['{"id":1}', 1, /"command"/],
    ['{"id":1,"command":"stop"}', 1, /"command"/],
    ['{"id":1,"command":[]}', 1, /"command"/],
    ['{"id":1,"command":["show",3]}', 1, /"command"/],
    ['{"id":1,"command":["rm","-rf"]}', 1, /unknown command "rm -rf"/],
    ['{"id":1,"command":["constructor"]}', 1, /unknown command/],
    ['{"id":1,"command":["__proto__"]}', 1, /unknown command/],
    ['{"id":1,"command":["stop"],"extra":1}', 1, /unknown member/],
    ['{"id":1,"command":["stop"],"args":[]}', 1, /"args"/],
    ['{"id":1,"command":["stop"],"args":{"x":"y"}}', 1, /unknown argument "x"/],
    ['{"id":1,"command":["schedule"]}', 1, /missing argument "target"/],
    ['{"id":1,"command":["schedule"],"args":{"target":5}}', 1, /"target" must be/],
    ['{"id":1,"command":["schedule"],"args":{"target":"1234"}}', 1, /"target" must be/],
    ['{"id":1,"command":["show","envelope"],"args":{"evpid":"1a2b3c4d"}}', 1, /envelope id/],
    ['{"id":1,"command":["update","table"],"args":{"name":"a b"}}', 1, /table name/],
  ];
  for (const [line, id, re] of bad) {
    it(`refuses ${line}`, () => {
      const p = parseRequest(line);
      assert.equal(p.ok, false);
      if (p.ok) return;
      assert.equal(p.id, id);
      assert.match(p.error, re);
    });
  }

  it('reads replies', () => {
    assert.deepEqual(parseReply('{"id":1,"ok":true,"data":[1]}'), { id: 1, ok: true, data: [1] });
    assert.deepEqual(parseReply('{"id":1,"ok":true,"more":true,"data":2}'), { id: 1, ok: true, data: 2, more: true });
    assert.deepEqual(parseReply('{"id":null,"ok":false,"error":"x"}'), { id: null, ok: false, error: 'x' });
    assert.equal(parseReply('{"id":1}'), undefined);
    assert.equal(parseReply('garbage'), undefined);
  });
});

describe('LineDecoder', () => {
  const lines = (evs: LineEvent[]): string[] => evs.map((e) => ('line' in e ? e.line : '<too long>'));

  it('gives the same lines at every split point', () => {
    const input = Buffer.from('{"a":1}\r\n\n{"b":"é"}\n  \nlast\n');
    for (let i = 0; i <= input.length; i++) {
      for (let j = i; j <= input.length; j++) {
        const d = new LineDecoder(100);
        const got = [...d.push(input.subarray(0, i)), ...d.push(input.subarray(i, j)), ...d.push(input.subarray(j))];
        assert.deepEqual(lines(got), ['{"a":1}', '{"b":"é"}', 'last'], `split at ${i},${j}`);
      }
    }
  });

  it('reports an oversized line once, skips it, and goes on', () => {
    const d = new LineDecoder(10);
    const got = [...d.push(Buffer.from('0123456789')), ...d.push(Buffer.from('abc')), ...d.push(Buffer.from('x'.repeat(1000))), ...d.push(Buffer.from('\nok\n'))];
    assert.deepEqual(lines(got), ['<too long>', 'ok']);
    assert.deepEqual(lines(new LineDecoder(10).push(Buffer.from('0123456789\r\n'))), ['0123456789'], 'exactly the limit, CR not counted');
    assert.deepEqual(lines(new LineDecoder(10).push(Buffer.from('0123456789a\n'))), ['<too long>']);
  });

  it('never holds more than the limit', () => {
    const d = new LineDecoder(MAX_REQUEST_BYTES);
    for (let i = 0; i < 100; i++) d.push(Buffer.alloc(64 * 1024, 0x41));
    assert.ok(((d as unknown as { size: number }).size) <= MAX_REQUEST_BYTES + 1);
  });
});

describe('Grammar', () => {
  const g = new Grammar([
    { pattern: 'show queue', help: '', value: 'q' },
    { pattern: 'show queue <msgid>', help: '', value: 'qm' },
    { pattern: 'show stats', help: '', value: 'stats' },
    { pattern: 'show status', help: '', value: 'status' },
    { pattern: 'schedule <id>', help: '', value: 'sched' },
    { pattern: 'schedule all', help: '', value: 'sched' },
    { pattern: 'remove <id>', help: '', value: 'rm' },
    { pattern: 'remove all', help: '', value: 'rm' },
    { pattern: 'resume mta', help: '', value: 'rmta' },
    { pattern: 'reload', help: '', value: 'reload' },
    { pattern: 'stop', help: '', value: 'stop' },
    { pattern: 'encrypt', help: '', value: 'enc' },
    { pattern: 'encrypt <string>', help: '', value: 'enc' },
    { pattern: 'update table <name>', help: '', value: 'upd' },
  ]);
  const ok = (argv: string[]): { value: string; params: Record<string, string>; words: readonly string[] } => {
    const p = g.parse(argv);
    assert.ok(p.ok, p.ok ? '' : p.error);
    return { value: p.entry.value, params: { ...p.params }, words: p.words };
  };
  const err = (argv: string[]): string => {
    const p = g.parse(argv);
    assert.equal(p.ok, false, `${argv.join(' ')} should fail`);
    return p.ok ? '' : p.error;
  };

  it('takes unambiguous prefixes', () => {
    assert.deepEqual(ok(['sh', 'q']), { value: 'q', params: {}, words: ['show', 'queue'] });
    assert.deepEqual(ok(['SHOW', 'Queue', '1A2B3C4D']), { value: 'qm', params: { msgid: '1a2b3c4d' }, words: ['show', 'queue', '1a2b3c4d'] });
    assert.equal(ok(['sc', 'all']).value, 'sched');
    assert.equal(ok(['st']).value, 'stop');
    assert.equal(ok(['rel']).value, 'reload');
    assert.equal(ok(['res', 'm']).value, 'rmta');
    assert.deepEqual(ok(['sched', '0123456789abcdef']).params, { id: '0123456789abcdef' });
    assert.deepEqual(ok(['e', 'Secret Word']).params, { string: 'Secret Word' });
    assert.deepEqual(ok(['u', 't', 'Aliases']).params, { name: 'Aliases' });
  });

  it('lists the candidates of an ambiguous prefix', () => {
    assert.equal(err(['s']), 'ambiguous command "s": show, schedule, stop');
    assert.equal(err(['re']), 'ambiguous command "re": remove, resume, reload');
    assert.equal(err(['show', 'stat']), 'ambiguous command "show stat": show stats, show status');
  });

  it('says what is missing, unknown or out of place', () => {
    assert.match(err([]), /no command given/);
    assert.equal(err(['show']), 'incomplete command "show"; possibilities: show queue, show queue <msgid>, show stats, show status');
    assert.match(err(['frob']), /^unknown command "frob"/);
    assert.match(err(['schedule', '1234']), /"1234" does not fit after "schedule": expected a message id .* or "all"/);
    assert.match(err(['show', 'stats', 'now']), /unexpected "now" after "show stats"/);
    assert.match(err(['show', 'queue', 'xyz']), /expected a message id/);
  });

  it('never abbreviates a word standing where an id may stand', () => {
    assert.match(err(['remove', 'a']), /does not fit/);
    assert.match(err(['remove', 'al']), /does not fit/);
    assert.equal(ok(['rem', 'ALL']).value, 'rm');
  });

  it('refuses a duplicate pattern', () => {
    assert.throws(() => new Grammar([{ pattern: 'a b', help: '', value: 1 }, { pattern: 'a  b', help: '', value: 2 }]), /duplicate/);
  });
});

describe('formats', () => {
  const entry: QueueEntry = {
    evpid: '1a2b3c4d00000001',
    msgid: '1a2b3c4d',
    src: 'inet4',
    agent: 'mta',
    flags: ['auth', 'hold'],
    sender: 'alice@example.net',
    rcpt: 'bob@example.com',
    dest: 'bob@example.com',
    action: 'relay',
    state: 'held',
    size: 2048,
    ctime: 1_700_000_000,
    expire: 1_700_345_600,
    lastTry: 1_700_000_300,
    retry: 2,
    nextTry: 1_700_000_900,
    runstate: 'pending',
    runtime: 540,
    error: '421 4.4.2 a|b\\c\r\nd',
  };

  it('show queue: OpenSMTPD field order, fields escaped', () => {
    const line = queueLine(entry);
    assert.equal(line, '1a2b3c4d00000001|inet4|mta|auth,hold|alice@example.net|bob@example.com|bob@example.com|1700000000|1700345600|1700000300|2|pending|540|421 4.4.2 a\\x7cb\\x5cc\\x0d\\x0ad');
    assert.equal(line.split('|').length, 14);
    assert.equal(queueLine({ ...entry, sender: '', flags: [], runstate: 'offline', runtime: null, error: '' }).split('|').slice(3, 5).join('|'), '|@');
    assert.match(queueLine({ ...entry, runstate: 'offline', runtime: null }), /\|offline\|\|/);
    assert.equal(pipeField('|cmd'), '\\x7ccmd');
  });

  it('show queue --human: a table with a footer', () => {
    const t = queueTable([entry, { ...entry, evpid: '1a2b3c4d00000002', state: 'deferred', flags: [] }], 1_700_003_600_000);
    const rows = t.trimEnd().split('\n');
    assert.match(rows[0] as string, /^ENVELOPE\s+STATE\s+AGE\s+TRIES\s+NEXT TRY\s+SENDER\s+RECIPIENT\s+LAST ERROR$/);
    assert.match(rows[1] as string, /^1a2b3c4d00000001\s+held\s+1h\s+2\s+held\s+alice@example.net\s+bob@example.com\s+421 4.4.2/);
    assert.match(rows[2] as string, /deferred\s+1h\s+2\s+now\s/);
    assert.equal(rows[3], '-- 2 envelopes in 1 message, 2.0 KiB');
    assert.equal(queueTable([], 0), 'The queue is empty.\n');
  });

  it('durations as OpenSMTPD writes them', () => {
    assert.equal(durationText(0), '0s');
    assert.equal(durationText(42), '42s');
    assert.equal(durationText(3600 + 12), '1h12s');
    assert.equal(durationText(2 * 86400 + 4 * 3600), '2d4h');
    assert.equal(durationText(-61), '-1m1s');
    assert.equal(shortDuration(2 * 86400 + 4 * 3600 + 5), '2d4h');
  });

  it('show stats and show status', () => {
    const s = buildStats({ counters: { 'smtp.session': 3, 'zz.custom': 1 }, now: 1_000_000 + 3_723_000, startedAt: 1_000_000, queue: { messages: 2, envelopes: 3, bytes: 4096, oldest: 1_000_000 }, messageRate: 0.333 });
    const text = statsLines(s);
    const keys = text.trimEnd().split('\n').map((l) => l.split('=')[0] as string);
    assert.deepEqual(keys, [...keys].sort());
    for (const l of ['smtp.session=3', 'smtp.session.inet4=0', 'scheduler.delivery.ok=0', 'uptime=3723', 'uptime.human=1h2m3s', 'queue.message=2', 'queue.envelope=3', 'queue.size=4096', 'queue.oldest=3723', 'smtp.message.rate=0.33', 'zz.custom=1']) {
      assert.ok(text.includes(`${l}\n`), `${l} in\n${text}`);
    }
    assert.equal(statusLines({ smtp: 'running', mta: 'paused', mda: 'running' }), 'MDA running\nMTA paused\nSMTP running\n');
  });

  it("show stats also answers with OpenSMTPD's key names where Postern has the figure (seed 002)", () => {
    const counters = { 'smtp.session': 16, 'smtp.session.active': 1, 'mta.session': 4, 'smtp.message': 11, 'smtp.message.local': 5, 'smtp.smtps': 2, 'smtp.tls.starttls': 7, 'smtp.session.timeout': 1 };
    const s = buildStats({ counters, now: 157_948_000, startedAt: 0, queue: { messages: 0, envelopes: 0, bytes: 0 }, messageRate: 0 });
    const expected: Record<string, number> = {
      'smtp.sessions': 16, 'smtp.sessions.active': 1, 'mta.sessions': 4, 'mta.sessions.active': 0, 'parent.uptime': 157948,
      'queue.inserts.local': 5, 'queue.inserts.remote': 11, 'runner.active': 0, 'smtp.sessions.smtps': 2, 'smtp.sessions.starttls': 7,
      'smtp.sessions.timeout': 1, 'smtp.errors.linetoolong': 0, 'smtp.errors.toofast': 0,
    };
    for (const [k, v] of Object.entries(expected)) assert.equal(s[k], v, k);
  });

  it('messages per second over the last minute', () => {
    const r = new RateMeter(60_000);
    assert.equal(r.rate(), 0);
    for (let t = 0; t <= 120; t++) r.sample(t * 1000, t < 60 ? t * 10 : 600 + (t - 60));
    assert.equal(r.rate(), 1); // the last minute: 1 a second (the first minute's 10 a second forgotten)
  });
});

describe('monitor', () => {
  const zero: Digest = { clients: 0, connected: 0, disconnected: 0, envelopes: 0, enqueued: 0, dequeued: 0, ok: 0, tempfail: 0, permfail: 0, loop: 0, expired: 0, removed: 0, bounced: 0 };

  it('prints the header before line 1, 26, 51 … with a blank line before all but the first', () => {
    const p = new MonitorPrinter();
    let text = '';
    for (let i = 0; i < 60; i++) text += p.line({ ...zero, connected: i * 2, disconnected: i });
    const lines = text.split('\n');
    const headers = lines.flatMap((l, i) => (l.startsWith('--- client ---') ? [i] : []));
    // header (2 lines) + 25 data lines + blank = 28 lines per block
    assert.deepEqual(headers, [0, 28, 56]);
    assert.equal(lines[27], '');
    assert.ok(text.startsWith(MONITOR_HEADER));
    assert.equal(lines.filter((l) => /^\s*\d/.test(l)).length, 60);
  });

  it('prints per-second differences in OpenSMTPD columns', () => {
    const p = new MonitorPrinter();
    const first = p.line({ ...zero, clients: 2, connected: 10, disconnected: 8, envelopes: 5, enqueued: 20, dequeued: 15, ok: 12, tempfail: 7, permfail: 1, loop: 1, expired: 1, removed: 1, bounced: 2 }).split('\n')[2];
    assert.equal(first, '   2   10    8     5   20   15   12       7       1    1      1      1      2');
    const second = p.line({ ...zero, clients: 1, connected: 13, disconnected: 12, envelopes: 6, enqueued: 22, dequeued: 16, ok: 13, tempfail: 7, permfail: 1, loop: 1, expired: 1, removed: 1, bounced: 2 });
    assert.equal(second, '   1    3    4     6    2    1    1       0       0    0      0      0      0\n');
  });

  it('derives enqueued envelopes by conservation, never going down', () => {
    const m = new DigestMaker();
    assert.equal(m.make({}, 0, 3).enqueued, 3);
    assert.equal(m.make({ 'scheduler.delivery.ok': 2 }, 0, 1).enqueued, 3);
    assert.equal(m.make({ 'scheduler.delivery.ok': 2, 'scheduler.envelope.removed': 1 }, 0, 2).enqueued, 5);
    assert.equal(m.make({}, 0, 0).enqueued, 5);
    const d = m.make({ 'smtp.session': 9 }, 2, 0);
    assert.equal(d.disconnected, 7);
  });
});
