/*
 * metrics/probe.ts — the hooks the hot path calls to be counted, as one
 * small interface (Probe). The SMTP server, the front door, the scheduler,
 * the policy and the spool call it through `Stats.probe`; the daemon gives
 * them the Prometheus registry (metrics/registry.ts) when the HTTP listener
 * is on, and NOOP_PROBE otherwise. Every method only bumps a counter or a
 * histogram: no I/O, no allocation beyond the label values passed in.
 */

/** How a message's life ended for one recipient, or where it is. */
export type DeliveryOutcome = 'delivered' | 'deferred' | 'bounced' | 'expired';

/** Where a delivery went: local (mbox, maildir, mda), lmtp, relay. */
export type Transport = 'local' | 'lmtp' | 'relay';

export interface Probe {
  /** A client connected to `listener` and was accepted, or refused at a connection limit. */
  session(listener: string, outcome: 'accepted' | 'refused'): void;
  /** A session ended: quit, timeout, disconnect, error, shutdown, refused, protocol. */
  sessionEnd(reason: string): void;
  /** A reply of 4xx/5xx to `command` (its verb), with its enhanced code when it has one. */
  refusal(command: string, code: number, enhanced: string | undefined): void;
  /** A message entered the queue through the front door (`origin`: smtp, local, bounce). */
  received(origin: string, recipients: number, bytes: number): void;
  /** One recipient's delivery attempt ended (or expired); `queueSeconds` since the message arrived; `error`: the reply of a failure. */
  delivery(transport: Transport, outcome: DeliveryOutcome, domain: string, queueSeconds: number, error?: string): void;
  /** One delivery task (agent call) took `seconds`. */
  transaction(transport: Transport, seconds: number): void;
  /** A TLS handshake completed with `version` (TLSv1.2, TLSv1.3). */
  tls(version: string): void;
  /** AUTH ended with `ok` or not. */
  auth(mechanism: string, ok: boolean): void;
  /** A policy check (`check`: its name; smtpd.conf for the rules) decided at `phase`. */
  policy(check: string, phase: string, decision: 'reject' | 'accept' | 'hold' | 'discard'): void;
  /** The spool made a batch of `size` commits durable with one fdatasync of `fsyncSeconds`. */
  spoolBatch(size: number, fsyncSeconds: number): void;
}

/** A probe that counts nothing (the HTTP listener is off). */
export const NOOP_PROBE: Probe = {
  session: () => undefined,
  sessionEnd: () => undefined,
  refusal: () => undefined,
  received: () => undefined,
  delivery: () => undefined,
  transaction: () => undefined,
  tls: () => undefined,
  auth: () => undefined,
  policy: () => undefined,
  spoolBatch: () => undefined,
};
