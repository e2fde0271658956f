/*
 * filter/filter.ts — what a filter is, as the SMTP session and the front
 * door see it.
 *
 * A filter (a milter, an smtpd-filters(7) process, a built-in `filter`
 * statement) is opened once per SMTP session (FilterSession) and asked at
 * each phase: connect, helo/ehlo, mail-from, rcpt-to, data, and — with the
 * whole message as stored — at the end of the message. It answers with a
 * verdict value; the session (for the envelope phases) and the front door
 * (queue/enqueue.ts, for the message) apply it. Neither knows which kind of
 * filter answered. Several filters on one listener form a chain
 * (filter/chain.ts): the first verdict other than "proceed" wins, and each
 * filter sees the message as the previous ones left it.
 *
 * A filter that fails (crashed, timed out, talked nonsense) answers by its
 * configured default (a milter's default-action, a filter process: tempfail)
 * and logs why; it never throws into the session.
 */
import type { Reply } from '../mail/reply.js';
import type { SessionFacts } from '../policy/policy.js';

/** An envelope phase's answer. */
export type FilterVerdict =
  | { readonly kind: 'proceed' }
  /** Proceed, and skip the filters after this one in a chain at this phase (OpenSMTPD's bypass). */
  | { readonly kind: 'bypass' }
  /** Refuse the command with `reply` (4xx tempfail or 5xx); `disconnect`: then close the session. */
  | { readonly kind: 'reject'; readonly reply: Reply; readonly reason: string; readonly disconnect?: boolean }
  /** Go on, but the transaction is junk: the message gets `X-Spam: yes` (OpenSMTPD's junk). */
  | { readonly kind: 'junk'; readonly reason: string }
  /** Go on with this value instead of the client's (OpenSMTPD's rewrite: a HELO name, a sender, a recipient). */
  | { readonly kind: 'rewrite'; readonly value: string; readonly reason: string };

export const PROCEED: FilterVerdict = Object.freeze({ kind: 'proceed' });

/** One change to the message's header section (libmilter's smfi_addheader, smfi_insheader, smfi_chgheader). */
export type HeaderEdit =
  /** Append a field at the end of the header section. */
  | { readonly op: 'add'; readonly name: string; readonly value: string }
  /** Insert a field before the `index`-th field (0: at the top). */
  | { readonly op: 'insert'; readonly index: number; readonly name: string; readonly value: string }
  /** Change the `index`-th (1-based) field named `name`; an empty value deletes it. */
  | { readonly op: 'change'; readonly index: number; readonly name: string; readonly value: string };

/** What a filter changed in an accepted message. */
export interface MessageEdits {
  readonly headers: readonly HeaderEdit[];
  /** A new body (after the header section), CRLF line ends. */
  readonly body?: Buffer;
  /** A whole new message (header section and body): a filter process's data lines. */
  readonly message?: Buffer;
  readonly sender?: string;
  readonly addRcpts: readonly string[];
  readonly delRcpts: readonly string[];
  /** Keep the message but hold it (libmilter's quarantine); the reason is logged. */
  readonly quarantine?: string;
}

/** The end of the message's answer. */
export type MessageVerdict =
  | { readonly kind: 'accept'; readonly edits?: MessageEdits }
  | { readonly kind: 'reject'; readonly reply: Reply; readonly reason: string; readonly disconnect?: boolean }
  /** Tell the client 250 and throw the message away. */
  | { readonly kind: 'discard'; readonly reason: string };

/** The message as a filter sees it at its end (Postern's Received: header included). */
export interface FilterMessage {
  readonly msgid: string;
  readonly sender: string;
  readonly recipients: readonly string[];
  /** The whole message, CRLF line ends. */
  readonly bytes: Buffer;
  /** `mailauth verify`'s results (one word per method), when the message was checked. */
  readonly auth?: { readonly spf: string; readonly dkim: string; readonly dmarc: string; readonly arc: string };
}

/**
 * What happened in the session, as it happened, for filters that follow
 * it (smtpd-filters(7)'s report stream); milters and built-in filters
 * ignore it.
 */
export type SessionReport =
  /** A command line as received; AUTH secrets are masked ("********"), as OpenSMTPD does. */
  | { readonly kind: 'client'; readonly line: string }
  /** One line of a reply, as sent. */
  | { readonly kind: 'server'; readonly line: string }
  | { readonly kind: 'tls'; readonly version: string; readonly cipher: string; readonly bits?: number }
  | { readonly kind: 'auth'; readonly user: string; readonly result: 'pass' | 'fail' | 'error' }
  /** The message is queued (before the reply that says so): its recipients' ids and its size. */
  | { readonly kind: 'queued'; readonly evpids: readonly string[]; readonly size: number }
  | { readonly kind: 'timeout' };

/** One filter's view of one SMTP session. Every method resolves; none throws. */
export interface FilterSession {
  connect(s: SessionFacts): Promise<FilterVerdict>;
  /** `extended`: EHLO rather than HELO. */
  helo(s: SessionFacts, name: string, extended: boolean): Promise<FilterVerdict>;
  /** STARTTLS, before the handshake (filter processes only). */
  starttls?(s: SessionFacts): Promise<FilterVerdict>;
  /** AUTH with this mechanism, before the exchange (filter processes only; never the credentials). */
  auth?(s: SessionFacts, mechanism: string): Promise<FilterVerdict>;
  mail(s: SessionFacts, sender: string, args: readonly string[]): Promise<FilterVerdict>;
  rcpt(s: SessionFacts, rcpt: string, args: readonly string[]): Promise<FilterVerdict>;
  data(s: SessionFacts): Promise<FilterVerdict>;
  message(s: SessionFacts, m: FilterMessage): Promise<MessageVerdict>;
  /** The message as it is stored, chunk by chunk, while it comes (before message()): for filters that read it as it arrives. */
  content?(chunk: Buffer): void;
  report?(e: SessionReport): void;
  /** The transaction ended without a message (RSET, a refusal, a new EHLO). */
  abort(): void;
  /** The session is over. */
  close(): void;
}

/** What the session holds: a way to open the listener's filters for one session. */
export interface FilterOpener {
  /** The filters of listener `name` (the `filter NAME` of its listen line), or undefined when it has none. */
  open(name: string | undefined, hostname: string): FilterSession | undefined;
}

/** What a filter may write to the log. */
export interface FilterLog {
  event(kind: string, event: string, fields: Record<string, string | number | undefined>): void;
  warn(message: string): void;
}
