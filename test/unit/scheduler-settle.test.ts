/*
 * test/unit/scheduler-settle.test.ts — the crash ordering of the queue
 * runner as a table of effects: settle() (pure) on a real Schedule with a
 * fake clock, and the failure flush of effects.ts with a fake spool and
 * reporter that write down the order of their calls. What must be durable
 * before what (runner.ts, settle.ts): a report before the record that owes
 * it, a record before the removal, no record at all for deliveries that
 * finish the message (the removal follows).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MailLog } from '../../src/log/maillog.js';
import type { Envelope, EnvelopeRecipient, RecipientOutcome } from '../../src/mail/envelope.js';
import { Effects } from '../../src/scheduler/effects.js';
import type { Result } from '../../src/scheduler/dispatch.js';
import { OwedFailures } from '../../src/scheduler/owed.js';
import { Schedule, type Classified, type Task } from '../../src/scheduler/schedule.js';
import { settle, type Effect } from '../../src/scheduler/settle.js';
import { Stats } from '../../src/stats.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = 1_700_000_000_000;

class Clock {
  t = T0;
  now = (): number => this.t;
}

let seq = 0;
function message(rcpts: (Partial<EnvelopeRecipient> & { address: string })[], over: Partial<Envelope> = {}): Envelope {
  const msgid = (++seq).toString(16).padStart(8, '0');
  return {
    version: 1,
    msgid,
    sender: 'alice@example.net',
    recipients: rcpts.map((r, i) => ({ evpid: msgid + (i + 1).toString(16).padStart(8, '0'), action: 'relay', ...r })),
    body: '7BIT',
    smtputf8: false,
    arrival: T0,
    client: { address: '192.0.2.1', port: 1234, proto: 'ESMTP', listener: '0.0.0.0:25' },
    size: 100,
    ...over,
  };
}

/** Relay recipients keyed by domain: one task per domain. */
const classify = (r: EnvelopeRecipient): Classified => ({ kind: 'mta', key: r.address.split('@')[1] ?? '' });

function setup(env: Envelope, clock = new Clock()): { s: Schedule; tasks: Task[]; clock: Clock } {
  const s = new Schedule({ now: clock.now, random: () => 0.5, queueTtlMs: 4 * DAY, warnIntervalsMs: [4 * HOUR] });
  s.add(env, undefined, classify);
  return { s, tasks: s.poll().tasks, clock };
}

const ok = (evpid: string): Result => ({ evpid, status: 'ok', enhanced: '2.0.0', detail: 'delivered' });
const temp = (evpid: string): Result => ({ evpid, status: 'tempfail', enhanced: '4.4.1', detail: 'connection refused' });
const perm = (evpid: string): Result => ({ evpid, status: 'permfail', enhanced: '5.1.1', detail: 'user unknown' });

function results(...list: Result[]): Map<string, Result> {
  return new Map(list.map((r) => [r.evpid, r]));
}

/** The effects as short words: "record:delivered:<evpid>", "report:success", … */
function words(effects: readonly Effect[]): string[] {
  return effects.flatMap((e): string[] => {
    switch (e.kind) {
      case 'record':
        return e.records.map((r) => `record:${r.outcome.kind}:${r.evpid.slice(8)}`);
      case 'report':
        return [`report:${e.dsn}`];
      case 'log-result':
        return [`log:${e.view.evpid.slice(8)}`];
      case 'delivered':
        return e.evpids.map((evpid) => `delivered:${evpid.slice(8)}`);
      case 'deferred':
      case 'failed':
      case 'log-removed':
        return [`${e.kind}:${e.evpid.slice(8)}`];
      case 'owe':
        return [`owe:${e.failure.evpid.slice(8)}`];
      default:
        return [e.kind];
    }
  });
}

function state(s: Schedule, env: Envelope, over: { owing?: boolean; running?: boolean } = {}): Parameters<typeof settle>[3] {
  return { envelope: env, schedule: s, owing: over.owing ?? false, running: over.running ?? true };
}

describe('settle: the order of effects', () => {
  it('deliveries that finish the message: no record, the success report first, the removal last', () => {
    const env = message([{ address: 'a@x.example', notify: ['SUCCESS'] }, { address: 'b@x.example' }]);
    const { s, tasks } = setup(env);
    const [task] = tasks as [Task];
    const [a, b] = task.evpids as [string, string];
    // The relay agent marks results relayed when the next hop does not do DSN: a success report is owed for a.
    const effects = settle(task, results({ ...ok(a), relayed: true }, { ...ok(b), relayed: true }), T0, state(s, env));
    assert.deepEqual(words(effects), ['log:00000001', 'log:00000002', 'report:success', 'delivered:00000001', 'delivered:00000002', 'flush', 'finish']);
  });

  it('deliveries that do not finish the message: each recorded before the schedule learns it', () => {
    const env = message([{ address: 'a@x.example' }, { address: 'b@y.example' }]);
    const { s, tasks } = setup(env);
    const task = tasks.find((t) => t.key === 'x.example') as Task;
    const effects = settle(task, results(ok(task.evpids[0] ?? '')), T0, state(s, env));
    assert.deepEqual(words(effects), ['log:00000001', 'record:delivered:00000001', 'delivered:00000001', 'flush', 'finish']);
  });

  it('failures still owed for the message: the delivery is recorded (the report is not queued yet)', () => {
    const env = message([{ address: 'a@x.example' }]);
    const { s, tasks } = setup(env);
    const [task] = tasks as [Task];
    const effects = settle(task, results(ok(task.evpids[0] ?? '')), T0, state(s, env, { owing: true }));
    assert.deepEqual(words(effects), ['log:00000001', 'record:delivered:00000001', 'delivered:00000001', 'flush', 'finish']);
  });

  it('a permanent failure is owed, not recorded: its report and record come from the flush, before the removal', () => {
    const env = message([{ address: 'a@x.example' }, { address: 'b@x.example' }]);
    const { s, tasks } = setup(env);
    const [task] = tasks as [Task];
    const [a, b] = task.evpids as [string, string];
    const effects = settle(task, results(ok(a), perm(b)), T0, state(s, env));
    assert.deepEqual(words(effects), ['log:00000001', 'log:00000002', 'record:delivered:00000001', 'delivered:00000001', 'failed:00000002', 'owe:00000002', 'flush', 'finish']);
    const owe = effects.find((e) => e.kind === 'owe');
    assert.equal(owe?.kind === 'owe' && owe.failure.report, true);
  });

  it('a temporary failure: the delay report before the deferral records, warned recipients not tried now get a fresh record after it', () => {
    const clock = new Clock();
    const env = message([{ address: 'a@x.example' }, { address: 'b@y.example' }]);
    const { s, tasks } = setup(env, clock);
    // b@y.example was deferred an hour after arrival; five hours in, a@x.example fails again.
    const ty = tasks.find((t) => t.key === 'y.example') as Task;
    const tx = tasks.find((t) => t.key === 'x.example') as Task;
    const [b] = ty.evpids as [string];
    const [a] = tx.evpids as [string];
    clock.t = T0 + HOUR;
    s.deferred(b, s.retryPlan(b), '4.2.0 busy', { status: '4.2.0' });
    s.finishTask(ty.id);
    clock.t = T0 + 5 * HOUR;
    const effects = settle(tx, results(temp(a)), clock.t, state(s, env));
    assert.deepEqual(words(effects), ['log:00000001', 'report:delay', 'record:deferred:00000002', 'record:deferred:00000001', 'deferred:00000001', 'flush', 'finish']);
    const report = effects.find((e) => e.kind === 'report');
    assert.deepEqual(report?.kind === 'report' ? report.warned : undefined, [a, b]);
  });

  it('a try past the queue lifetime fails as expired and is owed', () => {
    const clock = new Clock();
    const env = message([{ address: 'a@x.example' }]);
    const { s, tasks } = setup(env, clock);
    const [task] = tasks as [Task];
    clock.t = T0 + 5 * DAY;
    const effects = settle(task, results(temp(task.evpids[0] ?? '')), clock.t, state(s, env));
    assert.deepEqual(words(effects), ['log:00000001', 'log-expired', 'failed:00000001', 'owe:00000001', 'flush', 'finish']);
  });

  it('removed while in flight: logged, recorded failed, then the schedule; no report', () => {
    const env = message([{ address: 'a@x.example' }]);
    const { s, tasks } = setup(env);
    const [task] = tasks as [Task];
    const [a] = task.evpids as [string];
    s.remove(a);
    const effects = settle(task, results(perm(a)), T0, state(s, env));
    assert.deepEqual(words(effects), ['log:00000001', 'log-removed:00000001', 'record:failed:00000001', 'failed:00000001', 'flush', 'finish']);
  });

  it('stopping: a temporary failure is not an attempt: nothing recorded, nothing scheduled', () => {
    const env = message([{ address: 'a@x.example' }, { address: 'b@y.example' }]);
    const { s, tasks } = setup(env);
    const tx = tasks.find((t) => t.key === 'x.example') as Task;
    const effects = settle(tx, results(temp(tx.evpids[0] ?? '')), T0, state(s, env, { running: false }));
    assert.deepEqual(words(effects), ['log:00000001', 'flush', 'finish']);
  });

  it('is pure: the schedule is left as it was', () => {
    const env = message([{ address: 'a@x.example' }, { address: 'b@x.example' }]);
    const { s, tasks } = setup(env);
    const [task] = tasks as [Task];
    const [a, b] = task.evpids as [string, string];
    const before = JSON.stringify(s.list());
    settle(task, results(ok(a), perm(b)), T0, state(s, env));
    assert.equal(JSON.stringify(s.list()), before);
  });
});

/** A spool and a reporter that write down what is asked of them, in order. */
function fakes(reportOk = true): { calls: string[]; spool: { appendOutcome(e: string, o: RecipientOutcome): Promise<void>; remove(m: string): Promise<void> }; reporter: { send(env: Envelope, kind: string): Promise<boolean> } } {
  const calls: string[] = [];
  return {
    calls,
    spool: {
      appendOutcome: async (evpid, o) => void calls.push(`record:${o.kind}:${evpid.slice(8)}`),
      remove: async () => void calls.push('remove'),
    },
    reporter: {
      send: async (_env, kind) => {
        calls.push(`report:${kind}`);
        return reportOk;
      },
    },
  };
}

describe('effects: carried out in order', () => {
  for (const reportOk of [true, false]) {
    it(`a permanent failure: the failure report is queued before the record that owes it, the removal after both (report ${reportOk ? 'queued' : 'refused'})`, async () => {
      const env = message([{ address: 'a@x.example' }]);
      const { s, tasks, clock } = setup(env);
      const [task] = tasks as [Task];
      const [a] = task.evpids as [string];
      const owed = new OwedFailures();
      const f = fakes(reportOk);
      const effects = new Effects({ spool: f.spool, schedule: s, owed, reporter: f.reporter, log: new MailLog({ sink: () => undefined }), stats: new Stats(), now: clock.now, retryMs: MIN, running: () => true, removed: () => f.calls.push('removed') });
      await effects.run(env, settle(task, results(perm(a)), T0, state(s, env)));
      s.finishTask(task.id);
      // Refused: nothing recorded, nothing removed; the failure stays owed, tried again after retryMs.
      assert.deepEqual(f.calls, reportOk ? ['report:failure', 'record:failed:00000001', 'remove', 'removed'] : ['report:failure']);
      assert.equal(owed.has(env.msgid), !reportOk);
    });
  }

  it('deliveries that finish the message: the success report, then the removal, and no record', async () => {
    const env = message([{ address: 'a@x.example', notify: ['SUCCESS'] }]);
    const { s, tasks, clock } = setup(env);
    const [task] = tasks as [Task];
    const f = fakes();
    const effects = new Effects({ spool: f.spool, schedule: s, owed: new OwedFailures(), reporter: f.reporter, log: new MailLog({ sink: () => undefined }), stats: new Stats(), now: clock.now, retryMs: MIN, running: () => true, removed: () => undefined });
    // The relay agent marks the result relayed (the next hop does not do DSN): a success report is owed.
    await effects.run(env, settle(task, results({ ...ok(task.evpids[0] ?? ''), relayed: true }), T0, state(s, env)));
    assert.deepEqual(f.calls, ['report:success', 'remove']);
  });
});
