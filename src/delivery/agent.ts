/*
 * delivery/agent.ts — the one shape every delivery backend has.
 *
 * The scheduler hands an agent a task: one message, the recipients of it
 * that share an action and a destination key (one local user, one remote
 * domain), and a way to read the stored message. The agent answers one
 * result per recipient. Agents never touch the spool and never decide
 * about retries: the scheduler records outcomes and times the next try.
 *
 * Local agents (mbox, maildir, mda, lmtp, file, command) live in
 * delivery/local/…; the SMTP client for relaying in mta/…
 */
import type { Readable } from 'node:stream';
import type { Action } from '../config/model.js';
import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';

export interface DeliveryTask {
  readonly envelope: Envelope;
  /** Recipients of this message routed to `action` with the same destination key. */
  readonly recipients: readonly EnvelopeRecipient[];
  readonly action: Action;
  /** A fresh stream of the stored message bytes (Postern's Received: header included, CRLF line ends). */
  openBody(): Readable;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** Aborted when the daemon stops or the task's time is up: stop and report tempfail. */
  readonly signal: AbortSignal;
}

export type DeliveryStatus = 'ok' | 'tempfail' | 'permfail';

export interface RecipientResult {
  readonly evpid: string;
  readonly status: DeliveryStatus;
  /** RFC 3463 enhanced status code: "2.0.0", "4.2.2", "5.1.1" … */
  readonly enhanced: string;
  /** One line, for the log and `smtpctl show queue`: "mbox: /var/mail/bob: disk quota exceeded". No CR/LF. */
  readonly detail: string;
  /** DSN Remote-MTA ("dns; mx.example.org") when a remote server answered. */
  readonly remoteMta?: string;
  /** DSN Diagnostic-Code ("smtp; 550 5.1.1 <x@y>: user unknown"). */
  readonly diagnostic?: string;
}

export interface DeliveryAgent {
  /** "mda" for local agents, "mta" for relaying (stats, logs, pause/resume). */
  readonly kind: 'mda' | 'mta';
  /**
   * Recipients with the same key may share one task (one SMTP connection to a domain, one
   * mailbox lock for a user); concurrency limits apply per key.
   */
  key(action: Action, rcpt: EnvelopeRecipient): string;
  deliver(task: DeliveryTask): Promise<RecipientResult[]>;
}

/** Cleans a detail/diagnostic string for the spool, the log and DSNs: one line, no control characters, bounded. */
export function oneLine(s: string, max = 512): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x1f\x7f]/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}
