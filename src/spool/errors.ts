/*
 * spool/errors.ts — errors a spool backend reports, whichever it is.
 *
 * Every error a backend raises on purpose is a SpoolError with a code the
 * caller can switch on (isSpoolError); other errors (EIO, ENOSPC, a lost
 * database connection …) pass through unchanged and must be treated as
 * temporary failures. storageFull() tells the one a client hears
 * differently: a full disk or quota (452 4.3.1, RFC 3463).
 */

export type SpoolErrorCode =
  /** No committed message with that id. */
  | 'NOT_FOUND'
  /** A stored file failed validation (trailer, checksum, schema). */
  | 'CORRUPT'
  /** ROOT/VERSION is missing or names another format. */
  | 'VERSION'
  /** The caller handed in an envelope/outcome/id that cannot be stored. */
  | 'INVALID'
  /** The spool or the writer is closed, or was used out of order. */
  | 'STATE'
  /** No room left to store (a backend's own limit; the filesystem's is ENOSPC). */
  | 'FULL';

export class SpoolError extends Error {
  override readonly name = 'SpoolError';
  constructor(
    readonly code: SpoolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A SpoolError, with this code when one is given. */
export function isSpoolError(err: unknown, code?: SpoolErrorCode): err is SpoolError {
  return err instanceof SpoolError && (code === undefined || err.code === code);
}

/** Did storing fail for lack of room (ENOSPC, EDQUOT, or a backend's own SpoolError FULL)? */
export function storageFull(err: unknown): boolean {
  return isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT') || isSpoolError(err, 'FULL');
}

/** True for a Node system error with this errno code (ENOENT, EEXIST …). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
