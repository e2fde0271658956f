/*
 * spool/spool.ts — the storage interface of the queue.
 *
 * The spool stores messages and remembers per-recipient outcomes; it never
 * decides *when* anything happens (that is the scheduler's job). The
 * filesystem backend (spool/fs/…) is the first implementation.
 *
 * Durability contract:
 *  - MessageWriter.commit() resolves only after the message file and its
 *    folder are fsynced and the message is visible under its final name.
 *    The SMTP server sends 250 after that, never before.
 *  - A writer that is aborted, or whose process dies before commit(),
 *    leaves nothing that will ever be delivered.
 *  - appendOutcome() resolves after the record is fsynced.
 */
import type { Readable } from 'node:stream';
import type { Envelope, RecipientOutcome } from '../mail/envelope.js';

export interface MessageWriter {
  readonly msgid: string;
  /** Bytes written so far. */
  readonly size: number;
  /** Append body bytes (buffered internally; bounded memory). */
  write(chunk: Buffer): void;
  /** Resolves when buffered bytes reached the kernel (back-pressure for large messages). */
  drain(): Promise<void>;
  /** Write the envelope, fsync, publish atomically. The envelope's msgid and size are filled in. */
  commit(envelope: Omit<Envelope, 'msgid' | 'size' | 'version'>): Promise<Envelope>;
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
  /** Incomplete files removed (writes never committed). */
  readonly removedIncomplete: number;
  /** Unreadable files moved to corrupt/. */
  readonly corrupt: readonly { readonly name: string; readonly reason: string }[];
}

export interface Spool {
  /** Create folders, scan, recover. Call once before use. */
  open(): Promise<RecoveryReport>;
  /** Start a new message: allocates a unique msgid. */
  createMessage(): Promise<MessageWriter>;
  /** Free bytes available to the spool's filesystem. */
  freeSpace(): Promise<number>;
  /** Ids of committed messages. */
  list(): Promise<string[]>;
  load(msgid: string): Promise<StoredMessage>;
  /** The stored message bytes (with Postern's Received: header). */
  openBody(msgid: string): Readable;
  appendOutcome(evpid: string, outcome: RecipientOutcome): Promise<void>;
  /** Remove a message and its records (all recipients done, or `smtpctl remove`). */
  remove(msgid: string): Promise<void>;
  close(): Promise<void>;
}
