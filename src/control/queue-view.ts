/*
 * control/queue-view.ts — one queued envelope as `show queue` reports it,
 * built either from the running scheduler (online) or from the spool's
 * records when the daemon is stopped (offline). Pure.
 *
 * The fields follow OpenSMTPD's smtpctl show_queue_envelope():
 *   evpid | src | agent | flags | sender | rcpt | dest | creation | expire |
 *   last try | retry | runstate | runtime | error line
 * with Postern's values:
 *   src       local (sendmail, Postern's own reports) | inet4 | inet6
 *   agent     mda (local delivery) | mta (relay)
 *   flags     comma-separated: bounce (a report, sender <>), auth (sent by an
 *             authenticated or local user), internal (written by Postern), hold
 *   sender    the reverse path ("" for <>; printed "@" as OpenSMTPD does)
 *   rcpt      the address as given at RCPT TO (before aliases/virtual)
 *   dest      where the copy goes: user@domain for a local user, /path for a
 *             file, |command for a program, else the address
 *   times     seconds since the epoch; last try 0 if never tried
 *   retry     temporary failures so far
 *   runstate  pending (runtime = seconds until the next try, ≤ 0 = due),
 *             inflight (runtime = seconds since the previous try, or since
 *             arrival for a first try), offline (daemon stopped; no runtime)
 */
import type { Config } from '../config/model.js';
import { replay } from '../scheduler/replay.js';
import type { EnvelopeState, EnvelopeView } from '../scheduler/types.js';
import type { ClientInfo, Envelope, EnvelopeRecipient, RecipientOutcome } from '../mail/envelope.js';

/** States of an envelope still queued. */
export type QueuedState = Exclude<EnvelopeState, 'delivered' | 'failed'>;

export interface QueueEntry {
  readonly evpid: string;
  readonly msgid: string;
  readonly src: 'local' | 'inet4' | 'inet6';
  readonly agent: 'mda' | 'mta';
  readonly flags: readonly string[];
  readonly sender: string;
  readonly rcpt: string;
  readonly dest: string;
  readonly action: string;
  readonly state: QueuedState;
  /** Message size, bytes. */
  readonly size: number;
  /** Arrival, seconds since the epoch. */
  readonly ctime: number;
  /** End of the queue lifetime, seconds since the epoch. */
  readonly expire: number;
  /** Previous try, seconds since the epoch; 0 if never tried. */
  readonly lastTry: number;
  /** Temporary failures so far. */
  readonly retry: number;
  /** Next try, seconds since the epoch, when one is planned. */
  readonly nextTry: number | null;
  readonly runstate: 'pending' | 'inflight' | 'offline';
  /** See the file header; null when offline. */
  readonly runtime: number | null;
  /** The last error, "" if none. */
  readonly error: string;
}

const sec = (ms: number): number => Math.floor(ms / 1000);

export function srcOf(c: ClientInfo): QueueEntry['src'] {
  if (c.proto === 'LOCAL' || c.address === 'local') return 'local';
  return c.address.includes(':') ? 'inet6' : 'inet4';
}

export function flagsOf(env: Envelope, held: boolean): string[] {
  const f: string[] = [];
  if (env.sender === '') f.push('bounce');
  if (env.client.authUser !== undefined) f.push('auth');
  if (env.client.listener === 'bounce') f.push('internal');
  if (held) f.push('hold');
  return f;
}

export function destOf(r: EnvelopeRecipient): string {
  const d = r.dest;
  if (d === undefined || d.kind === 'remote') return r.address;
  if (d.kind === 'user') return `${d.user}@${r.address.slice(r.address.lastIndexOf('@') + 1)}`;
  if (d.kind === 'file') return d.path;
  return `|${d.command}`;
}

/** Agent kind as the scheduler chooses it (scheduler/dispatch.ts classify). */
export function agentOf(config: Config, r: EnvelopeRecipient): QueueEntry['agent'] {
  if (r.dest !== undefined) return r.dest.kind === 'remote' ? 'mta' : 'mda';
  return config.actions.get(r.action)?.kind === 'relay' ? 'mta' : 'mda';
}

/** An envelope of the running scheduler; undefined if final (no longer queued). */
export function onlineEntry(v: EnvelopeView, env: Envelope, now: number): QueueEntry | undefined {
  if (v.state === 'delivered' || v.state === 'failed') return undefined;
  const inflight = v.state === 'inflight';
  const runtime = inflight ? sec(now - (v.lastTry ?? v.ctime)) : v.nextTry === undefined ? 0 : sec(v.nextTry) - sec(now);
  return {
    evpid: v.evpid,
    msgid: v.msgid,
    src: srcOf(env.client),
    agent: v.kind,
    flags: flagsOf(env, v.state === 'held' || v.holdRequested),
    sender: env.sender,
    rcpt: v.rcpt.original ?? v.rcpt.address,
    dest: destOf(v.rcpt),
    action: v.action,
    state: v.state,
    size: env.size,
    ctime: sec(v.ctime),
    expire: sec(v.expire),
    lastTry: v.lastTry === undefined ? 0 : sec(v.lastTry),
    retry: v.attempts,
    nextTry: v.nextTry === undefined ? null : sec(v.nextTry),
    runstate: inflight ? 'inflight' : 'pending',
    runtime,
    error: v.lastError ?? '',
  };
}

/** An envelope read from the spool with the daemon stopped; undefined if final. */
export function offlineEntry(config: Config, env: Envelope, r: EnvelopeRecipient, outcomes: readonly RecipientOutcome[] | undefined): QueueEntry | undefined {
  const s = replay(outcomes);
  if (s.state === 'delivered' || s.state === 'failed') return undefined;
  const ttl = r.ttl ?? config.actions.get(r.action)?.ttl ?? config.queue.ttl;
  return {
    evpid: r.evpid,
    msgid: env.msgid,
    src: srcOf(env.client),
    agent: agentOf(config, r),
    flags: flagsOf(env, s.held),
    sender: env.sender,
    rcpt: r.original ?? r.address,
    dest: destOf(r),
    action: r.action,
    state: s.held ? 'held' : s.state,
    size: env.size,
    ctime: sec(env.arrival),
    expire: sec(env.arrival) + ttl,
    lastTry: s.lastTry === undefined ? 0 : sec(s.lastTry),
    retry: s.attempts,
    nextTry: s.nextTry === undefined ? null : sec(s.nextTry),
    runstate: 'offline',
    runtime: null,
    error: s.lastError ?? '',
  };
}

/** `show envelope`: everything known about one recipient. */
export interface EnvelopeDetails {
  readonly evpid: string;
  readonly msgid: string;
  /** The scheduler's state, or the one the spool's records give when the daemon is stopped. */
  readonly state: EnvelopeState;
  /** Read from the running daemon (false: from the spool, daemon stopped). */
  readonly online: boolean;
  readonly sender: string;
  readonly recipient: EnvelopeRecipient;
  readonly dest: string;
  readonly agent: 'mda' | 'mta';
  readonly message: Omit<Envelope, 'recipients' | 'version' | 'msgid' | 'sender'> & { readonly recipients: number };
  readonly attempts: number;
  readonly lastTry: number | null;
  readonly nextTry: number | null;
  readonly expire: number;
  readonly error: string;
  /** The records kept for it in the spool, oldest first. */
  readonly history: readonly RecipientOutcome[];
}

export function envelopeDetails(
  config: Config,
  env: Envelope,
  r: EnvelopeRecipient,
  outcomes: readonly RecipientOutcome[],
  view: EnvelopeView | undefined,
): EnvelopeDetails {
  const s = replay(outcomes);
  const { recipients, version: _v, msgid: _m, sender: _s, ...message } = env;
  const ttl = r.ttl ?? config.actions.get(r.action)?.ttl ?? config.queue.ttl;
  return {
    evpid: r.evpid,
    msgid: env.msgid,
    state: view?.state ?? (s.held && (s.state === 'pending' || s.state === 'deferred') ? 'held' : s.state),
    online: view !== undefined,
    sender: env.sender,
    recipient: r,
    dest: destOf(r),
    agent: view?.kind ?? agentOf(config, r),
    message: { ...message, recipients: recipients.length },
    attempts: view?.attempts ?? s.attempts,
    lastTry: sec0(view ? view.lastTry : s.lastTry),
    nextTry: sec0(view ? view.nextTry : s.nextTry),
    expire: view ? sec(view.expire) : sec(env.arrival) + ttl,
    error: (view ? view.lastError : s.lastError) ?? '',
    history: outcomes,
  };
}

function sec0(ms: number | undefined): number | null {
  return ms === undefined ? null : sec(ms);
}
