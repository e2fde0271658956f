/*
 * bench/destinations.ts — where the servers deliver in each mode, and
 * where deliveries are counted:
 *
 *   maildir, mda  the ~/Maildir/new of the local users pbench0 … (the
 *                 server's own maildir delivery, or procmail's);
 *   lmtp          a fresh Dovecot per cell (bench/dovecot.ts), its
 *                 mailboxes;
 *   relay         a fresh smtp-sink per cell, its counter.
 *
 * The time of the last delivery is the newest ctime in the mailboxes'
 * new/ (set by the rename or link into new/, with the kernel's clock —
 * unlike the mtime, which an MDA may set to the message's date), or the
 * moment the sink reported its last message.
 */
import { join } from 'node:path';
import { dovecotUnavailable, startDovecot } from './dovecot.js';
import type { Mode } from './servers/server.js';
import { sinkUnavailable, startSink } from './servers/sink.js';
import { HOMES, benchUsersMissing, countUserMail, newestCtimeMs, retireUserMail, userMaildirs } from './users.js';
import { freePort, run, which } from './util.js';

export interface Destination {
  readonly sinkPort?: number;
  readonly lmtpPort?: number;
  /** Deliveries so far (one per recipient). */
  count(): number;
  /** Wall-clock time (ms since the epoch) of the last delivery, 0 when none. */
  lastDeliveryMs(): number;
  /** The destination's own process (Dovecot, smtp-sink), not part of any server's figures. */
  readonly pid?: number;
  stop(): Promise<void>;
}

/** Why a mode's destination cannot be made here, or undefined. */
export function destinationUnavailable(mode: Mode): string | undefined {
  switch (mode) {
    case 'relay':
      return sinkUnavailable();
    case 'lmtp':
      return dovecotUnavailable() ?? benchUsersMissing();
    case 'mda':
      return which('procmail') ? benchUsersMissing() : 'procmail is not installed';
    case 'maildir':
      return benchUsersMissing();
  }
}

/**
 * Makes the destination of one cell. `rcpts`: how many users a message
 * goes to (pbench0 … pbench<rcpts-1>). `dir`: a fresh folder for Dovecot.
 * The users' earlier mail is moved away under HOMES/.trash/<tag> first.
 */
export async function openDestination(mode: Mode, rcpts: number, dir: string, tag: string): Promise<Destination> {
  if (mode === 'relay') {
    const sink = await startSink(await freePort('127.0.0.3'));
    return {
      sinkPort: sink.port,
      count: () => sink.messages(),
      lastDeliveryMs: () => (sink.lastMessageAt() > 0 ? performance.timeOrigin + sink.lastMessageAt() : 0),
      pid: sink.rootPid,
      stop: () => sink.stop(),
    };
  }
  if (mode === 'lmtp') {
    const d = await startDovecot(dir);
    return { lmtpPort: d.port, count: () => d.delivered(), lastDeliveryMs: () => d.lastDeliveryMs(), pid: d.rootPid, stop: () => d.stop() };
  }
  retireUserMail(join(HOMES, '.trash', tag));
  const boxes = userMaildirs(rcpts);
  return { count: () => countUserMail(rcpts), lastDeliveryMs: () => newestCtimeMs(boxes), stop: async () => undefined };
}

/** Where retired mailboxes go (deleted with the other work folders at the end of the run). */
export const TRASH_OF_MAILBOXES = join(HOMES, '.trash');

/** The versions of the destinations' programs, for the report ("" when missing). */
export function destinationVersions(): Record<string, string> {
  const first = (cmd: string, args: string[]): string => (which(cmd) ? (run(cmd, args, { timeoutMs: 5000 }).stdout + run(cmd, args, { timeoutMs: 5000 }).stderr).trim().split('\n')[0] ?? '' : '');
  return { dovecot: first('dovecot', ['--version']), procmail: first('procmail', ['-v']) };
}
