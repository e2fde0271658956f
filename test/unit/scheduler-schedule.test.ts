/*
 * test/unit/scheduler-schedule.test.ts — the pure scheduling core with a
 * fake clock: backoff and jitter, expiry, delay warnings, limits and
 * batching, ETRN, pause, hold, remove, and state rebuilt from records.
 *
 * Why this file is long (~490 lines): one file for the one data structure
 * schedule.ts is, a short block per operation of it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Envelope, EnvelopeRecipient, RecipientOutcome } from '../../src/mail/envelope.js';
import { DEFAULT_BACKOFF, retryDelay, type AgentKind } from '../../src/scheduler/policy.js';
import { Schedule, type Classified, type ScheduleOptions } from '../../src/scheduler/schedule.js';
import { replay, warningsSent } from '../../src/scheduler/replay.js';
import { parseTarget } from '../../src/scheduler/target.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = 1_700_000_000_000;

class Clock {
  t = T0;
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

let seq = 0;
function hex(n: number, w: number): string {
  return n.toString(16).padStart(w, '0');
}

/** An envelope with recipients given as addresses; relay unless the domain is "local". */
function message(rcpts: (string | Partial<EnvelopeRecipient> & { address: string })[], over: Partial<Envelope> = {}): Envelope {
  const msgid = hex(++seq, 8);
  return {
    version: 1,
    msgid,
    sender: 'alice@example.net',
    recipients: rcpts.map((r, i) => {
      const base = typeof r === 'string' ? { address: r } : r;
      return { evpid: msgid + hex(i + 1, 8), action: base.address.endsWith('@local') ? 'local' : 'relay', ...base };
    }),
    body: '7BIT',
    smtputf8: false,
    arrival: T0,
    client: { address: '192.0.2.1', port: 1234, proto: 'ESMTP', listener: '0.0.0.0:25' },
    size: 100,
    ...over,
  };
}

/** Relay recipients keyed by domain, local ones by user. */
function classify(r: EnvelopeRecipient): Classified {
  const [user, domain] = r.address.split('@') as [string, string];
  const kind: AgentKind = domain === 'local' ? 'mda' : 'mta';
  return { kind, key: kind === 'mta' ? domain : user, ttlMs: r.ttl === undefined ? undefined : r.ttl * 1000 };
}

function schedule(clock: Clock, over: Partial<ScheduleOptions> = {}, random = 0.5): Schedule {
  return new Schedule({ now: clock.now, random: () => random, queueTtlMs: 4 * DAY, warnIntervalsMs: [4 * HOUR], ...over });
}

/** Poll, settle every task as a tempfail; returns the tasks. */
function tempfailAll(s: Schedule): ReturnType<Schedule['poll']>['tasks'] {
  const { tasks } = s.poll();
  for (const t of tasks) {
    for (const evpid of t.evpids) s.deferred(evpid, s.retryPlan(evpid), '4.2.0 busy');
    s.finishTask(t.id);
  }
  return tasks;
}

describe('backoff', () => {
  const table: { kind: AgentKind; n: number; base: number }[] = [
    { kind: 'mta', n: 1, base: 5 * MIN },
    { kind: 'mta', n: 2, base: 10 * MIN },
    { kind: 'mta', n: 3, base: 20 * MIN },
    { kind: 'mta', n: 4, base: 40 * MIN },
    { kind: 'mta', n: 5, base: HOUR },
    { kind: 'mta', n: 50, base: HOUR },
    { kind: 'mda', n: 1, base: MIN },
    { kind: 'mda', n: 2, base: 2 * MIN },
    { kind: 'mda', n: 6, base: 32 * MIN },
    { kind: 'mda', n: 7, base: HOUR },
    { kind: 'mda', n: 10_000, base: HOUR },
  ];
  for (const { kind, n, base } of table) {
    it(`${kind} after ${n} failure(s): ${base / MIN} min ±20 %`, () => {
      const p = DEFAULT_BACKOFF[kind];
      assert.equal(retryDelay(p, n, () => 0.5), base);
      assert.equal(retryDelay(p, n, () => 0), Math.round(base * 0.8));
      const hi = retryDelay(p, n, () => 0.999999);
      assert.ok(hi <= base * 1.2 && hi > base * 1.199, `${hi}`);
      for (let i = 0; i < 200; i++) {
        const d = retryDelay(p, n, Math.random);
        assert.ok(d >= base * 0.8 - 1 && d <= base * 1.2, `${d}`);
      }
    });
  }

  it('the schedule retries along that sequence', () => {
    const c = new Clock();
    const s = schedule(c);
    s.add(message(['bob@example.org']), undefined, classify);
    const seen: number[] = [];
    let last = c.t;
    for (let i = 0; i < 7; i++) {
      const tasks = tempfailAll(s);
      assert.equal(tasks.length, 1, `try ${i + 1}`);
      assert.equal(tasks[0]?.attempt, i + 1);
      const next = s.nextWake() as number;
      seen.push((next - last) / MIN);
      c.t = next - 1;
      assert.equal(s.poll().tasks.length, 0, 'not before nextTry');
      c.t = next;
      last = next;
    }
    assert.deepEqual(seen, [5, 10, 20, 40, 60, 60, 60]);
  });
});

describe('expiry', () => {
  it('a deferred envelope waits no longer than its lifetime, then expires once', () => {
    const c = new Clock();
    const s = schedule(c, { queueTtlMs: 30 * MIN });
    const m = message(['bob@example.org']);
    s.add(m, undefined, classify);
    tempfailAll(s); // next at +5
    c.t = T0 + 5 * MIN;
    tempfailAll(s); // next at +15
    c.t = T0 + 15 * MIN;
    tempfailAll(s); // +35 would be past the lifetime: clamped to +30
    assert.equal(s.get(m.recipients[0]?.evpid as string)?.nextTry, T0 + 30 * MIN);
    c.t = T0 + 30 * MIN;
    const { expired, tasks } = s.poll();
    assert.equal(tasks.length, 0);
    assert.deepEqual(expired.map((v) => v.evpid), [m.recipients[0]?.evpid]);
    assert.equal(expired[0]?.state, 'failed');
    assert.match(expired[0]?.lastError ?? '', /expired.*4\.2\.0 busy/);
    assert.equal(expired[0]?.attempts, 3);
    assert.equal(s.poll().expired.length, 0);
    assert.ok(s.isFinal(m.msgid));
  });

  it('a tempfail at or after the lifetime is an expiry, not a retry', () => {
    const c = new Clock();
    const s = schedule(c, { queueTtlMs: HOUR });
    const m = message(['bob@example.org']);
    s.add(m, undefined, classify);
    const { tasks } = s.poll();
    c.t = T0 + HOUR; // the try took the whole hour
    const plan = s.retryPlan(tasks[0]?.evpids[0] as string);
    assert.equal(plan.expired, true);
    assert.equal(plan.attempts, 1);
  });

  it("a recipient's own ttl wins over the queue lifetime", () => {
    const c = new Clock();
    const s = schedule(c);
    const m = message([{ address: 'bob@example.org', ttl: 600 }, 'carol@example.org']);
    s.add(m, undefined, classify);
    s.pause('mta');
    c.t = T0 + 10 * MIN;
    assert.deepEqual(s.poll().expired.map((v) => v.rcpt.address), ['bob@example.org']);
    assert.equal(s.get(m.recipients[1]?.evpid as string)?.state, 'pending');
    assert.equal(s.get(m.recipients[1]?.evpid as string)?.expire, T0 + 4 * DAY);
  });

  it('held envelopes do not expire until released', () => {
    const c = new Clock();
    const s = schedule(c, { queueTtlMs: HOUR });
    const m = message(['bob@example.org']);
    s.add(m, undefined, classify);
    assert.equal(s.hold(m.msgid).length, 1);
    c.t = T0 + 2 * HOUR;
    assert.deepEqual(s.poll(), { expired: [], tasks: [] });
    assert.equal(s.nextWake(), undefined);
    s.release(m.msgid);
    assert.equal(s.poll().expired.length, 1);
  });
});

describe('delay warnings', () => {
  const cases: { name: string; rcpt: Partial<EnvelopeRecipient>; sender?: string; due: boolean }[] = [
    { name: 'NOTIFY absent', rcpt: {}, due: true },
    { name: 'NOTIFY=DELAY', rcpt: { notify: ['DELAY'] }, due: true },
    { name: 'NOTIFY=FAILURE,DELAY', rcpt: { notify: ['FAILURE', 'DELAY'] }, due: true },
    { name: 'NOTIFY=FAILURE', rcpt: { notify: ['FAILURE'] }, due: false },
    { name: 'NOTIFY=SUCCESS', rcpt: { notify: ['SUCCESS'] }, due: false },
    { name: 'NOTIFY=NEVER', rcpt: { notify: 'NEVER' }, due: false },
    { name: 'null sender', rcpt: {}, sender: '', due: false },
  ];
  for (const k of cases) {
    it(`${k.name}: ${k.due ? 'warned' : 'never warned'}`, () => {
      const c = new Clock();
      const s = schedule(c);
      const m = message([{ address: 'bob@example.org', ...k.rcpt }], k.sender === undefined ? {} : { sender: k.sender });
      s.add(m, undefined, classify);
      tempfailAll(s);
      c.t = T0 + 4 * HOUR + 1;
      assert.deepEqual(s.warningsDue(m.msgid), k.due ? [m.recipients[0]?.evpid] : []);
    });
  }

  it('once per interval', () => {
    const c = new Clock();
    const s = schedule(c, { warnIntervalsMs: [HOUR, 6 * HOUR] });
    const m = message(['bob@example.org', 'carol@example.org', 'dave@local']);
    s.add(m, undefined, classify);
    tempfailAll(s);
    const ev = m.recipients.map((r) => r.evpid);
    const table: { at: number; due: string[] }[] = [
      { at: 59 * MIN, due: [] },
      { at: HOUR, due: ev },
      { at: 2 * HOUR, due: [] },
      { at: 5 * HOUR, due: [] },
      { at: 6 * HOUR, due: ev },
      { at: 3 * DAY, due: [] },
    ];
    for (const { at, due } of table) {
      c.t = T0 + at;
      const got = s.warningsDue(m.msgid);
      assert.deepEqual(got, due, `at +${at / MIN} min`);
      s.markWarned(got);
    }
  });

  it('counts a recipient being deferred right now, not one in flight', () => {
    const c = new Clock();
    const s = schedule(c);
    const m = message(['bob@example.org', 'carol@example.com']);
    s.add(m, undefined, classify);
    c.t = T0 + 5 * HOUR;
    const { tasks } = s.poll();
    assert.equal(tasks.length, 2);
    const [bob, carol] = m.recipients.map((r) => r.evpid) as [string, string];
    assert.deepEqual(s.warningsDue(m.msgid), []);
    assert.deepEqual(s.warningsDue(m.msgid, new Set([bob])), [bob]);
    s.deferred(bob, s.retryPlan(bob), 'busy');
    assert.deepEqual(s.warningsDue(m.msgid, new Set([carol])), [bob, carol]);
  });
});

describe('limits and batching', () => {
  it('recipients of one message with one key form one task, split at maxRcptPerTask', () => {
    const c = new Clock();
    const s = schedule(c, { limits: { maxRcptPerTask: { mta: 2 } } });
    const m = message(['a@x.org', 'b@x.org', 'c@y.org', 'd@x.org', 'e@local', 'f@local']);
    s.add(m, undefined, classify);
    const { tasks } = s.poll();
    const shape = tasks.map((t) => `${t.kind}:${t.key}:${t.evpids.map((e) => m.recipients.find((r) => r.evpid === e)?.address.split('@')[0]).join('')}`).sort();
    assert.deepEqual(shape, ['mda:e:e', 'mda:f:f', 'mta:x.org:ab', 'mta:x.org:d', 'mta:y.org:c']);
  });

  it('per-key, per-kind and total limits', () => {
    const c = new Clock();
    const s = schedule(c, { limits: { maxTasks: 30, maxTasksPerKind: { mda: 4, mta: 25 }, maxTasksPerKey: { mda: 2, mta: 10 } } });
    for (let i = 0; i < 20; i++) s.add(message(['bob@big.example']), undefined, classify);
    for (let i = 0; i < 20; i++) s.add(message([`u${i}@small${i}.example`]), undefined, classify);
    for (let i = 0; i < 10; i++) s.add(message([`user${i % 3}@local`]), undefined, classify);
    const { tasks } = s.poll();
    const count = (f: (k: string) => boolean): number => tasks.filter((t) => f(`${t.kind}:${t.key}`)).length;
    assert.equal(tasks.length, 29, 'mda 4 + mta 25');
    assert.equal(count((k) => k.startsWith('mda:')), 4);
    assert.equal(count((k) => k.startsWith('mta:small')), 20, 'round-robin: every small domain gets one');
    assert.equal(count((k) => k === 'mta:big.example'), 5, 'the big one gets the rest');
    for (const u of ['user0', 'user1', 'user2']) assert.ok(count((k) => k === `mda:${u}`) <= 2);
    assert.equal(s.poll().tasks.length, 0, 'nothing more until a task ends');
    const big = tasks.find((t) => t.key === 'big.example');
    assert.ok(big);
    s.delivered(big.evpids[0] as string);
    s.finishTask(big.id);
    const more = s.poll().tasks;
    assert.equal(more.length, 1);
    assert.equal(more[0]?.kind, 'mta');
  });

  it('at most maxTasksPerKey tasks for one key', () => {
    const c = new Clock();
    const s = schedule(c);
    for (let i = 0; i < 20; i++) s.add(message(['bob@big.example', 'carol@big.example']), undefined, classify);
    for (let i = 0; i < 5; i++) s.add(message(['bob@local']), undefined, classify);
    const tasks = s.poll().tasks;
    assert.equal(tasks.filter((t) => t.kind === 'mta').length, 10);
    assert.ok(tasks.filter((t) => t.kind === 'mta').every((t) => t.evpids.length === 2));
    assert.equal(tasks.filter((t) => t.kind === 'mda').length, 2);
  });

  it('serves keys round-robin under the total limit', () => {
    const c = new Clock();
    const s = schedule(c, { limits: { maxTasks: 4 } });
    for (let i = 0; i < 10; i++) s.add(message(['bob@a.example']), undefined, classify);
    for (let i = 0; i < 10; i++) s.add(message(['bob@b.example']), undefined, classify);
    const keys = s.poll().tasks.map((t) => t.key).sort();
    assert.deepEqual(keys, ['a.example', 'a.example', 'b.example', 'b.example']);
  });
});

describe('operations', () => {
  it('ETRN schedules now the deferred relay envelopes of a domain (and subdomains with @)', () => {
    const c = new Clock();
    const s = schedule(c);
    const m = message(['a@example.org', 'b@example.org', 'c@mx.example.org', 'd@other.org', 'e@local']);
    s.add(m, undefined, classify);
    tempfailAll(s);
    c.advance(MIN);
    assert.equal(s.poll().tasks.length, 1, 'the local one only (1 min backoff)');
    assert.equal(s.scheduleDomain('nothing.example'), 0);
    assert.equal(s.scheduleDomain('EXAMPLE.org'), 2);
    const tasks = s.poll().tasks;
    assert.deepEqual(tasks.map((t) => t.key), ['example.org']);
    assert.equal(tasks[0]?.evpids.length, 2);
    assert.equal(s.scheduleDomain('@example.org'), 1, 'mx.example.org; the other two are in flight');
    assert.equal(s.poll().tasks[0]?.key, 'mx.example.org');
  });

  it('scheduleNow by evpid, msgid and all', () => {
    const c = new Clock();
    const s = schedule(c);
    const m1 = message(['a@x.org', 'b@y.org']);
    const m2 = message(['c@z.org']);
    s.add(m1, undefined, classify);
    s.add(m2, undefined, classify);
    tempfailAll(s);
    assert.equal(s.scheduleNow(m1.recipients[1]?.evpid as string), 1);
    assert.deepEqual(s.poll().tasks.map((t) => t.key), ['y.org']);
    assert.equal(s.scheduleNow('all'), 2);
    assert.equal(s.poll().tasks.length, 2);
    assert.equal(s.scheduleNow(m2.msgid), 0, 'in flight');
    assert.throws(() => parseTarget('xyz'), RangeError);
  });

  it('pause and resume per kind', () => {
    const c = new Clock();
    const s = schedule(c);
    s.add(message(['a@x.org', 'b@local']), undefined, classify);
    s.pause('mta');
    assert.deepEqual(s.poll().tasks.map((t) => t.kind), ['mda']);
    s.pause('all');
    s.add(message(['c@local']), undefined, classify);
    assert.equal(s.poll().tasks.length, 0);
    s.resume('all');
    assert.deepEqual(s.poll().tasks.map((t) => t.kind).sort(), ['mda', 'mta']);
  });

  it('hold and release; a hold during a try takes effect when it defers', () => {
    const c = new Clock();
    const s = schedule(c);
    const m = message(['a@x.org', 'b@y.org']);
    s.add(m, undefined, classify);
    const [a, b] = m.recipients.map((r) => r.evpid) as [string, string];
    assert.deepEqual(s.hold(b), [b]);
    const { tasks } = s.poll();
    assert.deepEqual(tasks.map((t) => t.evpids), [[a]]);
    assert.deepEqual(s.hold('all'), [a], 'b already held; a in flight: requested');
    assert.equal(s.get(a)?.holdRequested, true);
    s.deferred(a, s.retryPlan(a), 'busy');
    s.finishTask(tasks[0]?.id as number);
    assert.equal(s.get(a)?.state, 'held');
    c.advance(DAY);
    assert.equal(s.poll().tasks.length, 0);
    assert.deepEqual(s.release(m.msgid).sort(), [a, b].sort());
    assert.equal(s.get(a)?.state, 'deferred');
    assert.equal(s.get(b)?.state, 'pending');
    assert.equal(s.poll().tasks.length, 2);
  });

  it('remove: at once when waiting, after the try when in flight', () => {
    const c = new Clock();
    const s = schedule(c);
    const m = message(['a@x.org', 'b@y.org']);
    s.add(m, undefined, classify);
    const [a, b] = m.recipients.map((r) => r.evpid) as [string, string];
    s.pause('mta');
    s.poll();
    s.resume('mta');
    s.hold(b);
    const t = s.poll().tasks;
    assert.deepEqual(t.map((x) => x.evpids[0]), [a]);
    assert.deepEqual(s.remove(m.msgid), { now: [b], later: [a] });
    assert.equal(s.get(a)?.removeRequested, true);
    assert.equal(s.get(b)?.state, 'failed');
    assert.equal(s.isFinal(m.msgid), false);
    s.failed(a, 'removed');
    s.finishTask(t[0]?.id as number);
    assert.equal(s.isFinal(m.msgid), true);
    s.drop(m.msgid);
    assert.equal(s.size, 0);
  });

  it('an unsettled task (runner stopping) puts its envelopes back untried', () => {
    const c = new Clock();
    const s = schedule(c);
    const m = message(['a@x.org']);
    s.add(m, undefined, classify);
    const t = s.poll().tasks[0];
    assert.ok(t);
    s.finishTask(t.id);
    const v = s.get(m.recipients[0]?.evpid as string);
    assert.equal(v?.state, 'pending');
    assert.equal(v?.attempts, 0);
    assert.equal(s.poll().tasks[0]?.attempt, 1);
  });

  it('the view has what show queue needs', () => {
    const c = new Clock();
    const s = schedule(c);
    const m = message(['a@x.org']);
    s.add(m, undefined, classify);
    tempfailAll(s);
    const [v] = s.list();
    assert.ok(v);
    assert.deepEqual(
      { evpid: v.evpid, msgid: v.msgid, sender: v.sender, rcpt: v.rcpt.address, action: v.action, ctime: v.ctime, expire: v.expire, lastTry: v.lastTry, attempts: v.attempts, nextTry: v.nextTry, state: v.state, lastError: v.lastError },
      { evpid: m.recipients[0]?.evpid, msgid: m.msgid, sender: 'alice@example.net', rcpt: 'a@x.org', action: 'relay', ctime: T0, expire: T0 + 4 * DAY, lastTry: T0, attempts: 1, nextTry: T0 + 5 * MIN, state: 'deferred', lastError: '4.2.0 busy' },
    );
  });
});

describe('rebuilt from records', () => {
  const d = (at: number, attempts: number, nextTry: number): RecipientOutcome => ({ kind: 'deferred', at, detail: `try ${attempts}`, attempts, nextTry });
  const table: { name: string; records: RecipientOutcome[]; want: Partial<ReturnType<typeof replay>> }[] = [
    { name: 'nothing', records: [], want: { state: 'pending', held: false, attempts: 0 } },
    { name: 'deferred twice', records: [d(1, 1, 10), d(10, 2, 30)], want: { state: 'deferred', attempts: 2, nextTry: 30, lastTry: 10, lastError: 'try 2' } },
    { name: 'delivered after deferrals', records: [d(1, 1, 10), { kind: 'delivered', at: 12, detail: 'ok' }], want: { state: 'delivered', attempts: 1 } },
    { name: 'failed is final', records: [{ kind: 'failed', at: 5, detail: 'no' }, { kind: 'held', at: 6 }], want: { state: 'failed', held: false, lastError: 'no' } },
    { name: 'held', records: [{ kind: 'held', at: 1 }], want: { state: 'pending', held: true } },
    { name: 'held, deferred while in flight', records: [{ kind: 'held', at: 1 }, d(2, 1, 300)], want: { state: 'deferred', held: true, attempts: 1 } },
    { name: 'held then released', records: [d(1, 1, 10), { kind: 'held', at: 2 }, { kind: 'released', at: 3 }], want: { state: 'deferred', held: false } },
  ];
  for (const { name, records, want } of table) {
    it(name, () => {
      const got = replay(records);
      for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof typeof got], v, k);
    });
  }

  it('warnings sent are those due at the last deferral', () => {
    assert.equal(warningsSent(0, [HOUR, 6 * HOUR], undefined), 0);
    assert.equal(warningsSent(0, [HOUR, 6 * HOUR], HOUR - 1), 0);
    assert.equal(warningsSent(0, [HOUR, 6 * HOUR], HOUR), 1);
    assert.equal(warningsSent(0, [HOUR, 6 * HOUR], DAY), 2);
  });

  it('a schedule loaded from records resumes where it was', () => {
    const c = new Clock();
    c.t = T0 + 5 * HOUR;
    const s = schedule(c);
    const m = message(['a@x.org', 'b@x.org', 'c@y.org', 'd@z.org']);
    const [a, b, cc, dd] = m.recipients.map((r) => r.evpid) as [string, string, string, string];
    const outcomes = new Map<string, RecipientOutcome[]>([
      [a, [{ kind: 'delivered', at: T0 + 1000, detail: 'ok' }]],
      [b, [d(T0 + 4 * HOUR + 1, 3, T0 + 6 * HOUR)]],
      [cc, [{ kind: 'held', at: T0 + 1 }]],
    ]);
    s.add(m, outcomes, classify);
    assert.deepEqual(
      s.list().map((v) => [v.state, v.attempts, v.warned]),
      [
        ['delivered', 0, 0],
        ['deferred', 3, 1],
        ['held', 0, 0],
        ['pending', 0, 0],
      ],
    );
    assert.deepEqual(s.poll().tasks.map((t) => t.evpids), [[dd]]);
    assert.equal(s.nextWake(), T0 + 6 * HOUR);
    assert.deepEqual(s.warningsDue(m.msgid), [], 'b was warned before its last deferral');
  });
});

describe('held envelopes', () => {
  it('keeps every field of an envelope as it came, sharing recurring strings or not (a frozen envelope is left alone)', () => {
    const clock = new Clock();
    const s = schedule(clock);
    const a = message(['bob@example.org', { address: 'carol@example.org', rule: 'smtpd.conf:3', original: 'list@example.org' }], { client: { address: '192.0.2.1', port: 1, helo: 'mx.example.net', proto: 'ESMTPS', listener: '0.0.0.0:25', authUser: 'alice', tag: 'in' } });
    const copy = structuredClone(a);
    assert.equal(s.add(a, undefined, classify), true);
    assert.deepEqual(a, copy);
    assert.deepEqual(s.envelope(a.msgid), copy);
    const frozen = Object.freeze(message(['dave@example.org']));
    assert.equal(s.add(frozen, undefined, classify), true);
    assert.deepEqual(s.ofMessage(frozen.msgid).map((v) => v.rcpt.address), ['dave@example.org']);
  });
});
