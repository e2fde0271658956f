/*
 * policy/limits/tarpit.ts — ZMailer's tarpit: a delay before each 4xx/5xx
 * reply that grows after each one (PARAM tarpit n1 n2, seed 000).
 *
 * The first refusal waits n1 seconds; after each, the delay becomes
 * prev + prev × n2; no delay exceeds the cap (250 s in the seed; later
 * ZMailer takes it as a third argument). As in ZMailer's smtp_tarpit(),
 * a delay over the cap is set to the cap and keeps growing from there, so
 * "tarpit 20 2" waits 20, 60, 180, 250, 250 … seconds. n1 = 0 turns the
 * tarpit off. Positive replies are never delayed and do not reset it.
 *
 * One Tarpit per session; pure (the caller does the waiting).
 */
import { LIMIT_DEFAULTS, TarpitSettings, NO_TARPIT } from '../../config/limits.js';

export class Tarpit {
  private currentSec: number;

  constructor(private readonly settings: TarpitSettings = NO_TARPIT) {
    for (const [k, v] of Object.entries(settings)) {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`tarpit ${k} must be a number ≥ 0`);
    }
    this.currentSec = settings.initialSec;
  }

  /** The wait before a reply with this code, in ms; a 4xx/5xx also grows the next one. */
  delayFor(code: number): number {
    if (code < 400 || this.currentSec <= 0) return 0;
    if (this.currentSec > this.settings.capSec) this.currentSec = this.settings.capSec;
    const delay = this.currentSec;
    this.currentSec += this.currentSec * this.settings.multiplier;
    return Math.round(delay * 1000);
  }

  /** The wait the next 4xx/5xx reply will get, in ms (for the dry run). */
  peekMs(): number {
    return Math.round(Math.min(this.currentSec, this.settings.capSec) * 1000);
  }
}
