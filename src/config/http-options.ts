/*
 * config/http-options.ts — what smtpd.conf's `http` statements configure:
 * the optional HTTP listener for /metrics, the JSON API and the dashboard
 * (docs/configuration.md, "The HTTP listener"; docs/monitoring.md).
 * Absent (the default): no HTTP listener at all. The types of the result
 * (HttpOptions) are in model.ts with the rest of Config.
 */
import type { HttpOptions, HttpRole, HttpToken, Position } from './model.js';

export type { HttpOptions, HttpRole, HttpToken };

/** Mutable pieces while parsing. */
export interface HttpDraft {
  listen?: { address: string; port: number; pki?: string; pos: Position };
  readonly tokens: HttpToken[];
  maxConnections?: { value: number; pos: Position };
}

/** Default port of `http listen on` (Prometheus' exporters live around 9100–9999). */
export const DEFAULT_HTTP_PORT = 9180;
export const DEFAULT_HTTP_MAX_CONNECTIONS = 64;
