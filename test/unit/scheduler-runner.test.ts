/*
 * test/unit/scheduler-runner.test.ts — the queue runner on a real FsSpool in
 * a temp folder, with fake (scripted) delivery agents and a fake clock:
 * deliveries, outcomes on disk, restarts, reports parsed by Python's email.
 *
 * The agents here are FakeAgent instances that answer from a script; the
 * real local and relay agents are tested on their own, and end-to-end.
 *
 * Why this file is long (~570 lines): every case needs the same fixture
 * (a spool, scripted agents, a clock, a runner) and a scenario told over
 * time; the pure ordering of effects is tested apart, in a short table
 * (scheduler-settle.test.ts).
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.js';
import type { Action, Config } from '../../src/config/model.js';
import type { DeliveryAgent, DeliveryTask, RecipientResult } from '../../src/delivery/agent.js';
import { MailLog } from '../../src/log/maillog.js';
import { QueueRunner, type RunnerOptions } from '../../src/scheduler/runner.js';
import type { Router } from '../../src/rules/router.js';
import type { Envelope, EnvelopeRecipient } from '../../src/mail/envelope.js';
import { FsSpool, newEvpid } from '../../src/spool/fs/fs-spool.js';
import { Stats } from '../../src/stats.js';
import type { DsnResultHint } from '../../src/bounce/rules.js';
import { readAll, tmpSpoolRoot } from '../helpers/spool-fixtures.js';
import { field, parseDsn } from './bounce-parse.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 2, 1, 12, 0, 0);

type Answer = Omit<RecipientResult, 'evpid'> & DsnResultHint;
type Script = (rcpt: EnvelopeRecipient, attempt: number, task: DeliveryTask) => Answer | Promise<Answer>;

const OK: Answer = { status: 'ok', enhanced: '2.0.0', detail: 'delivered' };
const TEMP: Answer = { status: 'tempfail', enhanced: '4.4.1', detail: 'connection refused', remoteMta: 'dns; mx.example.org' };
const PERM: Answer = { status: 'permfail', enhanced: '5.1.1', detail: 'user unknown', remoteMta: 'dns; mx.example.org', diagnostic: 'smtp; 550 5.1.1 user unknown' };

/** A delivery agent that answers from a script and remembers every call. Not a real agent. */
class FakeAgent implements DeliveryAgent {
  readonly calls: { evpids: string[]; addresses: string[]; attempt: number; body: Buffer; sender: string }[] = [];
  constructor(
    readonly kind: 'mda' | 'mta',
    public script: Script = () => OK,
  ) {}

  key(_action: Action, rcpt: EnvelopeRecipient): string {
    const [user, domain] = rcpt.address.split('@') as [string, string];
    return this.kind === 'mta' ? domain : user;
  }

  async deliver(task: DeliveryTask): Promise<RecipientResult[]> {
    const body = await readAll(task.openBody());
    this.calls.push({ evpids: task.recipients.map((r) => r.evpid), addresses: task.recipients.map((r) => r.address), attempt: task.attempt, body, sender: task.envelope.sender });
    const out: RecipientResult[] = [];
    for (const r of task.recipients) out.push({ evpid: r.evpid, ...(await this.script(r, task.attempt, task)) });
    return out;
  }

  /** Bodies delivered to `address`. */
  bodiesFor(address: string): Buffer[] {
    return this.calls.filter((c) => c.addresses.includes(address)).map((c) => c.body);
  }
}

/** Reports to example.net go to the local agent (user alice); anything else has no route. */
const router: Router = (address) => (address.endsWith('@example.net') ? { action: 'local', dest: { kind: 'user', user: address.split('@')[0] as string } } : { error: 'no rule matches' });

function baseConfig(): Config {
  const res = loadConfigText(['hostname "mail.example.org"', 'action "local" mbox', 'action "relay" relay', 'match from any for domain "example.org" action "local"', 'match from any for any action "relay"', ''].join('\n'), 'test.conf');
  if (!res.config) throw new Error('test config does not load');
  return res.config;
}

interface Rcpt {
  address: string;
  action?: string;
  notify?: EnvelopeRecipient['notify'];
  orcpt?: string;
  ttl?: number;
}

describe('QueueRunner', () => {
  let tmp: ReturnType<typeof tmpSpoolRoot>;
  let spool: FsSpool;
  let clock: { t: number };
  let logs: string[];
  let stats: Stats;
  let mda: FakeAgent;
  let mta: FakeAgent;
  let runner: QueueRunner;
  let config: Config;

  beforeEach(async () => {
    tmp = tmpSpoolRoot();
    spool = new FsSpool({ root: tmp.root });
    await spool.open();
    clock = { t: T0 };
    logs = [];
    stats = new Stats();
    mda = new FakeAgent('mda');
    mta = new FakeAgent('mta');
    config = baseConfig();
  });

  afterEach(async () => {
    await runner?.stop();
    await spool.close();
    tmp.cleanup();
  });

  function makeRunner(over: Partial<RunnerOptions> = {}): QueueRunner {
    runner = new QueueRunner({
      spool,
      config,
      log: new MailLog({ sink: (l) => logs.push(l) }),
      stats,
      agents: { mda, mta },
      router,
      now: () => clock.t,
      random: () => 0.5,
      ...over,
    });
    return runner;
  }

  async function restart(over: Partial<RunnerOptions> = {}): Promise<QueueRunner> {
    await runner.stop();
    await spool.close();
    spool = new FsSpool({ root: tmp.root });
    await spool.open();
    const r = makeRunner(over);
    await r.start();
    await r.idle();
    return r;
  }

  /** Commit a message to the spool the way the SMTP session does. */
  async function submit(rcpts: Rcpt[], over: Partial<Omit<Envelope, 'msgid' | 'size' | 'version'>> = {}, body = 'Subject: test\r\nFrom: alice@example.net\r\n\r\nhello\r\n'): Promise<Envelope> {
    const w = await spool.createMessage();
    w.write(Buffer.from(body, 'utf8'));
    const taken = new Set<string>();
    return w.commit({
      sender: 'alice@example.net',
      recipients: rcpts.map((r) => {
        const evpid = newEvpid(w.msgid, taken);
        taken.add(evpid);
        return { evpid, address: r.address, action: r.action ?? (r.address.endsWith('@example.org') ? 'local' : 'relay'), notify: r.notify, orcpt: r.orcpt, ttl: r.ttl };
      }),
      body: '7BIT',
      smtputf8: false,
      arrival: clock.t,
      client: { address: '192.0.2.7', port: 40000, proto: 'ESMTP', listener: '0.0.0.0:25' },
      ...over,
    });
  }

  /** Submit, tell the runner, wait until it is idle. */
  async function deliver(rcpts: Rcpt[], over: Parameters<typeof submit>[1] = {}): Promise<Envelope> {
    const env = await submit(rcpts, over);
    runner.enqueued(env);
    await runner.idle();
    return env;
  }

  async function advance(ms: number): Promise<void> {
    clock.t += ms;
    await runner.kick();
  }

  const lines = (re: RegExp): string[] => logs.filter((l) => re.test(l));

  /** Wait (in real time, at most 5 s) until `cond` holds. */
  async function until(cond: () => boolean): Promise<void> {
    for (let i = 0; i < 1000 && !cond(); i++) await new Promise((res) => setTimeout(res, 5));
    assert.ok(cond(), 'condition not reached in 5 s');
  }

  it('delivers, records, removes, logs and counts', async () => {
    await makeRunner().start();
    const env = await deliver([{ address: 'bob@example.org' }, { address: 'carol@example.com' }, { address: 'dave@example.com' }]);
    assert.deepEqual(mda.calls.map((c) => c.addresses), [['bob@example.org']]);
    assert.deepEqual(mta.calls.map((c) => c.addresses), [['carol@example.com', 'dave@example.com']], 'one task per message and domain');
    assert.equal(mta.calls[0]?.body.toString(), 'Subject: test\r\nFrom: alice@example.net\r\n\r\nhello\r\n');
    assert.deepEqual(await spool.list(), [], 'removed once every recipient is delivered');
    assert.equal(lines(/^mda delivery ok /).length, 1);
    assert.equal(lines(/^mta delivery ok /).length, 2);
    assert.match(lines(/^mda delivery ok/)[0] ?? '', new RegExp(`evpid=${env.recipients[0]?.evpid} from=<alice@example.net> to=<bob@example.org> rcpt=<bob@example.org> action=local delay=0s attempts=1 stat="2.0.0 delivered"`));
    assert.equal(stats.get('scheduler.delivery.ok'), 3);
    assert.equal(stats.get('scheduler.envelope'), 0);
    assert.equal(stats.get('scheduler.envelope.inflight'), 0);
    assert.equal(runner.envelopes().length, 0);
  });

  it('tempfail, then a retry after the backoff delivers', async () => {
    mta.script = (_r, attempt) => (attempt === 1 ? TEMP : OK);
    await makeRunner().start();
    const env = await deliver([{ address: 'carol@example.com' }]);
    const evpid = env.recipients[0]?.evpid as string;
    const stored = await spool.load(env.msgid);
    assert.deepEqual(stored.outcomes.get(evpid), [{ kind: 'deferred', at: T0, detail: 'connection refused', attempts: 1, nextTry: T0 + 5 * MIN }]);
    const [v] = runner.envelopes();
    assert.deepEqual([v?.state, v?.attempts, v?.nextTry, v?.lastError], ['deferred', 1, T0 + 5 * MIN, 'connection refused']);
    assert.equal(stats.get('scheduler.delivery.tempfail'), 1);
    await advance(5 * MIN - 1);
    assert.equal(mta.calls.length, 1, 'not before the next try');
    await advance(1);
    assert.deepEqual(mta.calls.map((c) => c.attempt), [1, 2]);
    assert.deepEqual(await spool.list(), []);
    assert.match(lines(/^mta delivery ok/)[0] ?? '', /delay=5m0s attempts=2/);
  });

  it('a permanent failure: one report, parsed, delivered to the sender; the message removed', async () => {
    mta.script = (r) => (r.address === 'carol@example.com' ? PERM : OK);
    await makeRunner().start();
    const env = await deliver([{ address: 'carol@example.com', orcpt: 'rfc822;Carol@example.com' }, { address: 'dave@example.com' }], { envid: 'ENV-42' });
    assert.deepEqual(await spool.list(), [], 'original and report both done');
    const reports = mda.bodiesFor('alice@example.net');
    assert.equal(reports.length, 1);
    assert.equal(mda.calls[0]?.sender, '', 'reports come from <>');
    assert.equal(stats.get('queue.bounce'), 1);
    assert.equal(stats.get('scheduler.delivery.permfail'), 1);
    assert.match(lines(/^bounce sent/)[0] ?? '', new RegExp(`to=<alice@example.net> for=${env.msgid} kind=failure rcpts=<carol@example.com>`));

    const p = await parseDsn(reports[0] as Buffer);
    assert.deepEqual(p.defects, []);
    assert.equal(field(p.headers, 'To'), '<alice@example.net>');
    assert.equal(field(p.headers, 'Subject'), 'Undelivered Mail Returned to Sender');
    assert.deepEqual(p.parts.map((x) => x.type), ['text/plain', 'message/delivery-status', 'message/rfc822']);
    const [m, r, ...more] = p.parts[1]?.blocks ?? [];
    assert.equal(more.length, 0, 'only the failed recipient');
    assert.equal(field(m, 'Reporting-MTA'), 'dns; mail.example.org');
    assert.equal(field(m, 'Original-Envelope-Id'), 'ENV-42');
    assert.equal(field(m, 'X-Postern-Queue-ID'), env.msgid);
    assert.equal(field(r, 'Original-Recipient'), 'rfc822;Carol@example.com');
    assert.equal(field(r, 'Final-Recipient'), 'rfc822;carol@example.com');
    assert.equal(field(r, 'Action'), 'failed');
    assert.equal(field(r, 'Status'), '5.1.1');
    assert.equal(field(r, 'Remote-MTA'), 'dns; mx.example.org');
    assert.equal(field(r, 'Diagnostic-Code'), 'smtp; 550 5.1.1 user unknown');
    assert.equal(field(p.parts[2]?.message?.headers, 'Subject'), 'test');
  });

  it('the report is a message in the spool from <>, routed by the router, that never reports', async () => {
    mta.script = () => PERM;
    await makeRunner().start();
    runner.pause('mda');
    const env = await deliver([{ address: 'carol@example.com' }], { ret: 'HDRS' });
    const ids = await spool.list();
    assert.equal(ids.length, 1);
    assert.notEqual(ids[0], env.msgid, 'the original is gone, the report waits');
    const report = await spool.load(ids[0] as string);
    assert.equal(report.envelope.sender, '');
    assert.deepEqual(
      report.envelope.recipients.map((r) => ({ address: r.address, action: r.action, dest: r.dest, notify: r.notify })),
      [{ address: 'alice@example.net', action: 'local', dest: { kind: 'user', user: 'alice' }, notify: 'NEVER' }],
    );
    assert.equal(report.envelope.body, '7BIT');
    assert.equal(report.envelope.smtputf8, false);
    const p = await parseDsn(await readAll(spool.openBody(ids[0] as string)));
    assert.deepEqual(p.parts.map((x) => x.type), ['text/plain', 'message/delivery-status', 'text/rfc822-headers'], 'RET=HDRS');
    assert.equal(runner.envelopes()[0]?.state, 'pending');
    runner.resume('mda');
    await runner.idle();
    assert.deepEqual(await spool.list(), []);
  });

  it('failures of one message close together make one report', async () => {
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    mta.script = async (r) => {
      if (r.address.endsWith('@slow.example')) await gate;
      return PERM;
    };
    await makeRunner().start();
    const env = await submit([{ address: 'a@fast.example' }, { address: 'b@slow.example' }]);
    runner.enqueued(env);
    await until(() => mta.calls.length >= 2);
    await new Promise((res) => setTimeout(res, 20));
    assert.equal(lines(/^bounce sent/).length, 0, 'waits for the other recipient in flight');
    release();
    await runner.idle();
    assert.equal(lines(/^bounce sent/).length, 1);
    const p = await parseDsn(mda.bodiesFor('alice@example.net')[0] as Buffer);
    assert.deepEqual(p.parts[1]?.blocks?.slice(1).map((b) => field(b, 'Final-Recipient')), ['rfc822;a@fast.example', 'rfc822;b@slow.example']);
  });

  it('but never waits longer than the gather time', async () => {
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    mta.script = async (r) => {
      if (r.address.endsWith('@slow.example')) {
        await gate;
        return OK;
      }
      return PERM;
    };
    await makeRunner({ bounce: { gatherMs: 10_000 } }).start();
    runner.enqueued(await submit([{ address: 'a@fast.example' }, { address: 'b@slow.example' }]));
    await until(() => mta.calls.length >= 2);
    await new Promise((res) => setTimeout(res, 20));
    clock.t += 10_000;
    runner.enqueued(await submit([{ address: 'nobody@example.org' }])); // any event runs the loop
    await until(() => lines(/^bounce sent/).length > 0);
    release();
    await runner.idle();
    assert.equal(lines(/^bounce sent/).length, 1);
  });

  it('holds at most maxActiveMessages in memory; the rest wait in the spool and are loaded as room frees up', async () => {
    mta.script = () => TEMP;
    const r = makeRunner({ maxActiveMessages: 3 });
    await r.start();
    const envs = [];
    for (let i = 0; i < 5; i++) {
      const env = await submit([{ address: `m${i}@m.example` }]);
      r.enqueued(env);
      envs.push(env);
    }
    await r.idle();
    assert.equal(r.schedule.messages, 3, 'three in memory');
    assert.equal((await spool.list()).length, 5, 'all five in the spool');
    assert.equal(mta.calls.length, 3);
    // Deliveries free the room: the two waiting are loaded and delivered too.
    mta.script = () => OK;
    await advance(2 * HOUR);
    await until(() => mta.calls.filter((c) => c.attempt === 1).length === 5);
    await until(() => r.schedule.messages === 0);
    await r.idle();
    assert.deepEqual(await spool.list(), []);
    assert.match(logs.join('\n'), /2 more message\(s\) loaded from the queue/);
  });

  it('the limit counts recipients too: a message with many fills the room', async () => {
    mta.script = () => TEMP;
    const r = makeRunner({ maxActiveMessages: 4 });
    await r.start();
    const big = await submit([1, 2, 3, 4, 5].map((i) => ({ address: `r${i}@r.example` })));
    r.enqueued(big);
    const small = await submit([{ address: 'one@r.example' }]);
    r.enqueued(small);
    await r.idle();
    assert.equal(r.schedule.messages, 1, 'the big one alone (one message always fits)');
    assert.equal(r.schedule.size, 5);
    assert.equal((await spool.list()).length, 2);
  });

  it('a start-up over the limit loads what fits and says the rest wait', async () => {
    for (let i = 0; i < 4; i++) await submit([{ address: `s${i}@s.example` }]);
    mta.script = () => TEMP;
    const r = makeRunner({ maxActiveMessages: 2 });
    await r.start();
    await r.idle();
    assert.equal(r.schedule.messages, 2);
    assert.match(logs.join('\n'), /in 2 message\(s\) loaded from the queue \(the limit of 2 in memory; the rest wait in the spool\)/);
  });

  it('a restart does not redo delivered recipients', async () => {
    mta.script = (r) => (r.address === 'b@b.example' ? TEMP : OK);
    await makeRunner().start();
    const env = await deliver([{ address: 'a@a.example' }, { address: 'b@b.example' }, { address: 'c@example.org' }]);
    assert.equal(mta.calls.length, 2);
    assert.equal(mda.calls.length, 1);
    clock.t += 10 * MIN;
    mta.script = () => OK;
    await restart();
    assert.deepEqual(mta.calls.slice(2).map((c) => [c.addresses, c.attempt]), [[['b@b.example'], 2]], 'only the deferred one, as its second attempt');
    assert.equal(mda.calls.length, 1);
    assert.deepEqual(await spool.list(), []);
    assert.match(logs.join('\n'), new RegExp(`3 envelope\\(s\\) in 1 message\\(s\\) loaded`));
    void env;
  });

  it('a restart keeps a deferred recipient waiting for its next try', async () => {
    mta.script = () => TEMP;
    await makeRunner().start();
    await deliver([{ address: 'b@b.example' }]);
    clock.t += MIN;
    await restart();
    assert.equal(mta.calls.length, 1);
    const [v] = runner.envelopes();
    assert.deepEqual([v?.state, v?.attempts, v?.nextTry], ['deferred', 1, T0 + 5 * MIN]);
    await advance(4 * MIN);
    assert.equal(mta.calls.length, 2);
  });

  it('start-up finishes a message whose recipients are all final (crash before remove)', async () => {
    const env = await submit([{ address: 'a@a.example' }, { address: 'b@b.example' }]);
    await spool.appendOutcome(env.recipients[0]?.evpid as string, { kind: 'delivered', at: T0, detail: 'ok' });
    await spool.appendOutcome(env.recipients[1]?.evpid as string, { kind: 'failed', at: T0, detail: 'user unknown' });
    await makeRunner().start();
    await runner.idle();
    assert.deepEqual(await spool.list(), []);
    assert.equal(mta.calls.length + mda.calls.length, 0, 'nothing tried again, no second report');
  });

  it('expiry: a report with the last error, logged and counted', async () => {
    mta.script = () => TEMP;
    await makeRunner().start();
    const env = await deliver([{ address: 'b@b.example', ttl: 3600 }]);
    for (let i = 0; i < 10 && (await spool.list()).includes(env.msgid); i++) await advance(20 * MIN);
    assert.deepEqual(await spool.list(), []);
    assert.equal(lines(/^queue expired /).length, 1);
    assert.equal(stats.get('scheduler.envelope.expired'), 1);
    assert.ok(mta.calls.length >= 3, `${mta.calls.length} tries in the hour`);
    const p = await parseDsn(mda.bodiesFor('alice@example.net')[0] as Buffer);
    const r = p.parts[1]?.blocks?.[1];
    assert.equal(field(r, 'Action'), 'failed');
    assert.equal(field(r, 'Status'), '4.4.1');
    assert.match(field(r, 'Diagnostic-Code') ?? '', /connection refused/);
    assert.match(p.parts[0]?.text ?? '', /queue lifetime expired; last error: connection refused/);
  });

  it('delay warnings: once per interval, at the next try, only when NOTIFY allows', async () => {
    config = { ...config, bounce: { warnIntervals: [3600, 3 * 3600] } };
    mta.script = () => TEMP;
    await makeRunner().start();
    await deliver([{ address: 'a@a.example' }, { address: 'b@a.example', notify: ['FAILURE'] }]);
    for (let t = 0; t < 4 * HOUR; t += 10 * MIN) await advance(10 * MIN);
    const reports = mda.bodiesFor('alice@example.net');
    assert.equal(reports.length, 2, 'after 1 h and after 3 h');
    for (const body of reports) {
      const p = await parseDsn(body);
      assert.equal(field(p.headers, 'Subject'), 'Delivery Status Notification (Delay)');
      assert.deepEqual(p.parts.map((x) => x.type), ['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
      const blocks = p.parts[1]?.blocks ?? [];
      assert.equal(blocks.length, 2, 'only the recipient whose NOTIFY allows DELAY');
      assert.equal(field(blocks[1], 'Final-Recipient'), 'rfc822;a@a.example');
      assert.equal(field(blocks[1], 'Action'), 'delayed');
      assert.equal(field(blocks[1], 'Status'), '4.4.1');
      assert.equal(new Date(field(blocks[1], 'Will-Retry-Until') ?? '').getTime(), T0 + config.queue.ttl * 1000);
    }
    // A restart remembers the warnings sent (from the deferral records).
    await restart();
    await advance(HOUR);
    assert.equal(mda.bodiesFor('alice@example.net').length, 2);
  });

  it('NOTIFY=NEVER, NOTIFY=SUCCESS only, and the null sender get no failure report', async () => {
    mta.script = () => PERM;
    await makeRunner().start();
    await deliver([{ address: 'a@a.example', notify: 'NEVER' }, { address: 'b@b.example', notify: ['SUCCESS'] }]);
    await deliver([{ address: 'c@c.example' }], { sender: '' });
    assert.deepEqual(await spool.list(), []);
    assert.equal(mda.calls.length, 0);
    assert.equal(stats.get('queue.bounce'), 0);
    assert.equal(lines(/^bounce dropped .*reason="null sender"/).length, 1);
  });

  it('NOTIFY=SUCCESS: delivered locally, relayed, or left to a next hop that speaks DSN', async () => {
    mta.script = (r) => (r.address === 'c@dsn.example' ? OK : { ...OK, relayed: true, remoteMta: 'dns; mx.b.example', diagnostic: 'smtp; 250 2.0.0 queued' });
    await makeRunner().start();
    await deliver([{ address: 'a@example.org', notify: ['SUCCESS'] }, { address: 'b@b.example', notify: ['SUCCESS', 'FAILURE'] }, { address: 'c@dsn.example', notify: ['SUCCESS'] }, { address: 'd@b.example' }]);
    const reports = mda.bodiesFor('alice@example.net');
    assert.equal(reports.length, 2, 'one per task that owed one');
    const actions: string[] = [];
    for (const body of reports) {
      const p = await parseDsn(body);
      assert.equal(field(p.headers, 'Subject'), 'Delivery Status Notification (Success)');
      for (const b of p.parts[1]?.blocks?.slice(1) ?? []) actions.push(`${field(b, 'Final-Recipient')} ${field(b, 'Action')}`);
    }
    assert.deepEqual(actions.sort(), ['rfc822;a@example.org delivered', 'rfc822;b@b.example relayed']);
  });

  it('no route for the report: logged and dropped, the message still finishes', async () => {
    mta.script = () => PERM;
    await makeRunner().start();
    await deliver([{ address: 'a@a.example' }], { sender: 'someone@nowhere.example' });
    assert.deepEqual(await spool.list(), []);
    assert.equal(lines(/^bounce dropped .*reason="no route: no rule matches"/).length, 1);
  });

  it('ETRN: 251 when nothing waits, 250 and a try now when something does', async () => {
    mta.script = (_r, attempt) => (attempt === 1 ? TEMP : OK);
    await makeRunner().start();
    assert.deepEqual(runner.etrn('example.com'), { code: 251, enhanced: '2.0.0', lines: ['No messages waiting for node example.com'] });
    await deliver([{ address: 'a@example.com' }]);
    assert.deepEqual(runner.etrn('EXAMPLE.com'), { code: 250, enhanced: '2.0.0', lines: ['Queuing for node example.com started'] });
    await runner.idle();
    assert.equal(mta.calls.length, 2);
    assert.deepEqual(await spool.list(), []);
    assert.equal(runner.etrn('#queue').code, 458);
  });

  it('pause and resume relaying', async () => {
    await makeRunner().start();
    runner.pause('mta');
    await deliver([{ address: 'a@a.example' }, { address: 'b@example.org' }]);
    assert.equal(mta.calls.length, 0);
    assert.equal(mda.calls.length, 1);
    runner.resume('mta');
    await runner.idle();
    assert.equal(mta.calls.length, 1);
    assert.deepEqual(await spool.list(), []);
  });

  it('hold survives a restart; release delivers', async () => {
    await makeRunner().start();
    runner.pause('all');
    const env = await deliver([{ address: 'a@a.example' }]);
    assert.equal(await runner.hold(env.msgid), 1);
    runner.resume('all');
    await runner.idle();
    assert.equal(mta.calls.length, 0);
    await restart();
    assert.equal(runner.envelopes()[0]?.state, 'held');
    assert.equal(mta.calls.length, 0);
    assert.equal(await runner.release('all'), 1);
    await runner.idle();
    assert.equal(mta.calls.length, 1);
    assert.deepEqual(await spool.list(), []);
  });

  it('remove drops a message without a report', async () => {
    mta.script = () => TEMP;
    await makeRunner().start();
    const env = await deliver([{ address: 'a@a.example' }, { address: 'b@b.example' }]);
    assert.equal(await runner.remove(env.msgid), 2);
    await runner.idle();
    assert.deepEqual(await spool.list(), []);
    assert.equal(mda.calls.length, 0);
    assert.equal(lines(/^queue removed /).length, 2);
  });

  it('stop aborts a running task; nothing is recorded for it and the next start tries again', async () => {
    let aborted = false;
    mta.script = (_r, _a, task) =>
      new Promise<Answer>((resolve) => {
        if (task.signal.aborted) return resolve(TEMP);
        task.signal.addEventListener('abort', () => {
          aborted = true;
          resolve({ ...TEMP, detail: 'aborted' });
        });
      });
    await makeRunner().start();
    const env = await submit([{ address: 'a@a.example' }]);
    runner.enqueued(env);
    await until(() => mta.calls.length >= 1);
    await runner.stop();
    assert.equal(aborted, true);
    assert.equal((await spool.load(env.msgid)).outcomes.size, 0);
    mta.script = () => OK;
    await restart();
    assert.deepEqual(mta.calls.map((c) => c.attempt), [1, 1]);
    assert.deepEqual(await spool.list(), []);
  });

  it('a failing agent and an unknown action are temporary failures', async () => {
    mta.deliver = async () => {
      throw new Error('boom');
    };
    await makeRunner().start();
    const env = await deliver([{ address: 'a@a.example' }, { address: 'b@b.example', action: 'gone' }]);
    const views = runner.envelopes();
    assert.deepEqual(views.map((v) => [v.state, v.lastError]), [
      ['deferred', 'mta agent error: boom'],
      ['deferred', 'no action "gone" in the configuration'],
    ]);
    assert.equal((await spool.load(env.msgid)).outcomes.size, 2);
  });

  it('show queue view', async () => {
    mta.script = () => TEMP;
    await makeRunner().start();
    const env = await deliver([{ address: 'a@a.example' }]);
    const [v] = runner.envelopes();
    assert.ok(v);
    assert.deepEqual(
      { evpid: v.evpid, msgid: v.msgid, sender: v.sender, rcpt: v.rcpt.address, action: v.action, ctime: v.ctime, expire: v.expire, lastTry: v.lastTry, attempts: v.attempts, nextTry: v.nextTry, state: v.state, lastError: v.lastError },
      { evpid: env.recipients[0]?.evpid, msgid: env.msgid, sender: 'alice@example.net', rcpt: 'a@a.example', action: 'relay', ctime: T0, expire: T0 + config.queue.ttl * 1000, lastTry: T0, attempts: 1, nextTry: T0 + 5 * MIN, state: 'deferred', lastError: 'connection refused' },
    );
  });
});
