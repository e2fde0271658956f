/*
 * spool/spool.ts — the storage interface of the queue.
 *
 * The spool stores messages and remembers per-recipient outcomes; it never
 * decides *when* anything happens (that is the scheduler's job). Nothing
 * outside spool/ knows how a backend stores things: ids are minted by the
 * backend, errors are SpoolError (spool/errors.ts) or temporary, and the
 * body is reached through the writer (bodyFile) or openBody, never through
 * a path computed by the caller. Only daemon/ and cli/ name a backend
 * (checked by .dependency-cruiser.cjs). The filesystem backend (spool/fs/,
 * docs/spool-format.md) is the first; the contract tests in
 * test/unit/spool-contract.ts run against every backend.
 *
 * Durability contract (what callers may rely on, whatever the backend):
 *  - MessageWriter.commit() resolves only once the message — body,
 *    envelope, and the recipients' ids — will survive a crash of the
 *    process or the machine, and can be loaded by its msgid. (The fs
 *    backend gets there either through its write-ahead journal, fdatasynced
 *    in a batch with the other commits in flight, or by fdatasyncing the
 *    message file and fsyncing its folder.) The SMTP server sends 250 after
 *    that, never before.
 *  - A writer that is aborted, or whose process dies before commit(),
 *    leaves nothing that will ever be delivered.
 *  - appendOutcome() resolves once the record will survive a crash.
 *  - remove() may be made durable later, in a batch: after a crash a
 *    removed message can come back, so at worst a recipient is tried twice,
 *    never forgotten.
 */
import type { Readable } from 'node:stream';
import type { Envelope, EnvelopeRecipient, RecipientOutcome } from '../mail/envelope.js';

/** A recipient as the caller hands it in: the backend gives it its evpid (a caller's own, if valid, is kept). */
export type RecipientDraft = Omit<EnvelopeRecipient, 'evpid'> & { readonly evpid?: string };

/** The envelope as the caller hands it to commit(): the backend fills in version, msgid, size and evpids. */
export type EnvelopeDraft = Omit<Envelope, 'msgid' | 'size' | 'version' | 'recipients'> & { readonly recipients: readonly RecipientDraft[] };

/**
 * The message written so far as a file an outside program can read (ZMailer's
 * content filter runs in `dir` and is handed `name`, relative to it). Valid
 * until the writer commits or aborts; the program must not change it.
 */
export interface BodyFile {
  readonly dir: string;
  readonly name: string;
}

export interface MessageWriter {
  readonly msgid: string;
  /** Bytes written so far. */
  readonly size: number;
  /** Append body bytes (buffered internally; bounded memory). Keeps a reference to `chunk`. */
  write(chunk: Buffer): void;
  /** Resolves when buffered bytes reached the backend (back-pressure for large messages). */
  drain(): Promise<void>;
  /** Everything written so far, as a file (for outside programs); later writes go on after it. */
  bodyFile(): Promise<BodyFile>;
  /** Store the envelope with the body, durably (see the contract above), and return it as stored. */
  commit(envelope: EnvelopeDraft): Promise<Envelope>;
  /** Drop everything written. Safe to call more than once, and after a failed commit. */
  abort(): Promise<void>;
}

export interface StoredMessage {
  readonly envelope: Envelope;
  /** Outcomes per evpid, in the order recorded (last one wins). */
  readonly outcomes: ReadonlyMap<string, readonly RecipientOutcome[]>;
}

export interface RecoveryReport {
  /** Messages found complete and kept. */
  readonly messages: number;
  /** Incomplete messages removed (writes never committed). */
  readonly removedIncomplete: number;
  /** Unreadable messages set aside (the fs backend moves them to corrupt/). */
  readonly corrupt: readonly { readonly name: string; readonly reason: string }[];
}

export interface Spool {
  /** Prepare the storage, check it, recover after a crash. Call once before use. */
  open(): Promise<RecoveryReport>;
  /** Start a new message: allocates a unique msgid. */
  createMessage(): Promise<MessageWriter>;
  /** Free bytes available to the spool's storage. */
  freeSpace(): Promise<number>;
  /** Ids of committed messages. */
  list(): Promise<string[]>;
  /** A committed message; SpoolError NOT_FOUND if there is none (any more). */
  load(msgid: string): Promise<StoredMessage>;
  /** The stored message bytes (with Postern's Received: header). */
  openBody(msgid: string): Readable;
  appendOutcome(evpid: string, outcome: RecipientOutcome): Promise<void>;
  /** Remove a message and its records (all recipients done, or `smtpctl remove`). */
  remove(msgid: string): Promise<void>;
  close(): Promise<void>;
}
