/*
 * delivery/local/outcome.ts — what one local delivery attempt ends with.
 *
 * An Outcome is plain data (it crosses the pipe from the deliver-as helper
 * as JSON); the agent adds the envelope id to make a RecipientResult.
 * Enhanced codes follow RFC 3463: 2.0.0 delivered; 4.2.x mailbox busy or
 * full, 4.3.x mail system trouble (all retried); 5.1.x bad address, 5.2.x
 * unusable mailbox, 5.3.x mail system refused (bounced).
 */
import { oneLine, type DeliveryStatus } from '../agent.js';

export interface Outcome {
  readonly status: DeliveryStatus;
  readonly enhanced: string;
  readonly detail: string;
  readonly diagnostic?: string;
  readonly remoteMta?: string;
}

export function ok(detail: string): Outcome {
  return { status: 'ok', enhanced: '2.0.0', detail: oneLine(detail) };
}

export function tempfail(enhanced: string, detail: string): Outcome {
  return { status: 'tempfail', enhanced, detail: oneLine(detail) };
}

export function permfail(enhanced: string, detail: string): Outcome {
  return { status: 'permfail', enhanced, detail: oneLine(detail) };
}

/**
 * A system error during a mailbox update, classified. Unclassified errors
 * are temporary: a retry costs little, a wrong bounce loses mail.
 */
export function fromError(what: string, err: unknown): Outcome {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : '';
  const msg = `${what}: ${describe(e)}`;
  switch (code) {
    case 'ENOSPC':
      return tempfail('4.3.1', msg);
    case 'EDQUOT':
    case 'EFBIG':
      return tempfail('4.2.2', msg);
    case 'ELOOP':
      // O_NOFOLLOW met a symbolic link at the last component (Postfix refuses these too).
      return permfail('5.2.0', `${what}: is a symbolic link`);
    case 'EISDIR':
      return permfail('5.2.0', `${what}: is a directory`);
    case 'ENAMETOOLONG':
      return permfail('5.1.3', msg);
    default:
      return tempfail('4.3.0', msg);
  }
}

/** "permission denied (EACCES)" rather than Node's "EACCES: permission denied, open '/x'". */
export function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const err = e as NodeJS.ErrnoException;
  if (typeof err.code === 'string' && typeof err.syscall === 'string') {
    const text = err.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '').replace(new RegExp(`, ${err.syscall}$`), '');
    return `${text} (${err.code})`;
  }
  return err.message;
}
