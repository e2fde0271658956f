/*
 * scheduler/settle.ts — what a task's results do, as values. settle() is a
 * pure function of the task, its results, the time and a read-only view of
 * the schedule; it returns the effects in the order they must be carried
 * out, and effects.ts carries them out, one after the other, in the
 * message's serial chain (no two steps of one message interleave). So the
 * crash ordering is a unit test (test/unit/scheduler-settle.test.ts).
 *
 * Order of durable steps, per message:
 *
 *   delivered   [success DSN committed, if NOTIFY=SUCCESS] → "delivered" record
 *               (none when this delivery finishes the message: it is removed)
 *   deferred    [delay DSN committed, if a warn interval passed] → "deferred"
 *               records (first those of other recipients the DSN warned)
 *   removed     (`smtpctl remove` while in flight) "failed" record
 *   failed      owed (owed.ts): failure DSN committed (gathered per message:
 *               at once when no other recipient of it is in flight, else
 *               after gatherMs; effects.ts flush) → "failed" record
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
 */
import { dsnRecipient } from '../bounce/reporter.js';
import { dsnOwed, successAction } from '../bounce/rules.js';
import type { DsnRecipient } from '../bounce/dsn.js';
import type { RecipientResult } from '../delivery/agent.js';
import type { Envelope, RecipientOutcome } from '../mail/envelope.js';
import type { Result } from './dispatch.js';
import type { Failure } from './owed.js';
import type { AgentKind } from './policy.js';
import type { EnvelopeView, LastResult, RetryPlan, Task } from './types.js';

/** One outcome to append to the spool. */
export interface OutcomeRecord {
  readonly evpid: string;
  readonly outcome: RecipientOutcome;
}

export type Effect =
  /** The mail-log line and counters of one result. */
  | { readonly kind: 'log-result'; readonly agent: AgentKind; readonly view: EnvelopeView; readonly result: Result; readonly at: number }
  /** `queue expired …`: a try failed temporarily after the queue lifetime. */
  | { readonly kind: 'log-expired'; readonly view: EnvelopeView; readonly at: number }
  /** `queue removed evpid=…`: `smtpctl remove` came while in flight. */
  | { readonly kind: 'log-removed'; readonly evpid: string }
  /** Queue a success or delay report; a queued delay report marks `warned` as warned. */
  | { readonly kind: 'report'; readonly dsn: 'success' | 'delay'; readonly recipients: readonly DsnRecipient[]; readonly warned?: readonly string[] }
  /** Append outcome records, together (their order among themselves does not matter). */
  | { readonly kind: 'record'; readonly records: readonly OutcomeRecord[] }
  /** Schedule (memory only): delivered, deferred, failed. */
  | { readonly kind: 'delivered'; readonly evpids: readonly string[] }
  | { readonly kind: 'deferred'; readonly evpid: string; readonly plan: RetryPlan; readonly detail: string; readonly last: LastResult }
  | { readonly kind: 'failed'; readonly evpid: string; readonly detail: string; readonly last?: LastResult }
  /** A permanent failure waits for its report (owed.ts); its record comes after the report. */
  | { readonly kind: 'owe'; readonly failure: Failure }
  /** Report the message's owed failures and record them, if nothing else of it is in flight. */
  | { readonly kind: 'flush' }
  /** Remove the message from the spool if every recipient is final and nothing is owed. */
  | { readonly kind: 'finish' };

/** What settle() reads of the schedule; it changes nothing. */
export interface ScheduleReader {
  get(evpid: string): EnvelopeView | undefined;
  /** Where a temporary failure leads (the schedule's backoff and jitter). */
  retryPlan(evpid: string): RetryPlan;
  warningsDue(msgid: string, deferring: ReadonlySet<string>): string[];
  finalAfter(msgid: string, evpids: readonly string[]): boolean;
}

export interface SettleState {
  readonly envelope: Envelope;
  readonly schedule: ScheduleReader;
  /** Failures of this message wait for their report (owed.ts). */
  readonly owing: boolean;
  /** false while stopping: a temporary failure then is the abort's doing, not an attempt. */
  readonly running: boolean;
}

const REMOVED = 'removed by the administrator';

/** The effects of a task's results, in the order they must be carried out. */
export function settle(task: Task, results: ReadonlyMap<string, Result>, now: number, s: SettleState): Effect[] {
  const env = s.envelope;
  const out: Effect[] = [];
  const delivered: { v: EnvelopeView; r: Result }[] = [];
  const deferred: { v: EnvelopeView; r: Result; plan: RetryPlan }[] = [];
  const removed: EnvelopeView[] = [];
  const failures: Failure[] = [];
  for (const evpid of task.evpids) {
    const v = s.schedule.get(evpid);
    const r = results.get(evpid);
    if (v === undefined || r === undefined || v.state !== 'inflight') continue;
    out.push({ kind: 'log-result', agent: task.kind, view: v, result: r, at: now });
    if (r.status === 'ok') delivered.push({ v, r });
    else if (v.removeRequested) removed.push(v);
    else if (r.status === 'permfail') failures.push(failure(env, v, r, now));
    else if (!s.running) continue;
    else {
      const plan = s.schedule.retryPlan(evpid);
      if (!plan.expired) deferred.push({ v, r, plan });
      else {
        out.push({ kind: 'log-expired', view: v, at: now });
        failures.push(failure(env, v, r, now, true));
      }
    }
  }

  if (delivered.length > 0) {
    const notices: DsnRecipient[] = [];
    for (const { v, r } of delivered) {
      const action = successAction(task.kind, r);
      if (action !== undefined && dsnOwed(env, v.rcpt, 'success')) notices.push(dsnRecipient(v.rcpt, action, r.enhanced, r.detail, r, now));
    }
    if (notices.length > 0) out.push({ kind: 'report', dsn: 'success', recipients: notices });
    const evpids = delivered.map(({ v }) => v.evpid);
    const finishes = deferred.length === 0 && removed.length === 0 && failures.length === 0 && !s.owing && s.schedule.finalAfter(task.msgid, evpids);
    if (!finishes) out.push({ kind: 'record', records: delivered.map(({ v, r }) => ({ evpid: v.evpid, outcome: { kind: 'delivered', at: now, detail: r.detail } })) });
    out.push({ kind: 'delivered', evpids });
  }

  if (deferred.length > 0) {
    out.push(...delayWarnings(task.msgid, deferred, now, s));
    out.push({ kind: 'record', records: deferred.map(({ v, r, plan }) => ({ evpid: v.evpid, outcome: { kind: 'deferred', at: now, detail: r.detail, attempts: plan.attempts, nextTry: plan.nextTry } })) });
    for (const { v, r, plan } of deferred) out.push({ kind: 'deferred', evpid: v.evpid, plan, detail: r.detail, last: lastOf(r) });
  }

  for (const v of removed) {
    out.push({ kind: 'log-removed', evpid: v.evpid });
    out.push({ kind: 'record', records: [{ evpid: v.evpid, outcome: { kind: 'failed', at: now, detail: REMOVED } }] });
    out.push({ kind: 'failed', evpid: v.evpid, detail: REMOVED });
  }

  for (const f of failures) {
    out.push({ kind: 'failed', evpid: f.evpid, detail: f.detail, last: { status: f.status, diagnostic: f.diagnostic, remoteMta: f.remoteMta } });
    out.push({ kind: 'owe', failure: f });
  }
  out.push({ kind: 'flush' }, { kind: 'finish' });
  return out;
}

/**
 * The delay report due now, if any, for the recipients being deferred and
 * the message's other deferred ones; those others get a fresh deferral
 * record after it (replay.ts derives the warnings sent from that record).
 */
function delayWarnings(msgid: string, deferred: readonly { v: EnvelopeView; r: Result }[], now: number, s: SettleState): Effect[] {
  const deferring = new Set(deferred.map((d) => d.v.evpid));
  const due = s.schedule.warningsDue(msgid, deferring);
  if (due.length === 0) return [];
  const byEvpid = new Map(deferred.map((d) => [d.v.evpid, d]));
  const notices: DsnRecipient[] = [];
  const fresh: Effect[] = [];
  for (const evpid of due) {
    const d = byEvpid.get(evpid);
    if (d !== undefined) {
      const last = lastOf(d.r);
      notices.push(dsnRecipient(d.v.rcpt, 'delayed', last.status, d.r.detail, last, now, d.v.expire));
      continue;
    }
    const v = s.schedule.get(evpid);
    if (v === undefined) continue;
    const last = v.last ?? { status: '4.0.0' };
    notices.push(dsnRecipient(v.rcpt, 'delayed', last.status, v.lastError ?? '', last, v.lastTry, v.expire));
    if (v.state === 'deferred' && v.nextTry !== undefined) {
      fresh.push({ kind: 'record', records: [{ evpid, outcome: { kind: 'deferred', at: now, detail: v.lastError ?? '', attempts: v.attempts, nextTry: v.nextTry } }] });
    }
  }
  return [{ kind: 'report', dsn: 'delay', recipients: notices, warned: due }, ...fresh];
}

/** A permanent failure (or a temporary one past the queue lifetime) of a try, waiting for its report. */
function failure(env: Envelope, v: EnvelopeView, r: Result, now: number, expired = false): Failure {
  return {
    evpid: v.evpid,
    rcpt: v.rcpt,
    status: r.enhanced,
    detail: expired ? `queue lifetime expired; last error: ${r.detail}` : r.detail,
    diagnostic: r.diagnostic,
    remoteMta: r.remoteMta,
    lastAttempt: now,
    report: dsnOwed(env, v.rcpt, 'failure'),
  };
}

/** An envelope whose queue lifetime ended while it waited: it fails with its last error. */
export function expiryFailure(env: Envelope, v: EnvelopeView): Failure {
  const last = v.last;
  return {
    evpid: v.evpid,
    rcpt: v.rcpt,
    status: last && /^[45]\./.test(last.status) ? last.status : '4.4.7',
    detail: v.lastError ?? 'queue lifetime expired',
    diagnostic: last?.diagnostic,
    remoteMta: last?.remoteMta,
    lastAttempt: v.lastTry,
    report: dsnOwed(env, v.rcpt, 'failure'),
  };
}

function lastOf(r: RecipientResult): LastResult {
  return { status: r.enhanced, diagnostic: r.diagnostic, remoteMta: r.remoteMta };
}
