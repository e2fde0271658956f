/*
 * scheduler/runner.ts — the queue runner: runs the delivery agents when the
 * schedule (schedule.ts) says so, records every outcome in the spool, sends
 * delivery status notifications, and removes finished messages.
 *
 * Order of durable steps, per message (all of them for one message run one
 * after the other, never interleaved: serial()):
 *
 *   delivered   [success DSN committed, if NOTIFY=SUCCESS] → "delivered" record
 *               (none when this delivery finishes the message: it is removed)
 *   deferred    [delay DSN committed, if a warn interval passed] → "deferred" record
 *   failed      failure DSN committed (gathered per message: at once when no
 *               other recipient of it is in flight, else after gatherMs) →
 *               "failed" record
 *   finished    every recipient has a final record → spool.remove()
 *
 * Crash reasoning. The invariant is: a final record (delivered/failed) is
 * written only after the report it owes is durable, and a deferral record
 * written at time T only after the delay warnings due by T are durable.
 *   - Crash during an agent run, or after it but before the record: no
 *     record, so the recipient is tried again at start-up — a repeated
 *     delivery at worst (the price of at-least-once), never a lost one.
 *   - Crash after a report was committed but before the record that owed
 *     it: the recipient is tried again and the report may be sent again —
 *     a repeated report, never a lost one.
 *   - Crash after the deliveries that finished a message but before
 *     remove() (no record was written for them): they are made again — a
 *     repeated delivery, the same price as a crash during the agent run.
 *   - Crash after the last final record but before remove(): at start-up
 *     every recipient is final, every report they owed is already queued
 *     (by the invariant), so the message is simply removed.
 *   - A report is itself a message committed to the spool before anything
 *     depends on it; from then on it is delivered like any other.
 *   - Delay warnings are not recorded as such: at start-up the warnings
 *     sent are those whose interval had passed at the last deferral record
 *     (replay.ts). A warning gathered for a recipient not being tried gets
 *     a fresh deferral record after it, so that stays true.
 * Spool errors (disk full) are not crashes: a failure report that cannot
 * be queued keeps its recipients unrecorded and is tried again after
 * retryMs; a success or delay report that cannot be queued is logged and
 * lost (the delivery record matters more than the notice).
 *
 * stop(): no new tasks; running ones are aborted (their AbortSignal) and
 * awaited up to the grace time; their deliveries and permanent failures are
 * recorded, their temporary failures are not (the abort caused them), and
 * gathered failure reports are flushed. Anything later is left for the next
 * start.
 */
import type { Config } from '../config/model.js';
import type { DeliveryAgent } from '../delivery/agent.js';
import type { MailLog } from '../log/maillog.js';
import { reply, type Reply } from '../mail/reply.js';
import type { SchedulerSeam } from '../queue/seam.js';
import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import type { Spool } from '../spool/spool.js';
import type { Stats } from '../stats.js';
import { Reporter } from '../bounce/reporter.js';
import { classify, logExpired, runTask, type Result } from './dispatch.js';
import { Effects } from './effects.js';
import { OwedFailures, type Owed } from './owed.js';
import type { AgentKind, BackoffOverride, LimitsOverride } from './policy.js';
import type { Router } from '../rules/router.js';
import { Schedule } from './schedule.js';
import { parseTarget } from './target.js';
import { expiryFailure, settle } from './settle.js';
import type { Classified, EnvelopeView, Task } from './types.js';

export interface RunnerOptions {
  readonly spool: Spool;
  readonly config: Config;
  readonly log: MailLog;
  readonly stats: Stats;
  readonly agents: { readonly mda: DeliveryAgent; readonly mta: DeliveryAgent };
  /** Routes the reports Postern writes; without one, reports are logged and dropped. */
  readonly router?: Router;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly limits?: LimitsOverride;
  readonly backoff?: BackoffOverride;
  readonly bounce?: {
    /** Return the whole original only up to this size (default 1 MiB); headers beyond. */
    readonly maxReturnBytes?: number;
    /** Wait at most this long for other recipients of a message before reporting failures (default 30 s). */
    readonly gatherMs?: number;
    /** Retry a report that could not be queued after this long (default 60 s). */
    readonly retryMs?: number;
  };
  /** How long stop() waits for running tasks (default 5 s). */
  readonly stopGraceMs?: number;
  /**
   * Messages, and recipients, the scheduler holds in memory at most
   * (default: the configuration's queue active-limit, 20,000, as Postfix's
   * qmgr_message_active_limit and qmgr_message_recipient_limit). More wait
   * in the spool and are loaded as room frees up, so a huge queue costs
   * disk, not memory.
   */
  readonly maxActiveMessages?: number;
}

const DEFAULT_GATHER_MS = 30_000;
/** A refill waits this long after room frees up, so one scan of the spool loads many messages. */
const REFILL_DELAY_MS = 200;
const DEFAULT_RETRY_MS = 60_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

export class QueueRunner implements SchedulerSeam {
  readonly schedule: Schedule;
  private readonly spool: Spool;
  private config: Config;
  private readonly log: MailLog;
  private readonly stats: Stats;
  private readonly agents: Readonly<Record<AgentKind, DeliveryAgent>>;
  private readonly now: () => number;
  private readonly effects: Effects;
  private readonly gatherMs: number;
  private readonly stopGraceMs: number;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private maxActive: number;
  /** maxActiveMessages was given (tests): reload does not change it. */
  private readonly fixedActiveLimit: boolean;
  /** Messages in the spool that the schedule does not hold (over maxActive). */
  private backlog = false;
  /** Counts enqueues refused for want of room (a scan that overlaps one must not clear backlog). */
  private overflowSeq = 0;
  private refillTimer: NodeJS.Timeout | undefined;
  private refilling: Promise<void> | undefined;
  private readonly running = new Map<number, { readonly controller: AbortController; readonly done: Promise<void> }>();
  private readonly owed = new OwedFailures();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly work = new Set<Promise<unknown>>();
  private timer: { handle: NodeJS.Timeout; at: number } | undefined;

  constructor(opts: RunnerOptions) {
    this.spool = opts.spool;
    this.config = opts.config;
    this.log = opts.log;
    this.stats = opts.stats;
    this.agents = opts.agents;
    this.now = opts.now ?? Date.now;
    const reporter = new Reporter({
      spool: opts.spool,
      router: opts.router,
      hostname: opts.config.hostname,
      log: opts.log,
      stats: opts.stats,
      now: this.now,
      maxReturnBytes: opts.bounce?.maxReturnBytes,
      queued: (report) => this.enqueued(report),
    });
    this.gatherMs = opts.bounce?.gatherMs ?? DEFAULT_GATHER_MS;
    this.stopGraceMs = opts.stopGraceMs ?? 5_000;
    this.fixedActiveLimit = opts.maxActiveMessages !== undefined;
    this.maxActive = opts.maxActiveMessages ?? opts.config.queue.activeLimit;
    if (!Number.isSafeInteger(this.maxActive) || this.maxActive < 1) throw new RangeError('maxActiveMessages must be an integer >= 1');
    this.schedule = new Schedule({
      now: this.now,
      random: opts.random,
      queueTtlMs: opts.config.queue.ttl * 1000,
      warnIntervalsMs: opts.config.bounce.warnIntervals.map((s) => s * 1000),
      limits: opts.limits,
      backoff: opts.backoff,
    });
    this.effects = new Effects({
      spool: opts.spool,
      schedule: this.schedule,
      owed: this.owed,
      reporter,
      log: opts.log,
      stats: opts.stats,
      now: this.now,
      retryMs: opts.bounce?.retryMs ?? DEFAULT_RETRY_MS,
      running: () => this.state === 'running',
      removed: () => {
        this.gauges();
        this.refillSoon();
      },
    });
  }

  /* ------------------------------------------------------------ lifecycle */

  /** Load the spool, finish what a crash left finished, and start delivering. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`start() of a ${this.state} queue runner`);
    this.state = 'running';
    const messages = await this.load();
    this.log.info(`scheduler: ${this.schedule.size} envelope(s) in ${messages} message(s) loaded from the queue${this.backlog ? ` (the limit of ${this.maxActive} in memory; the rest wait in the spool)` : ''}`);
    this.pump();
  }

  /** Load messages of the spool the schedule does not hold, up to maxActive; sets backlog. */
  private async load(): Promise<number> {
    let messages = 0;
    let full = false;
    const seq0 = this.overflowSeq;
    for (const msgid of await this.spool.list()) {
      if (this.schedule.has(msgid)) continue;
      if (this.isFull()) {
        full = true;
        break;
      }
      let stored;
      try {
        stored = await this.spool.load(msgid);
      } catch (e) {
        // Removed meanwhile (delivered by us, or smtpctl remove): nothing to say.
        if ((e as { code?: unknown }).code !== 'NOT_FOUND') this.log.warn(`scheduler: cannot load message ${msgid}: ${(e as Error).message}`);
        continue;
      }
      if (this.state !== 'running' || this.schedule.has(msgid)) continue;
      if (!this.schedule.add(stored.envelope, stored.outcomes, (r) => this.classify(r))) continue;
      messages++;
      if (this.schedule.isFinal(msgid)) void this.serial(msgid, () => this.effects.finishIfDone(msgid));
    }
    this.backlog = full || this.overflowSeq !== seq0;
    return messages;
  }

  /**
   * The schedule holds as many messages, or as many recipients, as it may
   * (Postfix's qmgr_message_active_limit and qmgr_message_recipient_limit,
   * one number for both here); one message always fits in an empty one.
   */
  private isFull(): boolean {
    return this.schedule.messages > 0 && (this.schedule.messages >= this.maxActive || this.schedule.size >= this.maxActive);
  }

  /** Room freed up while messages wait in the spool: load more, soon, in one scan. */
  private refillSoon(): void {
    if (!this.backlog || this.refillTimer !== undefined || this.refilling !== undefined || this.state !== 'running') return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      if (this.state !== 'running') return;
      this.refilling = this.load()
        .then((n) => {
          if (n > 0) this.log.info(`scheduler: ${n} more message(s) loaded from the queue`);
          this.gauges();
          this.pump();
        })
        .catch((e: unknown) => this.log.error(`scheduler: loading more of the queue: ${(e as Error).message}`))
        .finally(() => {
          this.refilling = undefined;
          if (!this.isFull()) this.refillSoon();
        });
    }, REFILL_DELAY_MS);
    this.refillTimer.unref();
  }

  /** Stop: abort running tasks, wait for them briefly, flush gathered failure reports. */
  async stop(graceMs = this.stopGraceMs): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = 'stopping';
    if (this.refillTimer !== undefined) clearTimeout(this.refillTimer);
    this.refillTimer = undefined;
    this.disarm();
    const deadline = Date.now() + graceMs;
    for (const r of this.running.values()) r.controller.abort(new Error('queue runner stopping'));
    await waitUntil(Promise.allSettled([...this.running.values()].map((r) => r.done)), deadline);
    for (const msgid of this.owed.msgids()) this.flushSoon(msgid, true);
    await waitUntil(this.idle(), deadline);
    this.state = 'stopped';
  }

  /** Resolves when no task runs and no durable step is pending (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
  }

  /** Run what is due now (after the clock moved, in tests) and wait until idle. */
  async kick(): Promise<void> {
    this.pump();
    await this.idle();
  }

  /* ------------------------------------------------------ SchedulerSeam */

  /**
   * A message was just committed: schedule it now. `held` (content filter
   * "freeze"): its "held" records are already in the spool; it waits for
   * `smtpctl release`.
   */
  enqueued(env: Envelope, opts: { readonly held?: boolean } = {}): void {
    if (this.state === 'stopping' || this.state === 'stopped') return; // still in the spool: next start
    const at = this.now();
    if (this.isFull()) {
      // It waits in the spool (with its held records, if any) until room frees up.
      this.backlog = true;
      this.overflowSeq++;
      return;
    }
    const held = opts.held ? new Map(env.recipients.map((r) => [r.evpid, [{ kind: 'held' as const, at }]])) : undefined;
    this.schedule.add(env, held, (r) => this.classify(r));
    this.pump();
  }

  /** ETRN (RFC 1985 §5): start the queue for a domain ("@domain": and its subdomains). */
  etrn(domain: string): Reply {
    const node = domain.toLowerCase();
    if (node.startsWith('#')) return reply(458, '4.3.0', `Unable to queue messages for node ${node}`);
    const n = this.schedule.scheduleDomain(node);
    this.pump();
    return n > 0 ? reply(250, '2.0.0', `Queuing for node ${node} started`) : reply(251, '2.0.0', `No messages waiting for node ${node}`);
  }

  /* --------------------------------------------------------- operations */

  /** `smtpctl schedule`: try now. Returns how many envelopes. */
  scheduleNow(target: string): number {
    const n = this.schedule.scheduleNow(parseTarget(target));
    this.pump();
    return n;
  }

  /** `smtpctl reload`: actions and hostnames from the new configuration apply to the next deliveries (the queue lifetime of queued mail does not change). */
  setConfig(config: Config): void {
    this.config = config;
    if (!this.fixedActiveLimit) {
      this.maxActive = config.queue.activeLimit;
      this.refillSoon();
    }
  }

  pause(kind: AgentKind | 'all'): void {
    this.schedule.pause(kind);
    this.log.info(`scheduler: ${kind} deliveries paused`);
  }

  resume(kind: AgentKind | 'all'): void {
    this.schedule.resume(kind);
    this.log.info(`scheduler: ${kind} deliveries resumed`);
    this.pump();
  }

  /** `smtpctl hold` (OpenSMTPD: pause envelope). Returns how many envelopes. */
  async hold(target: string): Promise<number> {
    const evpids = this.schedule.hold(parseTarget(target));
    const at = this.now();
    await Promise.all(evpids.map((evpid) => this.serial(msgidOf(evpid), () => this.effects.record(evpid, { kind: 'held', at }).then(() => undefined))));
    this.gauges();
    return evpids.length;
  }

  /** `smtpctl release` (OpenSMTPD: resume envelope). Returns how many envelopes. */
  async release(target: string): Promise<number> {
    const evpids = this.schedule.release(parseTarget(target));
    const at = this.now();
    await Promise.all(evpids.map((evpid) => this.serial(msgidOf(evpid), () => this.effects.record(evpid, { kind: 'released', at }).then(() => undefined))));
    this.pump();
    return evpids.length;
  }

  /** `smtpctl remove`: drop envelopes without a report. In-flight ones go when their try ends undelivered. */
  async remove(target: string): Promise<number> {
    const { now, later } = this.schedule.remove(parseTarget(target));
    const at = this.now();
    const msgids = new Set<string>();
    for (const evpid of now) {
      msgids.add(msgidOf(evpid));
      this.log.event('queue', 'removed', { evpid });
    }
    await Promise.all(now.map((evpid) => this.serial(msgidOf(evpid), () => this.effects.record(evpid, { kind: 'failed', at, detail: 'removed by the administrator' }).then(() => undefined))));
    await Promise.all([...msgids].map((m) => this.serial(m, () => this.effects.finishIfDone(m))));
    this.gauges();
    return now.length + later.length;
  }

  /** Every envelope's state, for `smtpctl show queue`. */
  envelopes(): EnvelopeView[] {
    return this.schedule.list();
  }

  /* ---------------------------------------------------------- the loop */

  /** Expire what is due, start the tasks the limits allow, flush due reports, arm the timer. */
  private pump(): void {
    if (this.state !== 'running') return;
    const { expired, tasks } = this.schedule.poll();
    for (const v of expired) this.expire(v);
    for (const t of tasks) this.launch(t);
    const now = this.now();
    for (const [msgid, o] of this.owed.entries()) if (!o.flushing && this.owedDue(msgid, o) <= now) this.flushSoon(msgid, false);
    this.gauges();
    this.arm();
  }

  private owedDue(msgid: string, o: Owed): number {
    return OwedFailures.dueAt(o, this.schedule.inflight(msgid), this.gatherMs);
  }

  private arm(): void {
    let wake = this.schedule.nextWake();
    for (const [msgid, o] of this.owed.entries()) {
      if (o.flushing) continue;
      const at = this.owedDue(msgid, o);
      if (wake === undefined || at < wake) wake = at;
    }
    if (wake === undefined) return this.disarm();
    if (this.timer?.at === wake) return;
    this.disarm();
    const handle = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.min(MAX_TIMER_MS, Math.max(0, wake - this.now())));
    handle.unref();
    this.timer = { handle, at: wake };
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer.handle);
    this.timer = undefined;
  }

  /** Run one task's agent, then settle its results. */
  private launch(task: Task): void {
    const controller = new AbortController();
    const done = (async () => {
      const results = await this.runAgent(task, controller.signal);
      if (this.state === 'stopped') return; // too late: the spool may be closed; the next start retries
      await this.serial(task.msgid, () => this.settle(task, results));
    })()
      .catch((e: unknown) => this.log.error(`scheduler: task for ${task.msgid}: ${(e as Error).message}`))
      .finally(() => {
        this.schedule.finishTask(task.id);
        this.running.delete(task.id);
        this.pump();
      });
    this.running.set(task.id, { controller, done });
    this.track(done);
  }

  private async runAgent(task: Task, signal: AbortSignal): Promise<Map<string, Result>> {
    const env = this.schedule.envelope(task.msgid);
    if (env === undefined) throw new Error('the message is no longer in the schedule');
    const rcpts: EnvelopeRecipient[] = [];
    for (const evpid of task.evpids) {
      const v = this.schedule.get(evpid);
      if (v !== undefined) rcpts.push(v.rcpt);
    }
    return runTask({ config: this.config, spool: this.spool, agents: this.agents }, task, env, rcpts, signal);
  }

  /** Carry out a task's results (settle.ts) in their order. Runs in the message's serial chain. */
  private async settle(task: Task, results: ReadonlyMap<string, Result>): Promise<void> {
    const envelope = this.schedule.envelope(task.msgid);
    if (envelope === undefined) return;
    const effects = settle(task, results, this.now(), { envelope, schedule: this.schedule, owing: this.owed.has(task.msgid), running: this.state === 'running' });
    await this.effects.run(envelope, effects);
  }

  /** An envelope's queue lifetime ended while it waited. */
  private expire(v: EnvelopeView): void {
    const env = this.schedule.envelope(v.msgid);
    if (env === undefined) return;
    logExpired(this.log, this.stats, env, v, this.now());
    this.owed.add(v.msgid, expiryFailure(env, v), this.now());
  }

  private flushSoon(msgid: string, force: boolean): void {
    const o = this.owed.get(msgid);
    if (o === undefined || o.flushing) return;
    o.flushing = true;
    void this.serial(msgid, async () => {
      o.flushing = false;
      if (force) o.retryAt = undefined;
      await this.effects.flush(msgid, o);
      await this.effects.finishIfDone(msgid);
    });
  }

  /* ------------------------------------------------------------ helpers */

  private classify(r: EnvelopeRecipient): Classified {
    return classify(this.config, this.agents, this.log, r);
  }

  /** Run `fn` after every earlier durable step of the same message. */
  private serial(msgid: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.chains.get(msgid) ?? Promise.resolve();
    const next = prev.then(fn).catch((e: unknown) => this.log.error(`scheduler: ${msgid}: ${(e as Error).message}`));
    this.chains.set(msgid, next);
    void next.finally(() => {
      if (this.chains.get(msgid) === next) this.chains.delete(msgid);
    });
    this.track(next);
    return next;
  }

  private track(p: Promise<unknown>): void {
    this.work.add(p);
    void p.finally(() => this.work.delete(p));
  }

  private gauges(): void {
    const k = this.schedule.inflightByKind();
    this.stats.set('scheduler.envelope', this.schedule.size);
    this.stats.set('scheduler.envelope.inflight', k.mda + k.mta);
    this.stats.set('mda.envelope', k.mda);
    this.stats.set('mta.envelope', k.mta);
  }
}

function msgidOf(evpid: string): string {
  return evpid.slice(0, 8);
}

/** Wait for `p`, but not past `deadline` (Date.now() ms). */
async function waitUntil(p: Promise<unknown>, deadline: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (t = setTimeout(resolve, Math.max(0, deadline - Date.now()))))]);
  if (t) clearTimeout(t);
}
