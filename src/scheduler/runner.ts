/*
 * scheduler/runner.ts — the queue runner: runs the delivery agents when the
 * schedule (schedule.ts) says so, and carries out what their results do —
 * settle.ts computes the effects (records, reports, removals) as values,
 * effects.ts carries them out — with the durable steps of one message one
 * after the other, never interleaved (chains.ts). loader.ts decides which
 * messages of the spool the schedule holds. The order of durable steps and
 * the crash reasoning behind it are at the top of settle.ts.
 *
 * stop(): no new tasks; running ones are aborted (their AbortSignal) and
 * awaited up to the grace time; their deliveries and permanent failures are
 * recorded, their temporary failures are not (the abort caused them), and
 * gathered failure reports are flushed. Anything later is left for the next
 * start.
 *
 * With a spool shared by several nodes, lease-watch.ts claims work, stops
 * deliveries on stale leases and drops messages lost to another node; the
 * runner only wires it in. (This file passes 400 lines: the seam, the
 * operations and the life cycle are one object, and splitting it would
 * only spread its state.)
 */
import type { Config } from '../config/model.js';
import type { DeliveryAgent } from '../delivery/agent.js';
import type { MailLog } from '../log/maillog.js';
import { reply, type Reply } from '../mail/reply.js';
import type { SchedulerSeam } from '../queue/seam.js';
import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import type { Spool } from '../spool/spool.js';
import type { Leases } from '../spool/leases.js';
import { LeaseWatch } from './lease-watch.js';
import type { Stats } from '../stats.js';
import { Reporter } from '../bounce/reporter.js';
import { FrontDoor } from '../queue/enqueue.js';
import { classify, logExpired, runTask, transportOf, type Result } from './dispatch.js';
import { Chains, waitUntil } from './chains.js';
import { Effects } from './effects.js';
import { Loader } from './loader.js';
import { OwedFailures, type Owed } from './owed.js';
import type { AgentKind, BackoffOverride, LimitsOverride } from './policy.js';
import type { Router } from '../rules/router.js';
import { Schedule } from './schedule.js';
import { parseTarget } from './target.js';
import { expiryFailure, settle } from './settle.js';
import type { EnvelopeView, Task } from './types.js';

export interface RunnerOptions {
  readonly spool: Spool;
  readonly config: Config;
  readonly log: MailLog;
  readonly stats: Stats;
  readonly agents: { readonly mda: DeliveryAgent; readonly mta: DeliveryAgent };
  /** Routes the reports Postern writes; without one, reports are logged and dropped. */
  readonly router?: Router;
  /**
   * The one way into the queue, for reports (DSNs). Default: a door with no
   * policy phases that hands what it queues to this runner.
   */
  readonly door?: Pick<FrontDoor, 'open'>;
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
  /** A shared spool's leases (spool/leases.ts, scheduler/lease-watch.ts); none for the file spool. */
  readonly leases?: Leases;
}

const DEFAULT_GATHER_MS = 30_000;
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
  private readonly loader: Loader;
  /** maxActiveMessages was given (tests): reload does not change it. */
  private readonly fixedActiveLimit: boolean;
  private readonly running = new Map<number, { readonly controller: AbortController; readonly done: Promise<void> }>();
  private readonly owed = new OwedFailures();
  private readonly chains: Chains;
  private timer: { handle: NodeJS.Timeout; at: number } | undefined;
  private readonly leaseWatch: LeaseWatch | undefined;

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
      door: opts.door ?? FrontDoor.withoutPolicy({ config: opts.config, spool: opts.spool, log: opts.log, stats: opts.stats, now: this.now, scheduler: this }),
    });
    this.gatherMs = opts.bounce?.gatherMs ?? DEFAULT_GATHER_MS;
    this.stopGraceMs = opts.stopGraceMs ?? 5_000;
    this.chains = new Chains(opts.log);
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
      transport: (kind, action) => transportOf(kind, this.config.actions.get(action)?.kind),
      running: () => this.state === 'running',
      removed: () => {
        this.gauges();
        this.loader.refillSoon();
      },
    });
    this.fixedActiveLimit = opts.maxActiveMessages !== undefined;
    const loader = {
      spool: opts.spool,
      schedule: this.schedule,
      log: opts.log,
      classify: (r: EnvelopeRecipient) => classify(this.config, this.agents, this.log, r),
      running: () => this.state === 'running',
      finished: (msgid: string) => void this.chains.serial(msgid, () => this.effects.finishIfDone(msgid)),
      refilled: () => {
        this.gauges();
        this.pump();
      },
    };
    this.loader = new Loader(loader, opts.maxActiveMessages ?? opts.config.queue.activeLimit);
    this.leaseWatch = opts.leases && new LeaseWatch({
      leases: opts.leases,
      running: () => this.state === 'running',
      // A node with every delivery paused claims nothing more (what it holds waits for resume or stop).
      hasRoom: () => !this.loader.isFull() && !(this.schedule.isPaused('mta') && this.schedule.isPaused('mda')),
      load: () => this.loader.load().then(() => loader.refilled()),
      drop: (msgid) => {
        if (this.schedule.inflight(msgid) > 0) return false;
        this.schedule.drop(msgid);
        this.gauges();
        return true;
      },
      pump: () => this.pump(),
      share: (nodes) => this.schedule.shareLimits(nodes),
      warn: (line) => this.log.warn(line),
    });
  }

  /* ------------------------------------------------------------ lifecycle */

  /** Load the spool, finish what a crash left finished, and start delivering (already while the load goes on); resolves when loaded. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`start() of a ${this.state} queue runner`);
    this.state = 'running';
    const messages = await this.loader.load();
    const rest = this.loader.backlog ? ` (the limit of ${this.loader.maxActive} in memory; the rest wait in the spool)` : '';
    this.log.info(`scheduler: ${this.schedule.size} envelope(s) in ${messages} message(s) loaded from the queue${rest}`);
    this.leaseWatch?.start();
    this.pump();
  }

  /** `loading` until start()'s load ends (the daemon serves meanwhile); `waiting`: spool messages not held (over the limit). */
  loadState(): { readonly loading: boolean; readonly messages: number; readonly waiting: number } {
    return { loading: this.loader.loading, messages: this.schedule.messages, waiting: this.loader.waitingCount };
  }

  /** Stop: abort running tasks, wait for them briefly, flush gathered failure reports. */
  async stop(graceMs = this.stopGraceMs): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = 'stopping';
    this.loader.stop();
    this.leaseWatch?.stop();
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
    await this.chains.idle();
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
    // No room: it waits in the spool (with its held records, if any) until room frees up.
    if (this.loader.isFull()) return this.loader.overflow(env.msgid);
    const held = opts.held ? new Map(env.recipients.map((r) => [r.evpid, [{ kind: 'held' as const, at }]])) : undefined;
    this.schedule.add(env, held, (r) => classify(this.config, this.agents, this.log, r));
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
      this.loader.maxActive = config.queue.activeLimit;
      this.loader.refillSoon();
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
    await Promise.all(evpids.map((evpid) => this.chains.serial(msgidOf(evpid), () => this.effects.record(evpid, { kind: 'held', at }).then(() => undefined))));
    this.gauges();
    return evpids.length;
  }

  /** `smtpctl release` (OpenSMTPD: resume envelope). Returns how many envelopes. */
  async release(target: string): Promise<number> {
    const evpids = this.schedule.release(parseTarget(target));
    const at = this.now();
    await Promise.all(evpids.map((evpid) => this.chains.serial(msgidOf(evpid), () => this.effects.record(evpid, { kind: 'released', at }).then(() => undefined))));
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
    await Promise.all(now.map((evpid) => this.chains.serial(msgidOf(evpid), () => this.effects.record(evpid, { kind: 'failed', at, detail: 'removed by the administrator' }).then(() => undefined))));
    await Promise.all([...msgids].map((m) => this.chains.serial(m, () => this.effects.finishIfDone(m))));
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
    // Leases not renewed: start nothing (lease-watch.ts pumps again once they are).
    if (this.leaseWatch !== undefined && !this.leaseWatch.mayStart()) return this.disarm();
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
      await this.chains.serial(task.msgid, () => this.settle(task, results));
    })()
      .catch((e: unknown) => this.log.error(`scheduler: task for ${task.msgid}: ${(e as Error).message}`))
      .finally(() => {
        this.schedule.finishTask(task.id);
        this.running.delete(task.id);
        this.leaseWatch?.taskEnded();
        this.pump();
      });
    this.running.set(task.id, { controller, done });
    this.chains.track(done);
  }

  private async runAgent(task: Task, signal: AbortSignal): Promise<Map<string, Result>> {
    const env = this.schedule.envelope(task.msgid);
    if (env === undefined) throw new Error('the message is no longer in the schedule');
    const rcpts: EnvelopeRecipient[] = [];
    for (const evpid of task.evpids) {
      const v = this.schedule.get(evpid);
      if (v !== undefined) rcpts.push(v.rcpt);
    }
    return runTask({ config: this.config, spool: this.spool, agents: this.agents, stats: this.stats }, task, env, rcpts, signal);
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
    logExpired(this.log, this.stats, env, v, this.now(), transportOf(v.kind, this.config.actions.get(v.action)?.kind));
    this.owed.add(v.msgid, expiryFailure(env, v), this.now());
  }

  private flushSoon(msgid: string, force: boolean): void {
    const o = this.owed.get(msgid);
    if (o === undefined || o.flushing) return;
    o.flushing = true;
    void this.chains.serial(msgid, async () => {
      o.flushing = false;
      if (force) o.retryAt = undefined;
      await this.effects.flush(msgid, o);
      await this.effects.finishIfDone(msgid);
    });
  }

  /* ------------------------------------------------------------ helpers */

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
