/*
 * scheduler/effects.ts — carries out the effects settle.ts computes, in
 * their order, one after the other (the runner calls it in the message's
 * serial chain); and the durable steps the runner's operations share:
 * outcome records, the gathered failure reports (owed.ts) and the removal
 * of a finished message.
 *
 * A failure report is queued before the failure records it owes (flush);
 * a spool error keeps the failures owed and retries after retryMs.
 */
import type { Reporter } from '../bounce/reporter.js';
import type { MailLog } from '../log/maillog.js';
import type { Envelope, RecipientOutcome } from '../mail/envelope.js';
import type { Spool } from '../spool/spool.js';
import type { Stats } from '../stats.js';
import { dsnRecipient } from '../bounce/reporter.js';
import { logExpired, logResult } from './dispatch.js';
import type { Transport } from '../metrics/probe.js';
import type { AgentKind } from './policy.js';
import type { Failure, Owed, OwedFailures } from './owed.js';
import type { Schedule } from './schedule.js';
import type { Effect } from './settle.js';
import { isSpoolError } from '../spool/errors.js';

export interface EffectsDeps {
  readonly spool: Pick<Spool, 'appendOutcome' | 'remove'>;
  readonly schedule: Schedule;
  readonly owed: OwedFailures;
  readonly reporter: Pick<Reporter, 'send'>;
  readonly log: MailLog;
  readonly stats: Stats;
  readonly now: () => number;
  /** Retry a report or record the spool refused after this long. */
  readonly retryMs: number;
  /** The transport a result is counted under (metrics); relay/local by agent when absent. */
  readonly transport?: (kind: AgentKind, action: string) => Transport;
  /** false while stopping: failures waiting for retryAt are flushed anyway. */
  running(): boolean;
  /** A finished message left the schedule. */
  removed(msgid: string): void;
}

export class Effects {
  constructor(private readonly d: EffectsDeps) {}

  /** Carry out `effects` for the message `env`, in order. */
  async run(env: Envelope, effects: readonly Effect[]): Promise<void> {
    const { log, stats, schedule } = this.d;
    const msgid = env.msgid;
    for (const e of effects) {
      switch (e.kind) {
        case 'log-result':
          logResult(log, stats, e.agent, env, e.view, e.result, e.at, this.d.transport?.(e.agent, e.view.action));
          break;
        case 'log-expired':
          logExpired(log, stats, env, e.view, e.at, this.d.transport?.(e.view.kind, e.view.action));
          break;
        case 'log-removed':
          log.event('queue', 'removed', { evpid: e.evpid });
          break;
        case 'report':
          if ((await this.d.reporter.send(env, e.dsn, e.recipients)) && e.warned !== undefined) schedule.markWarned(e.warned);
          break;
        case 'record':
          await Promise.all(e.records.map((r) => this.record(r.evpid, r.outcome)));
          break;
        case 'delivered':
          for (const evpid of e.evpids) schedule.delivered(evpid);
          break;
        case 'deferred':
          schedule.deferred(e.evpid, e.plan, e.detail, e.last);
          break;
        case 'failed':
          schedule.failed(e.evpid, e.detail, e.last);
          break;
        case 'owe':
          this.d.owed.add(msgid, e.failure, this.d.now());
          break;
        case 'flush': {
          // Report now when nothing else of this message is in flight; else the runner waits up to gatherMs.
          const o = this.d.owed.get(msgid);
          if (o !== undefined && schedule.inflight(msgid) === 0) await this.flush(msgid, o);
          break;
        }
        case 'finish':
          await this.finishIfDone(msgid);
          break;
      }
    }
  }

  /** Queue the failure report for the gathered failures of a message, then record them. */
  async flush(msgid: string, o: Owed): Promise<void> {
    const { schedule, owed, log } = this.d;
    const env = schedule.envelope(msgid);
    if (env === undefined) return void owed.delete(msgid);
    if (o.retryAt !== undefined && o.retryAt > this.d.now() && this.d.running()) return;
    o.retryAt = undefined;
    if (o.items.length > 0) {
      const batch = o.items.splice(0);
      const reports = batch.filter((f) => f.report);
      if (env.sender === '') log.event('bounce', 'dropped', { for: msgid, reason: 'null sender', rcpts: batch.length });
      const ok =
        reports.length === 0 ||
        (await this.d.reporter.send(
          env,
          'failure',
          reports.map((f) => dsnRecipient(f.rcpt, 'failed', f.status, f.detail, f, f.lastAttempt)),
        ));
      if (!ok) {
        o.items.unshift(...batch);
        o.retryAt = this.d.now() + this.d.retryMs;
        return;
      }
      o.reported.push(...batch);
    }
    const batch = o.reported.splice(0);
    const at = this.d.now();
    const left: Failure[] = [];
    for (const f of batch) if (!(await this.record(f.evpid, { kind: 'failed', at, detail: f.detail }))) left.push(f);
    if (left.length > 0) {
      o.reported.push(...left);
      o.retryAt = this.d.now() + this.d.retryMs;
      return;
    }
    owed.tidy(msgid);
  }

  /** Every recipient final and recorded: remove the message. Runs in the message's serial chain. */
  async finishIfDone(msgid: string): Promise<void> {
    const { schedule } = this.d;
    if (!schedule.has(msgid) || !schedule.isFinal(msgid) || this.d.owed.has(msgid)) return;
    try {
      await this.d.spool.remove(msgid);
    } catch (e) {
      // Left in the spool, all final: the next start removes it.
      if (!isSpoolError(e, 'NOT_FOUND')) this.d.log.warn(`scheduler: cannot remove ${msgid}: ${(e as Error).message}`);
    }
    schedule.drop(msgid);
    this.d.removed(msgid);
  }

  /** Append an outcome; false (and logged) if the spool refused. */
  async record(evpid: string, outcome: RecipientOutcome): Promise<boolean> {
    try {
      await this.d.spool.appendOutcome(evpid, outcome);
      return true;
    } catch (e) {
      this.d.log.error(`scheduler: cannot record ${outcome.kind} for ${evpid}: ${(e as Error).message}`);
      return false;
    }
  }
}
