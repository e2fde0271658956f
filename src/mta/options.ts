/*
 * mta/options.ts — the relay client's limits and timeouts, with their
 * defaults (docs/relay.md explains each). Timeouts follow Postfix smtp(8):
 * connect 30 s, greeting/EHLO/MAIL/RCPT 300 s, DATA 120 s, each block of
 * data 180 s, the reply to the final dot 600 s, RSET 20 s.
 */

export interface Timeouts {
  /** TCP connect (and the TLS handshake of smtps). */
  readonly connect: number;
  /** The 220 greeting. */
  readonly greeting: number;
  /** EHLO/HELO, STARTTLS (and its handshake), AUTH, MAIL, RCPT. */
  readonly command: number;
  /** The 354 after DATA. */
  readonly dataInit: number;
  /** Each write of message content (how long the server may not read). */
  readonly dataBlock: number;
  /** The reply to the final dot or BDAT LAST. */
  readonly dataDone: number;
  readonly rset: number;
  readonly quit: number;
}

export interface RelayTuning {
  /** Port of MX hosts and address literals (smarthosts have their own). */
  readonly port: number;
  /** MX hosts looked up and tried per attempt. */
  readonly maxHosts: number;
  /** Addresses tried per attempt, over all hosts. */
  readonly maxAddresses: number;
  /** Address families used: both (IPv4 first), or one. */
  readonly family: 'any' | 'inet4' | 'inet6';
  readonly timeouts: Timeouts;
  /** Messages per connection before it is closed. */
  readonly maxMessagesPerSession: number;
  /** An idle cached connection is closed after this long (ms). */
  readonly idleMs: number;
  /** Idle connections kept per destination. */
  readonly maxIdlePerDestination: number;
  /** Use BDAT when the server offers CHUNKING. */
  readonly chunking: boolean;
  /** Use PIPELINING when offered. */
  readonly pipelining: boolean;
  /** Bytes of content per write (DATA) or per BDAT chunk. */
  readonly dataBatch: number;
  readonly bdatChunk: number;
  /** Send AUTH credentials over a connection without TLS (never, unless set). */
  readonly allowPlaintextAuth: boolean;
  /** Extra trusted CA certificates (PEM) for verified TLS; tests and private CAs. */
  readonly tlsCa?: string | Buffer | readonly (string | Buffer)[];
  /** Random source in [0, 1) for MX shuffling (tests). */
  readonly rnd?: () => number;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  connect: 30_000,
  greeting: 300_000,
  command: 300_000,
  dataInit: 120_000,
  dataBlock: 180_000,
  dataDone: 600_000,
  rset: 20_000,
  quit: 10_000,
};

export const DEFAULT_TUNING: RelayTuning = {
  port: 25,
  maxHosts: 5,
  maxAddresses: 10,
  family: 'any',
  timeouts: DEFAULT_TIMEOUTS,
  maxMessagesPerSession: 100,
  idleMs: 5_000,
  // As many as the scheduler runs at once per destination (maxTasksPerKey.mta), so a
  // steady stream of mail keeps its sessions rather than opening one per message.
  maxIdlePerDestination: 10,
  chunking: true,
  pipelining: true,
  dataBatch: 64 * 1024,
  bdatChunk: 1024 * 1024,
  allowPlaintextAuth: false,
};

export type RelayTuningInput = Partial<Omit<RelayTuning, 'timeouts'>> & { readonly timeouts?: Partial<Timeouts> };

export function tuning(input: RelayTuningInput = {}): RelayTuning {
  return { ...DEFAULT_TUNING, ...input, timeouts: { ...DEFAULT_TIMEOUTS, ...input.timeouts } };
}
