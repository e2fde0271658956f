/*
 * scheduler/policy.ts — retry timing and concurrency limits, with Postern's
 * defaults (docs/scheduler.md explains the choices).
 *
 * Retry after the n-th temporary failure (n ≥ 1):
 *
 *   delay(n) = min(cap, base · factor^(n-1)) · (1 + jitter · u),  u uniform in [-1, 1)
 *
 *   relay (mta): base 5 min, ×2, cap 1 h  → 5, 10, 20, 40, 60, 60 … min
 *   local (mda): base 1 min, ×2, cap 1 h  → 1, 2, 4, 8, 16, 32, 60 … min
 *   jitter ±20 %, so envelopes deferred together (a restart, a remote
 *   server down for everyone) spread out instead of retrying in lock-step.
 *
 * Postfix backs off from minimal_backoff_time 300 s to maximal_backoff_time
 * 4000 s; OpenSMTPD grows quadratically without a cap. A cap of one hour
 * keeps a message to a server that comes back after a day waiting at most
 * an hour longer, and a 4-day queue lifetime makes ~100 attempts.
 */

export type AgentKind = 'mda' | 'mta';
export const AGENT_KINDS: readonly AgentKind[] = ['mda', 'mta'];

export interface BackoffPolicy {
  /** Delay after the first temporary failure, ms. */
  readonly baseMs: number;
  /** Growth per further failure. */
  readonly factor: number;
  /** Longest delay before jitter, ms. */
  readonly capMs: number;
  /** Relative spread: 0.2 = ±20 %. */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: Readonly<Record<AgentKind, BackoffPolicy>> = {
  mta: { baseMs: 5 * 60_000, factor: 2, capMs: 60 * 60_000, jitter: 0.2 },
  mda: { baseMs: 60_000, factor: 2, capMs: 60 * 60_000, jitter: 0.2 },
};

/**
 * Concurrency limits. A task is one agent run: one message, recipients
 * sharing a key (one local user, one remote domain or relay host).
 */
export interface ScheduleLimits {
  /** Tasks running at once, all kinds together. */
  readonly maxTasks: number;
  /** Tasks running at once per agent kind. */
  readonly maxTasksPerKind: Readonly<Record<AgentKind, number>>;
  /** Tasks running at once per key (per local user, per remote domain/host). */
  readonly maxTasksPerKey: Readonly<Record<AgentKind, number>>;
  /** Recipients handed to one task at most (RFC 5321 §4.5.3.1.8: servers take at least 100). */
  readonly maxRcptPerTask: Readonly<Record<AgentKind, number>>;
}

export const DEFAULT_LIMITS: ScheduleLimits = {
  maxTasks: 100,
  maxTasksPerKind: { mda: 16, mta: 100 },
  maxTasksPerKey: { mda: 2, mta: 10 },
  maxRcptPerTask: { mda: 100, mta: 100 },
};

export type LimitsOverride = {
  readonly maxTasks?: number;
  readonly maxTasksPerKind?: Partial<Record<AgentKind, number>>;
  readonly maxTasksPerKey?: Partial<Record<AgentKind, number>>;
  readonly maxRcptPerTask?: Partial<Record<AgentKind, number>>;
};

export type BackoffOverride = Partial<Record<AgentKind, Partial<BackoffPolicy>>>;

export function resolveLimits(o: LimitsOverride = {}): ScheduleLimits {
  const pos = (n: number, what: string): number => {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${what} must be an integer >= 1`);
    return n;
  };
  const perKind = (d: Readonly<Record<AgentKind, number>>, v: Partial<Record<AgentKind, number>> | undefined, what: string): Record<AgentKind, number> => ({
    mda: pos(v?.mda ?? d.mda, `${what}.mda`),
    mta: pos(v?.mta ?? d.mta, `${what}.mta`),
  });
  const D = DEFAULT_LIMITS;
  return {
    maxTasks: pos(o.maxTasks ?? D.maxTasks, 'maxTasks'),
    maxTasksPerKind: perKind(D.maxTasksPerKind, o.maxTasksPerKind, 'maxTasksPerKind'),
    maxTasksPerKey: perKind(D.maxTasksPerKey, o.maxTasksPerKey, 'maxTasksPerKey'),
    maxRcptPerTask: perKind(D.maxRcptPerTask, o.maxRcptPerTask, 'maxRcptPerTask'),
  };
}

export function resolveBackoff(o: BackoffOverride = {}): Record<AgentKind, BackoffPolicy> {
  const one = (k: AgentKind): BackoffPolicy => {
    const p = { ...DEFAULT_BACKOFF[k], ...o[k] };
    if (!(p.baseMs > 0) || !(p.capMs >= p.baseMs) || !(p.factor >= 1) || !(p.jitter >= 0 && p.jitter < 1)) {
      throw new RangeError(`backoff.${k}: need baseMs > 0, capMs >= baseMs, factor >= 1, 0 <= jitter < 1`);
    }
    return p;
  };
  return { mda: one('mda'), mta: one('mta') };
}

/** Delay before the next try after `failures` temporary failures (≥ 1); `random` in [0, 1). */
export function retryDelay(p: BackoffPolicy, failures: number, random: () => number): number {
  const raw = Math.min(p.capMs, p.baseMs * p.factor ** Math.max(0, failures - 1));
  const u = 2 * random() - 1;
  return Math.max(1, Math.round(raw * (1 + p.jitter * u)));
}
