/*
 * control/handlers.ts — what each control command does to the daemon: the
 * server's command table. Every handler gets arguments already checked by
 * protocol.ts and returns the reply's data, or throws CommandError (its
 * message goes to the client as is).
 *
 *   show …                 views (queue-view.ts, stats-view.ts)
 *   schedule/remove        QueueRunner.scheduleNow/remove  → { count }
 *   pause|resume envelope  QueueRunner.hold/release        → { count }
 *   pause|resume smtp|mta|mda, log, update table, reload, stop → the target
 *
 * An id naming nothing in the queue is an error ("no such message or
 * envelope"), so that a mistyped id is never mistaken for "nothing to do".
 * In a cluster the queue is the shared one (cluster/queue-control.ts).
 */
import type { Readable } from 'node:stream';
import type { QueueAction } from '../cluster/queue-control.js';
import type { QueueRunner } from '../scheduler/runner.js';
import type { EnvelopeView } from '../scheduler/types.js';
import type { StoredMessage } from '../spool/spool.js';
import type { Args, CommandName } from './protocol.js';
import { envelopeDetails, onlineEntry, type QueueEntry } from './queue-view.js';
import { buildStats, summarize, type Digest, type StatsView } from './stats-view.js';
import type { ControlTarget, Service } from './target.js';

export class CommandError extends Error {}

export interface HandlerContext {
  readonly target: ControlTarget;
  now(): number;
  /** Messages per second over the last minute. */
  messageRate(): number;
  digest(): Digest;
  /** Between two monitor digests (1 s; shorter in tests). */
  readonly monitorIntervalMs: number;
  /** Runs after the reply was written (stop). */
  after(fn: () => void): void;
}

/** A streaming command: send() each part; the returned data, if any, ends the stream. */
export type Streamer = (send: (data: unknown) => Promise<void>, signal: AbortSignal) => Promise<unknown>;

export type Handler = (ctx: HandlerContext, args: Args) => unknown;

/** Bytes of a message per `show message` reply (base64 adds a third). */
export const MESSAGE_CHUNK = 48 * 1024;

function must(args: Args, k: string): string {
  const v = args[k];
  if (v === undefined) throw new CommandError(`missing argument ${k}`);
  return v;
}

/** Does `target` (msgid, evpid or "all") name something this node's queue holds? (Also for other nodes' requests, daemon/cluster-state.ts.) */
export function holds(runner: Pick<QueueRunner, 'schedule'>, target: string): boolean {
  return target === 'all' || (target.length === 8 ? runner.schedule.has(target) : runner.schedule.get(target) !== undefined);
}

const LOG_NAMES: Record<QueueAction, string> = { schedule: 'schedule', remove: 'remove', hold: 'pause-envelope', release: 'resume-envelope' };

/**
 * schedule / remove / pause envelope / resume envelope: on what this node
 * holds, and in a cluster on the rest of the shared queue (`direct`:
 * envelopes acted on in the database; `elsewhere`: nodes holding leases,
 * asked to act). A target that names nothing anywhere is an error.
 */
async function queueAction(ctx: HandlerContext, a: Args, action: QueueAction, here: (target: string) => number | Promise<number>): Promise<unknown> {
  const t = ctx.target;
  const target = must(a, 'target');
  const mine = holds(t.runner, target);
  if (!mine && t.clusterAct === undefined) throw new CommandError(`no such ${target.length === 8 ? 'message' : 'envelope'}: ${target}`);
  const count = mine ? await here(target) : 0;
  const rest = t.clusterAct === undefined ? undefined : await t.clusterAct(action, target);
  if (rest !== undefined && !mine && !rest.found) throw new CommandError(`no such ${target.length === 8 ? 'message' : 'envelope'} in the cluster's queue: ${target}`);
  t.log.event('control', LOG_NAMES[action], { target, envelopes: count, ...(rest ? { direct: rest.direct, elsewhere: rest.asked.map((x) => x.node).join(',') } : {}) });
  return rest === undefined ? { count } : { count, direct: rest.direct, elsewhere: rest.asked };
}

function queueEntries(t: ControlTarget, now: number, msgid?: string): QueueEntry[] {
  const views = msgid === undefined ? t.runner.envelopes() : t.runner.schedule.ofMessage(msgid);
  const out: QueueEntry[] = [];
  for (const v of views) {
    const env = t.runner.schedule.envelope(v.msgid);
    if (env === undefined) continue;
    const e = onlineEntry(v, env, now);
    if (e) out.push(e);
  }
  return out;
}

async function load(t: ControlTarget, msgid: string, what: string): Promise<StoredMessage> {
  try {
    return await t.spool.load(msgid);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'NOT_FOUND' || (e as { code?: unknown }).code === 'ENOENT') throw new CommandError(`no such ${what}`);
    throw e;
  }
}

/** Queue lines and the queue summary for stats and monitor. */
export function queueSummary(t: ControlTarget, views: readonly EnvelopeView[] = t.runner.envelopes()): ReturnType<typeof summarize> {
  return summarize(views, (m) => t.runner.schedule.envelope(m)?.size ?? 0);
}

export function statsView(ctx: HandlerContext): StatsView {
  const t = ctx.target;
  return buildStats({ counters: t.stats.snapshot(), now: ctx.now(), startedAt: t.stats.startedAt, queue: queueSummary(t), messageRate: ctx.messageRate() });
}

function setPaused(ctx: HandlerContext, what: Service, pause: boolean, name: string): unknown {
  if (pause) ctx.target.pause(what);
  else ctx.target.resume(what);
  ctx.target.log.event('control', name.replace(' ', '-'));
  return { [what]: pause ? 'paused' : 'running' };
}

async function bodyStream(ctx: HandlerContext, id: string): Promise<Streamer> {
  const msgid = id.slice(0, 8);
  const stored = await load(ctx.target, msgid, `message: ${id}`);
  if (id.length === 16 && !stored.envelope.recipients.some((r) => r.evpid === id)) throw new CommandError(`no such envelope: ${id}`);
  return async (send, signal) => {
    const body: Readable = ctx.target.spool.openBody(msgid);
    let size = 0;
    let pending: Buffer = Buffer.alloc(0);
    try {
      for await (const c of body) {
        if (signal.aborted) break;
        pending = pending.length === 0 ? (c as Buffer) : Buffer.concat([pending, c as Buffer]);
        while (pending.length >= MESSAGE_CHUNK) {
          await send({ chunk: pending.subarray(0, MESSAGE_CHUNK).toString('base64') });
          size += MESSAGE_CHUNK;
          pending = pending.subarray(MESSAGE_CHUNK);
        }
      }
    } finally {
      body.destroy();
    }
    if (pending.length > 0) {
      await send({ chunk: pending.toString('base64') });
      size += pending.length;
    }
    return { msgid, size };
  };
}

const HANDLERS: Readonly<Record<CommandName, Handler>> = {
  'show queue': (ctx, a) => {
    const msgid = a['msgid'];
    if (msgid !== undefined && !holds(ctx.target.runner, msgid)) throw new CommandError(`no such message: ${msgid}`);
    return queueEntries(ctx.target, ctx.now(), a['msgid']);
  },
  'show envelope': async (ctx, a) => {
    const evpid = must(a, 'evpid');
    const t = ctx.target;
    const stored = await load(t, evpid.slice(0, 8), `envelope: ${evpid}`);
    const r = stored.envelope.recipients.find((x) => x.evpid === evpid);
    if (r === undefined) throw new CommandError(`no such envelope: ${evpid}`);
    return envelopeDetails(t.config, stored.envelope, r, stored.outcomes.get(evpid) ?? [], t.runner.schedule.get(evpid));
  },
  'show message': (ctx, a) => bodyStream(ctx, must(a, 'id')),
  'show cluster': async (ctx) => (ctx.target.cluster ? await ctx.target.cluster() : []),
  'show stats': (ctx) => statsView(ctx),
  'show status': (ctx) => {
    const p = ctx.target.paused();
    const s = (b: boolean): string => (b ? 'paused' : 'running');
    // While the daemon is still loading a large queue at start: how far it is (absent once loaded).
    const q = ctx.target.runner.loadState();
    const loading = q.loading ? { queue: 'loading', messages: q.messages } : {};
    return { smtp: s(p.smtp), mta: s(p.mta), mda: s(p.mda), sessions: ctx.target.sessions(), ...loading };
  },
  'show hosts': (ctx) => ctx.target.hosts?.() ?? [],
  'show routes': (ctx) => ctx.target.routes?.() ?? [],
  schedule: (ctx, a) => queueAction(ctx, a, 'schedule', (t) => ctx.target.runner.scheduleNow(t)),
  remove: (ctx, a) =>
    queueAction(ctx, a, 'remove', async (t) => {
      const n = await ctx.target.runner.remove(t);
      ctx.target.stats.inc('scheduler.envelope.removed', n);
      return n;
    }),
  'pause envelope': (ctx, a) => queueAction(ctx, a, 'hold', (t) => ctx.target.runner.hold(t)),
  'resume envelope': (ctx, a) => queueAction(ctx, a, 'release', (t) => ctx.target.runner.release(t)),
  'pause smtp': (ctx) => setPaused(ctx, 'smtp', true, 'pause smtp'),
  'pause mta': (ctx) => setPaused(ctx, 'mta', true, 'pause mta'),
  'pause mda': (ctx) => setPaused(ctx, 'mda', true, 'pause mda'),
  'resume smtp': (ctx) => setPaused(ctx, 'smtp', false, 'resume smtp'),
  'resume mta': (ctx) => setPaused(ctx, 'mta', false, 'resume mta'),
  'resume mda': (ctx) => setPaused(ctx, 'mda', false, 'resume mda'),
  'log brief': (ctx) => {
    ctx.target.log.setVerbose(false);
    ctx.target.log.event('control', 'log-brief');
    return { log: 'brief' };
  },
  'log verbose': (ctx) => {
    ctx.target.log.setVerbose(true);
    ctx.target.log.event('control', 'log-verbose');
    return { log: 'verbose' };
  },
  monitor: (ctx): Streamer => async (send, signal) => {
    while (!signal.aborted) {
      await send(ctx.digest());
      await sleep(ctx.monitorIntervalMs, signal);
    }
    return undefined;
  },
  'update table': (ctx, a) => {
    const name = must(a, 'name');
    const r = ctx.target.updateTable(name);
    if (!r.ok) throw new CommandError(r.error);
    ctx.target.log.event('control', 'update-table', { table: name });
    return { table: name };
  },
  reload: async (ctx) => {
    const r = await ctx.target.reload();
    if (!r.ok) throw new CommandError(r.error);
    ctx.target.log.event('control', 'reload');
    return { reloaded: true };
  },
  stop: (ctx) => {
    ctx.target.log.event('control', 'stop');
    ctx.after(() => ctx.target.stop());
    return { stopping: true };
  },
};

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export function handlerFor(name: CommandName): Handler {
  return HANDLERS[name];
}
