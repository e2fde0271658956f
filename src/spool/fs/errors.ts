/*
 * spool/fs/errors.ts — errors the filesystem spool reports.
 *
 * Every error the spool raises on purpose is a SpoolError with a code the
 * caller can switch on; errors from the operating system (EIO, ENOSPC …)
 * pass through unchanged and must be treated as temporary failures.
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
  | 'STATE';

export class SpoolError extends Error {
  override readonly name = 'SpoolError';
  constructor(
    readonly code: SpoolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** True for a Node system error with this errno code (ENOENT, EEXIST …). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
