/*
 * config/limits.ts — every abuse limit's default and the shape of its settings, in one place
 * (the machinery that applies them is in smtp/limits/).
 *
 * Modelled on Postfix's smtpd (its parameter named for each); where Postfix
 * has no equivalent, or Postern's design changes the trade-off, the comment
 * says why. docs/policy.md shows the same table for administrators.
 * Limits that live in smtpd.conf's `smtp` options (recipients, messages,
 * unknown commands, timeouts) keep their defaults in config/defaults.ts and
 * are listed here for reference only.
 */

export const LIMIT_DEFAULTS = Object.freeze({
  /** Simultaneous connections from one address (Postfix smtpd_client_connection_count_limit = 50). 0 = no limit. */
  maxConnectionsPerClient: 50,
  /**
   * Simultaneous connections in total. Postfix bounds processes
   * (default_process_limit = 100); a Node connection is far cheaper than a
   * process, so Postern takes ZMailer's MaxParallelConnections default, 800.
   */
  maxConnections: 800,
  /** Beyond this many times the per-client limit, close without a reply (ZMailer: 4). */
  silentDropFactor: 4,
  /** Beyond the total limit plus this many, close without a reply (ZMailer: 100). */
  silentDropExtra: 100,
  /** Reply code when a connection limit is hit: Postfix's 421 4.7.0 (ZMailer files use 450). */
  connectionRefusalCode: 421 as 421 | 450,

  /** Errors before every reply is slowed down (Postfix smtpd_soft_error_limit = 10). */
  softErrorLimit: 10,
  /** Errors before 421 and close (Postfix smtpd_hard_error_limit = 20). */
  hardErrorLimit: 20,
  /** The slow-down once over the soft limit (Postfix smtpd_error_sleep_time = 1s). */
  errorSleepMs: 1000,

  /** ZMailer's tarpit: off (0 0); when on, growth is capped at 250 s. */
  tarpitInitialSec: 0,
  tarpitMultiplier: 0,
  tarpitCapSec: 250,

  /**
   * Time for one whole request — a command line, or DATA/BDAT content —
   * (Postfix smtpd_timeout = 300s, applied as a deadline as with
   * smtpd_per_request_deadline = yes). Postfix turns deadlines on only
   * under stress; Postern keeps them on, since a slowloris client that
   * trickles one byte a minute otherwise holds a connection slot forever.
   */
  requestTimeoutMs: 300_000,
  /** Minimum DATA/BDAT rate once deadlines are on (Postfix smtpd_min_data_rate = 500 bytes/s). */
  minDataRate: 500,

  /** Refuse new sessions above this load average (ZMailer -L; 999 there means off). undefined = off. */
  maxLoadAverage: undefined as number | undefined,

  /* For reference — configured in smtpd.conf, defaults in config/defaults.ts: */
  /** `smtp limit max-rcpt` (Postfix smtpd_recipient_limit = 1000). */
  maxRcptPerTransaction: 1000,
  /** `smtp limit max-mails` (Postfix has only a rate, smtpd_client_message_rate_limit = 0). */
  maxMessagesPerSession: 100,
  /** `smtp limit max-unknown-commands` (Postfix smtpd_junk_command_limit = 100; Postern and ZMailer: 10). */
  maxUnknownCommands: 10,
});

export interface ConnectionLimits {
  /** Per client address; 0 = no limit. */
  readonly maxPerClient: number;
  /** In total; 0 = no limit. */
  readonly maxTotal: number;
  /** Drop silently beyond maxPerClient × this (0 = never). */
  readonly silentDropFactor: number;
  /** Drop silently beyond maxTotal + this (-1 = never). */
  readonly silentDropExtra: number;
  readonly refusalCode: 421 | 450;
  /** Clients the per-client limit does not apply to (Postfix smtpd_client_event_limit_exceptions). */
  readonly exempt?: (ip: string) => boolean;
  /** Connections from this (canonical) address on the cluster's other nodes (cluster/connections.ts); none on a single node. */
  readonly elsewhere?: (ip: string) => number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = Object.freeze({
  maxPerClient: LIMIT_DEFAULTS.maxConnectionsPerClient,
  maxTotal: LIMIT_DEFAULTS.maxConnections,
  silentDropFactor: LIMIT_DEFAULTS.silentDropFactor,
  silentDropExtra: LIMIT_DEFAULTS.silentDropExtra,
  refusalCode: LIMIT_DEFAULTS.connectionRefusalCode,
});

export interface ErrorLimits {
  /** Errors before replies slow down; 0 = never. */
  readonly softLimit: number;
  /** Errors before 421 and close; 0 = never. */
  readonly hardLimit: number;
  /** Wait before each reply once over the soft limit, ms. */
  readonly sleepMs: number;
}

export const DEFAULT_ERROR_LIMITS: ErrorLimits = Object.freeze({
  softLimit: LIMIT_DEFAULTS.softErrorLimit,
  hardLimit: LIMIT_DEFAULTS.hardErrorLimit,
  sleepMs: LIMIT_DEFAULTS.errorSleepMs,
});

export interface TarpitSettings {
  /** First delay before a 4xx/5xx reply, seconds (n1). 0 = no tarpit. */
  readonly initialSec: number;
  /** Growth: next = prev + prev × multiplier (n2). */
  readonly multiplier: number;
  /** Ceiling, seconds (250 in the seed; a third argument as in later ZMailer). */
  readonly capSec: number;
}

export const NO_TARPIT: TarpitSettings = Object.freeze({
  initialSec: LIMIT_DEFAULTS.tarpitInitialSec,
  multiplier: LIMIT_DEFAULTS.tarpitMultiplier,
  capSec: LIMIT_DEFAULTS.tarpitCapSec,
});
