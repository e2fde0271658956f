/*
 * delivery/local/job.ts — one local delivery as plain data.
 *
 * The agent turns a recipient into a Job (paths expanded and checked, the
 * environment built); runJob() performs it, either in the daemon (when it
 * does not run as root), in a delivery worker with the user's effective ids
 * (deliver-worker.ts), or in the deliver-as helper after it has become the
 * user. A Job crosses the pipe as JSON, so it holds no functions and
 * nothing the other side would have to look up again.
 */
import { Readable } from 'node:stream';
import type { FileCalls } from './file-calls.js';
import { deliverMaildir, type MaildirJob } from './maildir.js';
import { deliverMbox, type MboxHooks, type MboxJob } from './mbox.js';
import { runMda, type MdaJob } from './mda.js';
import type { Outcome } from './outcome.js';

export type Job = MboxJob | MaildirJob | MdaJob;

/** How a job runs beyond its input. */
export interface RunOptions {
  readonly signal?: AbortSignal;
  readonly hooks?: MboxHooks;
  /** A maildir job leaves the fsync of new/ to its caller (a worker's batch, deliver-worker.ts). */
  readonly syncLater?: (dir: string) => void;
  /** A maildir job's file calls (file-calls.ts): a delivery worker's synchronous ones. */
  readonly calls?: FileCalls;
}

/** The message as a stream, or whole (its Buffers; a maildir job writes them as they are, the others get a stream). */
export function runJob(job: Job, input: Readable | readonly Buffer[], opts: RunOptions = {}): Promise<Outcome> {
  const stream = (): Readable => (Array.isArray(input) ? Readable.from(input, { objectMode: false }) : (input as Readable));
  switch (job.kind) {
    case 'mbox':
      return deliverMbox(job, stream(), { ...opts.hooks, signal: opts.signal });
    case 'maildir':
      return deliverMaildir(job, input, opts);
    case 'mda':
      return runMda(job, stream(), opts.signal);
  }
}

/**
 * Who the worker (effective ids, effective-ids.ts) or the helper
 * (setgid/setuid, deliver-as.ts) becomes. `mode`:
 *   'user'        the user's ids before anything is opened;
 *   'user+group'  the same, keeping `spoolGid` as a supplementary group, for
 *                 a group-writable mail spool (Debian's /var/mail is 2775
 *                 root:mail) so that the dotlock can be created;
 *   'root-open'   the mail spool is writable by root only: lock and open (or
 *                 create and chown) as root, then switch the effective ids
 *                 to the user's for writing, as Postfix's local(8) does.
 */
export interface Credentials {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  /** Look up supplementary groups with initgroups(3) (system users); virtual users get only `gid`. */
  readonly initgroups: boolean;
  readonly mode: 'user' | 'user+group' | 'root-open';
  readonly spoolGid?: number;
}

/** What the daemon sends a worker or the helper before the message bytes: one JSON line. */
export interface HelperRequest {
  readonly v: 1;
  readonly creds: Credentials;
  readonly job: Job;
  /**
   * A delivery worker's batch (worker-pool.ts): more jobs follow at once, and this one's answer waits for the
   * batch's last job, after which the maildir folders of the whole batch are fsynced once, then every answer is sent.
   */
  readonly more?: boolean;
}
