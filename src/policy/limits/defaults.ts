/*
 * policy/limits/defaults.ts — every abuse limit's default, in one place.
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
