/*
 * scheduler/schedule.ts — the pure scheduling core: which recipient is
 * tried when. No I/O, no timers: the clock and the randomness are injected,
 * and the runner (runner.ts) does the work and the durable records.
 *
 * One entry per envelope (recipient, evpid). States:
 *
 *   pending   never tried; ready for a task
 *   inflight  handed to an agent in a task
 *   deferred  tried, temporary failure; waits for nextTry (then ready again)
 *   held      `smtpctl hold`: never tried, never expired until released
 *   delivered final
 *   failed    final (permanent failure, queue lifetime over, or removed)
 *
 *   pending ─poll→ inflight ─ok→ delivered
 *                    │ ├─permfail→ failed
 *                    │ └─tempfail→ deferred ─nextTry→ (ready) ─poll→ inflight …
 *   pending/deferred ─expire→ failed      pending/deferred ⇄ held
 *
 * Timers live in two min-heaps with lazy deletion (heap.ts): retries at
 * nextTry and expiries at ctime + ttl. Ready envelopes wait in per-key
 * queues (ready.ts), which apply the concurrency limits. poll() does both:
 * expire what is due, move due retries to the ready queues, hand out tasks.
 *
 * A failure is final here at once; the runner makes it durable after the
 * DSN it owes is committed (see settle.ts), so the final states are
 * "final in memory" until the message is removed.
 *
 * Why this file is long (~620 lines): it is one data structure — the
 * entries, the two heaps and the ready queues must change together, in
 * every operation (poll, settle, hold, release, remove, expire), or a
 * recipient ends up in two places or none. Its parts that stand alone
 * already live apart (heap.ts, ready.ts, replay.ts, policy.ts, target.ts);
 * splitting the rest would spread one invariant over several files.
 */
import type { Envelope, EnvelopeRecipient, RecipientOutcome } from '../mail/envelope.js';
import { notifyAllows } from '../bounce/rules.js';
import type { Classified, EnvelopeState, EnvelopeView, LastResult, RetryPlan, Task } from './types.js';
import { MinHeap } from './heap.js';
import { AGENT_KINDS, resolveBackoff, resolveLimits, retryDelay, type AgentKind, type BackoffOverride, type BackoffPolicy, type LimitsOverride } from './policy.js';
import { ReadyQueues } from './ready.js';
import { replay, warningsSent } from './replay.js';
import { parseTarget, type Target } from './target.js';

export type { Classified, EnvelopeState, EnvelopeView, LastResult, RetryPlan, Task } from './types.js';

export interface ScheduleOptions {
  readonly now: () => number;
  /** Uniform in [0, 1): the jitter source. */
  readonly random?: () => number;
  /** Default queue lifetime, ms (config.queue.ttl). */
  readonly queueTtlMs: number;
  /** Delay warnings this long after arrival, ms (config.bounce.warnIntervals). */
  readonly warnIntervalsMs?: readonly number[];
  readonly limits?: LimitsOverride;
  readonly backoff?: BackoffOverride;
}

interface Entry {
  readonly evpid: string;
  readonly msgid: string;
  readonly rcpt: EnvelopeRecipient;
  readonly kind: AgentKind;
  readonly key: string;
  readonly ctime: number;
  readonly expire: number;
  state: EnvelopeState;
  attempts: number;
  lastTry?: number;
  nextTry?: number;
  lastError?: string;
  last?: LastResult;
  warned: number;
  /** Waiting in a ready queue. */
  queued: boolean;
  task?: number;
  holdRequested: boolean;
  removeRequested: boolean;
}

interface Msg {
  readonly envelope: Envelope;
  /** In recipient order (a plain array: most messages have one or a few; lookups by evpid go through Schedule.entries). */
  readonly entries: Entry[];
}

const ACTIVE: ReadonlySet<EnvelopeState> = new Set(['pending', 'deferred']);

export class Schedule {
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly queueTtlMs: number;
  private readonly warnIntervalsMs: readonly number[];
  private readonly backoff: Record<AgentKind, BackoffPolicy>;
  private readonly ready: ReadyQueues;
  private readonly msgs = new Map<string, Msg>();
  private readonly entries = new Map<string, Entry>();
  private readonly retries = new MinHeap();
  private readonly expiries = new MinHeap();
  private readonly tasks = new Map<number, Task>();
  private readonly paused = new Set<AgentKind>();
  private nextTaskId = 1;
  /** Entries in pending/deferred (what the heaps should hold), for compaction. */
  private active = 0;
  /** One copy of each destination key (agents build a new string for every recipient). */
  private readonly keys = new Map<string, string>();

  constructor(opts: ScheduleOptions) {
    this.now = opts.now;
    this.random = opts.random ?? Math.random;
    this.queueTtlMs = opts.queueTtlMs;
    this.warnIntervalsMs = [...(opts.warnIntervalsMs ?? [])].sort((a, b) => a - b);
    this.backoff = resolveBackoff(opts.backoff);
    this.ready = new ReadyQueues(resolveLimits(opts.limits));
  }

  /* ------------------------------------------------------------ contents */

  /** Envelopes known (final ones included until their message is dropped). */
  get size(): number {
    return this.entries.size;
  }

  has(msgid: string): boolean {
    return this.msgs.has(msgid);
  }

  /** Messages held in memory. */
  get messages(): number {
    return this.msgs.size;
  }

  envelope(msgid: string): Envelope | undefined {
    return this.msgs.get(msgid)?.envelope;
  }

  get(evpid: string): EnvelopeView | undefined {
    const e = this.entries.get(evpid);
    return e && this.view(e);
  }

  /** Every envelope, message by message, in the order they came. */
  list(): EnvelopeView[] {
    const out: EnvelopeView[] = [];
    for (const m of this.msgs.values()) for (const e of m.entries) out.push(this.view(e));
    return out;
  }

  messageIds(): string[] {
    return [...this.msgs.keys()];
  }

  /** Envelopes of a message, in envelope order. */
  ofMessage(msgid: string): EnvelopeView[] {
    const m = this.msgs.get(msgid);
    return m ? m.entries.map((e) => this.view(e)) : [];
  }

  /** Every recipient of the message is delivered or failed. */
  isFinal(msgid: string): boolean {
    const m = this.msgs.get(msgid);
    if (!m) return false;
    for (const e of m.entries) if (e.state !== 'delivered' && e.state !== 'failed') return false;
    return true;
  }

  /** Would the message be final once `evpids` are delivered (every other recipient final already)? */
  finalAfter(msgid: string, evpids: readonly string[]): boolean {
    const m = this.msgs.get(msgid);
    if (!m) return false;
    const done = new Set(evpids);
    for (const e of m.entries) if (!done.has(e.evpid) && e.state !== 'delivered' && e.state !== 'failed') return false;
    return true;
  }

  /** Recipients of the message in flight now. */
  inflight(msgid?: string): number {
    if (msgid === undefined) {
      let n = 0;
      for (const t of this.tasks.values()) n += t.evpids.length;
      return n;
    }
    let n = 0;
    for (const e of this.msgs.get(msgid)?.entries ?? []) if (e.state === 'inflight') n++;
    return n;
  }

  /** Envelopes in flight per agent kind. */
  inflightByKind(): Record<AgentKind, number> {
    const n = { mda: 0, mta: 0 };
    for (const t of this.tasks.values()) n[t.kind] += t.evpids.length;
    return n;
  }

  /**
   * Add a message, with the outcomes recorded so far (start-up) or none (a
   * new message). Returns false if it was already there.
   */
  add(envelope: Envelope, outcomes: ReadonlyMap<string, readonly RecipientOutcome[]> | undefined, classify: (r: EnvelopeRecipient) => Classified): boolean {
    if (this.msgs.has(envelope.msgid)) return false;
    this.shareStrings(envelope);
    // map() sizes the array exactly (a push() would reserve room for 17).
    const entries = envelope.recipients.map((rcpt): Entry => {
      const c = classify(rcpt);
      const r = replay(outcomes?.get(rcpt.evpid));
      return {
        evpid: rcpt.evpid,
        msgid: envelope.msgid,
        rcpt,
        kind: c.kind,
        key: this.intern(c.key),
        ctime: envelope.arrival,
        expire: envelope.arrival + (c.ttlMs ?? this.queueTtlMs),
        state: r.held && (r.state === 'pending' || r.state === 'deferred') ? 'held' : r.state,
        attempts: r.attempts,
        lastTry: r.lastTry,
        nextTry: r.nextTry,
        lastError: r.lastError,
        warned: r.state === 'deferred' ? warningsSent(envelope.arrival, this.warnIntervalsMs, r.lastTry) : 0,
        queued: false,
        holdRequested: false,
        removeRequested: false,
      };
    });
    this.msgs.set(envelope.msgid, { envelope, entries });
    for (const e of entries) {
      this.entries.set(e.evpid, e);
      if (ACTIVE.has(e.state)) this.arm(e);
    }
    return true;
  }

  /**
   * Point the strings that recur from message to message (sender, client,
   * action, rule, recipient) at one shared copy each: an envelope read
   * from JSON has copies of its own, about 200 bytes per held message.
   * Strings are values: nothing that holds the envelope can tell.
   */
  private shareStrings(env: Envelope): void {
    shareFields(env, ENVELOPE_SHARED, this.share);
    shareFields(env.client, CLIENT_SHARED, this.share);
    for (const r of env.recipients) shareFields(r, RCPT_SHARED, this.share);
  }

  /** intern(), made once (shareStrings runs for every message). */
  private readonly share = (v: string): string => this.intern(v);

  /**
   * The shared copy of a string (a destination key, or one of those above):
   * every envelope for one domain or relay host refers to one string,
   * rather than to a copy or a chain of concatenations of its own (V8 keeps
   * a template literal's pieces). Bounded: past 10,000 strings the table
   * starts again (entries keep the strings they have).
   */
  private intern(key: string): string {
    const known = this.keys.get(key);
    if (known !== undefined) return known;
    if (this.keys.size >= 10_000) this.keys.clear();
    this.keys.set(key, key);
    return key;
  }

  /** Forget a message (removed from the spool). Its tasks must have ended. */
  drop(msgid: string): void {
    const m = this.msgs.get(msgid);
    if (!m) return;
    for (const e of m.entries) {
      if (e.state === 'inflight') throw new Error(`drop of ${msgid} with ${e.evpid} in flight`);
      this.leave(e);
      this.entries.delete(e.evpid);
    }
    this.msgs.delete(msgid);
  }

  /* ------------------------------------------------------------- running */

  /**
   * Expire what is due, move due retries to the ready queues, and hand out
   * the tasks the limits allow (their envelopes become inflight).
   */
  poll(): { expired: EnvelopeView[]; tasks: Task[] } {
    const now = this.now();
    const expired: EnvelopeView[] = [];
    for (let t = this.expiries.peek(); t !== undefined && t.at <= now; t = this.expiries.peek()) {
      this.expiries.pop();
      const e = this.entries.get(t.id);
      if (e === undefined || !ACTIVE.has(e.state) || e.expire > now) continue;
      this.leave(e);
      e.state = 'failed';
      e.lastError = e.lastError === undefined ? 'queue lifetime expired' : `queue lifetime expired; last error: ${e.lastError}`;
      expired.push(this.view(e));
    }
    for (let t = this.retries.peek(); t !== undefined && t.at <= now; t = this.retries.peek()) {
      this.retries.pop();
      const e = this.entries.get(t.id);
      if (e !== undefined && e.state === 'deferred' && !e.queued && (e.nextTry ?? 0) <= now) this.enqueue(e);
    }
    this.compact();
    const tasks: Task[] = [];
    for (const b of this.ready.take(this.paused)) {
      const id = this.nextTaskId++;
      let attempt = 1;
      for (const evpid of b.evpids) {
        const e = this.entries.get(evpid) as Entry;
        e.queued = false;
        e.state = 'inflight';
        e.task = id;
        this.active--;
        attempt = Math.max(attempt, e.attempts + 1);
      }
      const task: Task = { id, msgid: b.msgid, kind: b.kind, key: b.key, evpids: b.evpids, attempt };
      this.tasks.set(id, task);
      tasks.push(task);
    }
    return { expired, tasks };
  }

  /** When poll() has something to do next (a retry or an expiry), if ever. */
  nextWake(): number | undefined {
    const live = (t: { at: number; id: string }, retry: boolean): boolean => {
      const e = this.entries.get(t.id);
      if (e === undefined) return false;
      return retry ? e.state === 'deferred' && !e.queued && e.nextTry === t.at : ACTIVE.has(e.state) && e.expire === t.at;
    };
    let r = this.retries.peek();
    while (r !== undefined && !live(r, true)) {
      this.retries.pop();
      r = this.retries.peek();
    }
    let x = this.expiries.peek();
    while (x !== undefined && !live(x, false)) {
      this.expiries.pop();
      x = this.expiries.peek();
    }
    if (r === undefined) return x?.at;
    if (x === undefined) return r.at;
    return Math.min(r.at, x.at);
  }

  /** The task ended and its recipients were settled: free its slot. */
  finishTask(id: number): void {
    const t = this.tasks.get(id);
    if (!t) return;
    this.tasks.delete(id);
    this.ready.release(t.kind, t.key);
    for (const evpid of t.evpids) {
      const e = this.entries.get(evpid);
      // Not settled (the runner stopping): back to where it was, untried.
      if (e !== undefined && e.state === 'inflight' && e.task === id) this.untried(e);
    }
  }

  /** Where a tempfail of `evpid` now leads: next try with backoff and jitter, or expiry. */
  retryPlan(evpid: string): RetryPlan {
    const e = this.must(evpid);
    const now = this.now();
    const attempts = e.attempts + 1;
    if (now >= e.expire) return { attempts, nextTry: e.expire, expired: true };
    const next = now + retryDelay(this.backoff[e.kind], attempts, this.random);
    // Never wait past the end of the queue lifetime: expire on time.
    return { attempts, nextTry: Math.min(next, e.expire), expired: false };
  }

  delivered(evpid: string): void {
    const e = this.must(evpid);
    this.leave(e);
    e.state = 'delivered';
    e.lastTry = this.now();
    e.lastError = undefined;
  }

  failed(evpid: string, error: string, last?: LastResult): void {
    const e = this.must(evpid);
    this.leave(e);
    e.state = 'failed';
    e.lastTry = this.now();
    e.lastError = error;
    if (last) e.last = last;
  }

  /** A temporary failure was recorded with `plan`. */
  deferred(evpid: string, plan: RetryPlan, error: string, last?: LastResult): void {
    const e = this.must(evpid);
    this.leave(e);
    e.attempts = plan.attempts;
    e.nextTry = plan.nextTry;
    e.lastTry = this.now();
    e.lastError = error;
    if (last) e.last = last;
    if (e.holdRequested) {
      e.holdRequested = false;
      e.state = 'held';
      return;
    }
    e.state = 'deferred';
    this.arm(e);
  }

  /**
   * Recipients of `msgid` owed a delay warning now: deferred ones (and those
   * in `deferring`, being deferred now) whose NOTIFY allows DELAY, whose
   * sender is not <>, and for whom a warn interval passed since the last
   * warning.
   */
  warningsDue(msgid: string, deferring: ReadonlySet<string> = new Set()): string[] {
    const m = this.msgs.get(msgid);
    if (!m || m.envelope.sender === '') return [];
    const due = this.intervalsPassed(m.envelope.arrival);
    if (due === 0) return [];
    const out: string[] = [];
    for (const e of m.entries) {
      if (!(deferring.has(e.evpid) || e.state === 'deferred')) continue;
      if (e.warned < due && notifyAllows(e.rcpt, 'DELAY')) out.push(e.evpid);
    }
    return out;
  }

  markWarned(evpids: Iterable<string>): void {
    for (const evpid of evpids) {
      const e = this.entries.get(evpid);
      if (e) e.warned = this.intervalsPassed(e.ctime);
    }
  }

  /* ---------------------------------------------------------- operations */

  /** Try now (`smtpctl schedule`): pending/deferred envelopes of the target. Returns how many. */
  scheduleNow(target: Target | string): number {
    let n = 0;
    for (const e of this.select(target)) if (this.expedite(e)) n++;
    return n;
  }

  /**
   * ETRN (RFC 1985): try now every relayed envelope for `domain`
   * ("@domain": the domain and its subdomains). Returns how many.
   */
  scheduleDomain(domain: string): number {
    const d = domain.toLowerCase();
    const sub = d.startsWith('@') ? d.slice(1) : undefined;
    let n = 0;
    for (const e of this.entries.values()) {
      if (e.kind !== 'mta') continue;
      const at = e.rcpt.address.lastIndexOf('@');
      const rd = e.rcpt.address.slice(at + 1).toLowerCase();
      const match = sub === undefined ? rd === d : rd === sub || rd.endsWith(`.${sub}`);
      if (match && this.expedite(e)) n++;
    }
    return n;
  }

  /** `nodes` nodes share every per-destination limit (a cluster): this one takes its share. */
  shareLimits(nodes: number): void {
    this.ready.setShare(nodes);
  }

  pause(kind: AgentKind | 'all'): void {
    for (const k of kind === 'all' ? AGENT_KINDS : [kind]) this.paused.add(k);
  }

  resume(kind: AgentKind | 'all'): void {
    for (const k of kind === 'all' ? AGENT_KINDS : [kind]) this.paused.delete(k);
  }

  isPaused(kind: AgentKind): boolean {
    return this.paused.has(kind);
  }

  /**
   * Hold the target's pending/deferred envelopes (in-flight ones are held if
   * their try ends in a deferral). Returns the evpids concerned (to record).
   */
  hold(target: Target | string): string[] {
    const out: string[] = [];
    for (const e of this.select(target)) {
      if (ACTIVE.has(e.state)) {
        this.leave(e);
        e.state = 'held';
        out.push(e.evpid);
      } else if (e.state === 'inflight' && !e.holdRequested) {
        e.holdRequested = true;
        out.push(e.evpid);
      }
    }
    return out;
  }

  /** Release held envelopes (and cancel pending hold requests). Returns the evpids concerned. */
  release(target: Target | string): string[] {
    const out: string[] = [];
    for (const e of this.select(target)) {
      if (e.state === 'held') {
        this.untried(e);
        out.push(e.evpid);
      } else if (e.state === 'inflight' && e.holdRequested) {
        e.holdRequested = false;
        out.push(e.evpid);
      }
    }
    return out;
  }

  /**
   * Remove (`smtpctl remove`, no DSN): envelopes not in flight become
   * failed now (`now`); in-flight ones are marked and fail when their try
   * ends without delivering (`later`).
   */
  remove(target: Target | string): { now: string[]; later: string[] } {
    const out = { now: [] as string[], later: [] as string[] };
    for (const e of this.select(target)) {
      if (e.state === 'inflight') {
        e.removeRequested = true;
        out.later.push(e.evpid);
      } else if (e.state !== 'delivered' && e.state !== 'failed') {
        this.leave(e);
        e.state = 'failed';
        e.lastError = 'removed by the administrator';
        out.now.push(e.evpid);
      }
    }
    return out;
  }

  /* ----------------------------------------------------------- internals */

  private view(e: Entry): EnvelopeView {
    const env = (this.msgs.get(e.msgid) as Msg).envelope;
    return {
      evpid: e.evpid,
      msgid: e.msgid,
      sender: env.sender,
      rcpt: e.rcpt,
      action: e.rcpt.action,
      kind: e.kind,
      key: e.key,
      ctime: e.ctime,
      expire: e.expire,
      lastTry: e.lastTry,
      attempts: e.attempts,
      nextTry: e.state === 'deferred' || e.state === 'held' ? e.nextTry : undefined,
      state: e.state,
      lastError: e.lastError,
      last: e.last,
      warned: e.warned,
      holdRequested: e.holdRequested,
      removeRequested: e.removeRequested,
    };
  }

  private must(evpid: string): Entry {
    const e = this.entries.get(evpid);
    if (!e) throw new Error(`unknown envelope ${evpid}`);
    return e;
  }

  private select(target: Target | string): Entry[] {
    const t = typeof target === 'string' ? parseTarget(target) : target;
    if (t.kind === 'all') return [...this.entries.values()];
    if (t.kind === 'msgid') return [...(this.msgs.get(t.id)?.entries ?? [])];
    const e = this.entries.get(t.id);
    return e ? [e] : [];
  }

  private intervalsPassed(arrival: number): number {
    const now = this.now();
    let n = 0;
    for (const w of this.warnIntervalsMs) if (arrival + w <= now) n++;
    return n;
  }

  /** Back to pending (never tried) or deferred (tried) and armed. */
  private untried(e: Entry): void {
    e.state = e.attempts === 0 ? 'pending' : 'deferred';
    e.task = undefined;
    this.arm(e);
  }

  /** A pending or deferred entry: into a ready queue or the retry heap, and the expiry heap. */
  private arm(e: Entry): void {
    this.active++;
    this.expiries.push(e.expire, e.evpid);
    if (e.state === 'pending' || (e.nextTry ?? 0) <= this.now()) this.enqueue(e);
    else this.retries.push(e.nextTry as number, e.evpid);
  }

  private enqueue(e: Entry): void {
    if (e.queued) return; // ready.ts holds each evpid once
    e.queued = true;
    this.ready.add(e.kind, e.key, e.msgid, e.evpid);
  }

  /** Leave the pending/deferred/inflight state: out of the ready queue; heap entries go stale. */
  private leave(e: Entry): void {
    if (e.queued) this.ready.delete(e.kind, e.key, e.msgid, e.evpid);
    e.queued = false;
    if (ACTIVE.has(e.state)) this.active--;
    e.task = undefined;
  }

  /** Make a pending/deferred entry ready now. */
  private expedite(e: Entry): boolean {
    if (!ACTIVE.has(e.state)) return false;
    if (!e.queued) {
      e.nextTry = this.now();
      this.enqueue(e);
    }
    return true;
  }

  /** Drop stale heap entries once they outnumber the live ones. */
  private compact(): void {
    const limit = 2 * this.active + 1024;
    if (this.expiries.size > limit) this.expiries.rebuild((t) => this.entries.get(t.id)?.expire === t.at && ACTIVE.has(this.entries.get(t.id)?.state as EnvelopeState));
    if (this.retries.size > limit) this.retries.rebuild((t) => this.entries.get(t.id)?.nextTry === t.at && this.entries.get(t.id)?.state === 'deferred');
  }
}

const ENVELOPE_SHARED = ['sender', 'body'] as const;
const CLIENT_SHARED = ['address', 'hostname', 'helo', 'proto', 'authUser', 'tag', 'listener'] as const;
const RCPT_SHARED = ['address', 'action', 'rule', 'original'] as const;

/** Replace each string field named in `keys` by `share(value)` (in place: the fields are readonly to everyone else). */
function shareFields<T extends object>(o: T, keys: readonly (keyof T)[], share: (v: string) => string): void {
  if (Object.isFrozen(o)) return;
  const w = o as Record<keyof T, unknown>;
  for (const k of keys) {
    const v = w[k];
    if (typeof v === 'string') w[k] = share(v);
  }
}
