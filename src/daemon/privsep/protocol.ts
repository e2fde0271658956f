/*
 * daemon/privsep/protocol.ts — the messages between smtpd's privileged
 * parent (root) and its SMTP side (the unprivileged child), over Node's IPC
 * channel ('advanced' serialization: Buffers travel as bytes). The parent
 * checks every message from the child with the functions below before it
 * acts on it; anything else is ignored and logged. The child names things
 * (an address to bind from its configuration, a queued recipient, a file in
 * offline/); the parent looks each up again in its own reading of the
 * configuration, the users and the file system. Never a path, a command or
 * a uid chosen by the child.
 *
 *   child → parent (the mail log has a pipe of its own: log-pipe.ts)
 *     bind      a listener of the configuration, the HTTP listener or the control socket
 *     deliver   local recipients of a queued message (up to MAX_REQS; one
 *               outcome each, in one answer): action name, sender, recipient
 *               (address, original address, destination), header facts; and
 *               the whole message with them when it is small (INLINE_MAX: one
 *               message over the channel for all of them), else (one recipient):
 *     body      then the message, in chunks; end (or abandon: the spool could
 *               not be read); cancel (the task was aborted)
 *     offline   a file name in offline/ (sendmail's submissions, 0600 to their owner)
 *     reload    read the configuration again (SIGHUP, smtpctl reload)
 *     password  check a system password (`listen … auth`: unix_chkpwd needs root)
 *     forward   read a local user's ~/.forward, by user name (the SMTP side cannot enter a 0700 home)
 *     filter-spawn  start the `filter NAME proc-exec` of the configuration, as its user;
 *               filter-in (bytes for its standard input), filter-kill
 *     ready / fatal   start-up is over, or failed
 *   parent → child
 *     bound (with the socket), outcome (one per recipient of its deliver), offline-file, checked, forward-read,
 *     reloaded (with the secret files), filter-out (a filter's standard output, fd 1, or error, fd 2), filter-exit
 *
 * Either way, the messages of one turn of the event loop travel as one
 * { t: 'batch', ms } (coalesce.ts), each checked as if it came alone.
 */
import type { BindSpec } from '../../privsep/listen.js';
import type { Destination } from '../../mail/envelope.js';
import type { RemoteRequest } from '../../delivery/local/agent.js';
import type { Outcome } from '../../delivery/local/outcome.js';
import type { SystemPasswordOutcome } from '../../privsep/passwords.js';
import type { ForwardRead } from '../../expand/forward.js';

export type ChildMessage =
  | { readonly t: 'bind'; readonly id: number; readonly spec: BindSpec }
  | { readonly t: 'deliver'; readonly id: number; readonly reqs: readonly RemoteRequest[]; readonly body?: Uint8Array }
  | { readonly t: 'body'; readonly id: number; readonly chunk: Uint8Array }
  | { readonly t: 'end' | 'abandon' | 'cancel'; readonly id: number }
  | { readonly t: 'offline'; readonly id: number; readonly name: string }
  | { readonly t: 'reload'; readonly id: number }
  | { readonly t: 'password'; readonly id: number; readonly user: string; readonly password: string }
  | { readonly t: 'forward'; readonly id: number; readonly user: string }
  | { readonly t: 'filter-spawn'; readonly id: number; readonly name: string }
  | { readonly t: 'filter-in'; readonly id: number; readonly chunk: Uint8Array }
  | { readonly t: 'filter-kill'; readonly id: number; readonly signal: 'SIGTERM' | 'SIGKILL' }
  | { readonly t: 'ready' }
  | { readonly t: 'fatal'; readonly message: string };

export type ParentMessage =
  | { readonly t: 'bound'; readonly id: number; readonly error?: string }
  | { readonly t: 'outcome'; readonly id: number; readonly outcomes: readonly Outcome[] }
  | { readonly t: 'offline-file'; readonly id: number; readonly uid?: number; readonly data?: Uint8Array; readonly error?: string; readonly code?: number }
  | { readonly t: 'checked'; readonly id: number; readonly outcome: SystemPasswordOutcome }
  | { readonly t: 'forward-read'; readonly id: number; readonly read: ForwardRead }
  | { readonly t: 'filter-out'; readonly id: number; readonly fd: 1 | 2; readonly chunk: Uint8Array }
  | { readonly t: 'filter-exit'; readonly id: number; readonly code: number | null; readonly signal: string | null; readonly error?: string }
  | { readonly t: 'reloaded'; readonly id: number; readonly error?: string; readonly secrets?: ReadonlyMap<string, Uint8Array> };

const MAX_TEXT = 64 * 1024;
/** A message up to this size travels inside its 'deliver' message. */
export const INLINE_MAX = 256 * 1024;
/** The most recipients of one 'deliver' message (a task holds fewer: maxRcptPerTask). */
export const MAX_REQS = 1000;

/** Bytes off the channel (a Uint8Array after the advanced serialization) as a Buffer over the same memory. */
export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function isStr(x: unknown, max = MAX_TEXT): x is string {
  return typeof x === 'string' && x.length <= max && !x.includes('\0');
}
function isId(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function isDest(x: unknown): x is Destination {
  if (typeof x !== 'object' || x === null) return false;
  const d = x as Record<string, unknown>;
  switch (d.kind) {
    case 'user':
      return isStr(d.user, 256) && (d.extension === undefined || isStr(d.extension, 256));
    case 'file':
      return isStr(d.path, 4096) && isStr(d.user, 256);
    case 'command':
      return isStr(d.command) && isStr(d.user, 256);
    default:
      return false;
  }
}

function isRequest(x: unknown): x is RemoteRequest {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  const rcpt = r.rcpt as Record<string, unknown> | null;
  const facts = r.facts as Record<string, unknown> | null;
  return (
    isStr(r.action, 256) &&
    isStr(r.sender, 1024) &&
    typeof rcpt === 'object' && rcpt !== null &&
    isStr(rcpt.evpid, 64) && isStr(rcpt.address, 1024) && isStr(rcpt.action, 256) &&
    (rcpt.original === undefined || isStr(rcpt.original, 1024)) &&
    isDest(rcpt.dest) &&
    typeof facts === 'object' && facts !== null &&
    typeof facts.spam === 'boolean' &&
    Array.isArray(facts.deliveredTo) && facts.deliveredTo.length <= 1000 && facts.deliveredTo.every((v) => isStr(v, 1024))
  );
}

function isBindSpec(x: unknown): x is BindSpec {
  if (typeof x !== 'object' || x === null) return false;
  const s = x as Record<string, unknown>;
  if (s.kind === 'unix') return isStr(s.path, 4096);
  return s.kind === 'tcp' && isStr(s.host, 256) && typeof s.port === 'number' && Number.isInteger(s.port) && s.port >= 0 && s.port <= 65535 && (s.backlog === undefined || (typeof s.backlog === 'number' && s.backlog > 0 && s.backlog <= 65535));
}

/** A message from the child, checked; undefined for anything malformed. */
export function checkChildMessage(x: unknown): ChildMessage | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  const m = x as Record<string, unknown>;
  switch (m.t) {
    case 'bind':
      return isId(m.id) && isBindSpec(m.spec) ? (m as ChildMessage) : undefined;
    case 'deliver': {
      // Several recipients only with the message itself (a streamed message is one recipient's).
      const reqs = m.reqs;
      if (!Array.isArray(reqs) || reqs.length === 0 || reqs.length > MAX_REQS || !reqs.every(isRequest)) return undefined;
      const bodyOk = m.body === undefined ? reqs.length === 1 : m.body instanceof Uint8Array;
      return isId(m.id) && bodyOk ? (m as ChildMessage) : undefined;
    }
    case 'body':
      return isId(m.id) && m.chunk instanceof Uint8Array ? (m as ChildMessage) : undefined;
    case 'end':
    case 'abandon':
    case 'cancel':
    case 'reload':
      return isId(m.id) ? (m as ChildMessage) : undefined;
    case 'offline':
      return isId(m.id) && isStr(m.name, 255) ? (m as ChildMessage) : undefined;
    case 'password':
      return isId(m.id) && isStr(m.user, 256) && isStr(m.password, 1024) ? (m as ChildMessage) : undefined;
    case 'filter-spawn':
      return isId(m.id) && isStr(m.name, 256) ? (m as ChildMessage) : undefined;
    case 'filter-in':
      return isId(m.id) && m.chunk instanceof Uint8Array ? (m as ChildMessage) : undefined;
    case 'filter-kill':
      return isId(m.id) && (m.signal === 'SIGTERM' || m.signal === 'SIGKILL') ? (m as ChildMessage) : undefined;
    case 'forward':
      return isId(m.id) && isStr(m.user, 256) && !m.user.includes('/') ? (m as ChildMessage) : undefined;
    case 'ready':
      return { t: 'ready' };
    case 'fatal':
      return isStr(m.message) ? { t: 'fatal', message: m.message } : undefined;
    default:
      return undefined;
  }
}
