/*
 * scheduler/types.ts — the values the schedule hands out: envelope views
 * (for the runner and `smtpctl show queue`), tasks, retry plans.
 */
import type { EnvelopeRecipient } from '../mail/envelope.js';
import type { AgentKind } from './policy.js';

export type EnvelopeState = 'pending' | 'inflight' | 'deferred' | 'delivered' | 'failed' | 'held';

/** How a recipient is delivered: by which agent kind, under which key, with which lifetime. */
export interface Classified {
  readonly kind: AgentKind;
  readonly key: string;
  /** Queue lifetime in ms; undefined ⇒ the schedule's default. */
  readonly ttlMs?: number;
}

/** What the last attempt said, for delay and failure reports (memory only: lost at restart). */
export interface LastResult {
  readonly status: string;
  readonly diagnostic?: string;
  readonly remoteMta?: string;
}

/** Read-only view of one envelope, for `smtpctl show queue` and the runner. */
export interface EnvelopeView {
  readonly evpid: string;
  readonly msgid: string;
  readonly sender: string;
  readonly rcpt: EnvelopeRecipient;
  readonly action: string;
  readonly kind: AgentKind;
  readonly key: string;
  /** Arrival, ms since the epoch. */
  readonly ctime: number;
  /** When the queue lifetime ends, ms since the epoch. */
  readonly expire: number;
  readonly lastTry?: number;
  /** Temporary failures so far. */
  readonly attempts: number;
  readonly nextTry?: number;
  readonly state: EnvelopeState;
  readonly lastError?: string;
  readonly last?: LastResult;
  /** Delay warnings reported so far. */
  readonly warned: number;
  /** `smtpctl hold` came while in flight: held if the try does not end it. */
  readonly holdRequested: boolean;
  /** `smtpctl remove` came while in flight: removed if the try does not deliver it. */
  readonly removeRequested: boolean;
}

export interface Task {
  readonly id: number;
  readonly msgid: string;
  readonly kind: AgentKind;
  readonly key: string;
  readonly evpids: readonly string[];
  /** 1 for a first try: the most tried recipient's attempts + 1. */
  readonly attempt: number;
}

export interface RetryPlan {
  /** Temporary failures including this one. */
  readonly attempts: number;
  readonly nextTry: number;
  /** The queue lifetime is over: fail instead of retrying. */
  readonly expired: boolean;
}
