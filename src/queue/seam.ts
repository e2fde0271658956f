/*
 * queue/seam.ts — the scheduler as the rest of the daemon sees it: the
 * front door (queue/enqueue.ts) tells it a message was queued, the session
 * asks it to run a domain's queue (ETRN). The scheduler (scheduler/runner.ts)
 * implements it; nothing below the scheduler imports the scheduler itself.
 */
import type { Reply } from '../mail/reply.js';
import type { Envelope } from '../mail/envelope.js';

/** The seam to the scheduler: ETRN and "a message was queued". */
export interface SchedulerSeam {
  /** `client`: the address that asked (ETRN passed on to a cluster is not passed back). */
  etrn(domain: string, client?: string): Promise<Reply> | Reply;
  /**
   * `held`: the message must not be tried until released (its "held" records are already in the spool).
   * A promise is awaited before the client hears 250 (smtpserver -i/-n hand the message on to the
   * daemon's queue there); if it rejects, the client gets 451 instead.
   */
  enqueued(env: Envelope, opts?: { readonly held?: boolean }): void | Promise<void>;
}
