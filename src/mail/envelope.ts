/*
 * spool/envelope.ts — what Postern keeps about one accepted message.
 *
 * The message envelope is written once, at commit, beside the body; per
 * recipient outcomes are recorded later by the scheduler as separate,
 * append-only status records (see spool/spool.ts). Ids follow OpenSMTPD:
 * a message id is 8 hex digits, an envelope (recipient) id is the message
 * id followed by 8 more hex digits.
 */

export type NotifyKind = 'SUCCESS' | 'FAILURE' | 'DELAY';

/**
 * Where one recipient's copy goes, decided at RCPT time by the expansion
 * (aliases, virtual tables, userbase) as OpenSMTPD's lka does, so that every
 * final destination has its own envelope and its own delivery state.
 */
export type Destination =
  /** A local user's mailbox, delivered by the recipient's action (mbox, maildir, mda, lmtp). */
  | { readonly kind: 'user'; readonly user: string; readonly extension?: string }
  /** An aliases(5) "/path/file" destination: appended in mbox format, as `user`. */
  | { readonly kind: 'file'; readonly path: string; readonly user: string }
  /** An aliases(5) "|command" destination: the message piped to it, as `user`. */
  | { readonly kind: 'command'; readonly command: string; readonly user: string }
  /** Another mail server: the address is the destination (relay actions). */
  | { readonly kind: 'remote' };

export interface EnvelopeRecipient {
  /** Envelope id: msgid + 8 hex digits. */
  readonly evpid: string;
  /** The recipient as accepted (local@domain, domain lowercased). */
  readonly address: string;
  /** DSN ORCPT (RFC 3461 §4.2), decoded: "rfc822;user@example.org". */
  readonly orcpt?: string;
  /** DSN NOTIFY; undefined = not given (default FAILURE,DELAY); 'NEVER' = never. */
  readonly notify?: readonly NotifyKind[] | 'NEVER';
  /** Name of the smtpd.conf action the rules chose for it. */
  readonly action: string;
  /** Position of the deciding rule, as "file:line", for logs and `show envelope`. */
  readonly rule?: string;
  /** The RCPT TO address this one was expanded from, when expansion changed it. */
  readonly original?: string;
  /** Where the copy goes; undefined in envelopes written before expansion existed (treated as user/remote by action). */
  readonly dest?: Destination;
  /** Queue lifetime for this recipient in seconds (per-action `ttl`), when not the global one. */
  readonly ttl?: number;
}

export interface ClientInfo {
  readonly address: string;
  readonly port: number;
  /** Reverse DNS name, when forward-confirmed; undefined if unknown. */
  readonly hostname?: string;
  readonly helo?: string;
  /** 'SMTP' | 'ESMTP' | 'ESMTPS' | 'ESMTPA' | 'ESMTPSA' | 'UTF8SMTP…' | 'LOCAL' (sendmail) … */
  readonly proto: string;
  readonly authUser?: string;
  readonly tls?: { readonly version: string; readonly cipher: string; readonly peer?: string };
  readonly tag?: string;
  /** Listener "addr:port" the message came in on. */
  readonly listener: string;
}

export interface Envelope {
  readonly version: 1;
  readonly msgid: string;
  /** Reverse path without brackets; "" for the null sender <>. */
  readonly sender: string;
  readonly recipients: readonly EnvelopeRecipient[];
  readonly ret?: 'FULL' | 'HDRS';
  readonly envid?: string;
  readonly body: '7BIT' | '8BITMIME' | 'BINARYMIME';
  readonly smtputf8: boolean;
  /** MAIL FROM … AUTH= value (RFC 4954 §5), decoded; "<>" when given as such. */
  readonly mailAuth?: string;
  /** Arrival time, ms since the epoch. */
  readonly arrival: number;
  readonly client: ClientInfo;
  /** Size of the stored message (headers Postern added included), bytes. */
  readonly size: number;
}

/** Per-recipient outcome recorded by the scheduler (issue: scheduler/delivery). */
export type RecipientOutcome =
  | { readonly kind: 'delivered'; readonly at: number; readonly detail: string }
  | { readonly kind: 'failed'; readonly at: number; readonly detail: string }
  | { readonly kind: 'deferred'; readonly at: number; readonly detail: string; readonly attempts: number; readonly nextTry: number }
  | { readonly kind: 'held'; readonly at: number }
  | { readonly kind: 'released'; readonly at: number };
