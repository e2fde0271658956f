/*
 * config/transport-options.ts — the draft of the `mta` statements while
 * parsing (config/parse-mta.ts); the result, TransportSecurityConfig, is in
 * model.ts with the rest of Config.
 */
import type { Position, TransportSecurityConfig } from './model.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export interface TransportDraft extends Mutable<TransportSecurityConfig> {
  seen: Partial<Record<string, Position>>;
}
