/*
 * scheduler/replay.ts — one recipient's state rebuilt from its recorded
 * outcomes (spool records, oldest first).
 *
 *  - delivered / failed are final: nothing recorded after them matters.
 *  - deferred gives attempts, next try, last error and the time of the try.
 *  - held / released toggle a hold flag and nothing else, so a deferral
 *    recorded while held (a task that was running when `hold` came) leaves
 *    the recipient held.
 *
 * Delay warnings are not recorded separately: the runner commits a warning
 * DSN before the deferral record of the try that found it due, so the
 * warnings sent are those whose interval had passed at the last deferral
 * (warningsSent). A crash between the two repeats one warning at worst.
 */
import type { RecipientOutcome } from '../mail/envelope.js';

export interface Replayed {
  readonly state: 'pending' | 'deferred' | 'delivered' | 'failed';
  readonly held: boolean;
  readonly attempts: number;
  readonly lastTry?: number;
  readonly nextTry?: number;
  readonly lastError?: string;
}

export function replay(outcomes: readonly RecipientOutcome[] | undefined): Replayed {
  let r: { -readonly [K in keyof Replayed]: Replayed[K] } = { state: 'pending', held: false, attempts: 0 };
  for (const o of outcomes ?? []) {
    switch (o.kind) {
      case 'delivered':
      case 'failed':
        return { state: o.kind, held: false, attempts: r.attempts, lastTry: o.at, lastError: o.kind === 'failed' ? o.detail : r.lastError };
      case 'deferred':
        r = { ...r, state: 'deferred', attempts: o.attempts, lastTry: o.at, nextTry: o.nextTry, lastError: o.detail };
        break;
      case 'held':
        r.held = true;
        break;
      case 'released':
        r.held = false;
        break;
    }
  }
  return r;
}

/** How many warn intervals (ms after arrival) had passed at `lastDeferral`. */
export function warningsSent(arrival: number, warnIntervalsMs: readonly number[], lastDeferral: number | undefined): number {
  if (lastDeferral === undefined) return 0;
  return warnIntervalsMs.filter((w) => arrival + w <= lastDeferral).length;
}
