/*
 * scheduler/dispatch.ts — between the schedule and the delivery agents:
 * which agent and key a recipient gets, running one task, and the mail-log
 * line and counters of each result.
 *
 * Agent choice: a recipient whose destination (EnvelopeRecipient.dest) is
 * 'remote' goes to the relay agent (mta), 'user'/'file'/'command' to the
 * local one (mda); without a dest (envelopes written before expansion
 * existed) the action decides: 'relay' → mta, anything else → mda.
 *
 * Whatever an agent does — throws, forgets a recipient, answers for one it
 * was not given — every recipient of the task ends with exactly one result;
 * the missing ones are temporary failures.
 */
import type { ActionKind, Config } from '../config/model.js';
import type { Transport } from '../metrics/probe.js';
import { oneLine, type DeliveryAgent, type RecipientResult } from '../delivery/agent.js';
import type { LogFields, MailLog } from '../log/maillog.js';
import type { Spool } from '../spool/spool.js';
import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import type { Stats } from '../stats.js';
import type { DsnResultHint } from '../bounce/rules.js';
import { formatDuration } from '../time/duration.js';
import type { AgentKind } from './policy.js';
import type { Classified, EnvelopeView, Task } from './types.js';

export type Result = RecipientResult & DsnResultHint;

/** The transport a delivery is counted under in the metrics. */
export function transportOf(kind: AgentKind, action: ActionKind | undefined): Transport {
  return action === 'lmtp' ? 'lmtp' : kind === 'mta' ? 'relay' : 'local';
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}

/** Agent kind, key and lifetime of a recipient. Recipients of different actions never share a task. */
export function classify(config: Config, agents: Readonly<Record<AgentKind, DeliveryAgent>>, log: MailLog, r: EnvelopeRecipient): Classified {
  const action = config.actions.get(r.action);
  const kind: AgentKind = r.dest !== undefined ? (r.dest.kind === 'remote' ? 'mta' : 'mda') : action?.kind === 'relay' ? 'mta' : 'mda';
  let key: string;
  if (action === undefined) key = `?${r.action}`;
  else {
    try {
      key = agents[kind].key(action, r);
    } catch (e) {
      log.warn(`scheduler: ${kind} key for ${r.evpid}: ${(e as Error).message}`);
      key = r.address;
    }
  }
  const ttl = r.ttl ?? action?.ttl;
  return { kind, key: `${r.action} ${key}`, ttlMs: ttl === undefined ? undefined : ttl * 1000 };
}

/** Run one task; one result per recipient, whatever the agent does. */
export async function runTask(
  d: { readonly config: Config; readonly spool: Spool; readonly agents: Readonly<Record<AgentKind, DeliveryAgent>>; readonly stats?: Pick<Stats, 'probe'> },
  task: Task,
  env: Envelope,
  rcpts: readonly EnvelopeRecipient[],
  signal: AbortSignal,
): Promise<Map<string, Result>> {
  const tempfail = (enhanced: string, detail: string): Map<string, Result> => new Map(task.evpids.map((evpid) => [evpid, { evpid, status: 'tempfail', enhanced, detail }]));
  const first = rcpts[0];
  if (first === undefined) return tempfail('4.3.0', 'no recipient of the task is left in the schedule');
  const action = d.config.actions.get(first.action);
  if (action === undefined) return tempfail('4.3.5', `no action "${first.action}" in the configuration`);
  let list: readonly Result[];
  const started = performance.now();
  try {
    list = await d.agents[task.kind].deliver({ envelope: env, recipients: rcpts, action, openBody: () => d.spool.openBody(task.msgid), attempt: task.attempt, signal });
  } catch (e) {
    return tempfail('4.3.0', `${task.kind} agent error: ${(e as Error).message}`);
  } finally {
    d.stats?.probe.transaction(transportOf(task.kind, action.kind), (performance.now() - started) / 1000);
  }
  const out = new Map<string, Result>();
  for (const r of list) {
    if (!task.evpids.includes(r.evpid) || out.has(r.evpid)) continue;
    out.set(r.evpid, { ...r, detail: oneLine(String(r.detail ?? '')) });
  }
  for (const evpid of task.evpids) {
    if (!out.has(evpid)) out.set(evpid, { evpid, status: 'tempfail', enhanced: '4.3.0', detail: `${task.kind} agent returned no result for this recipient` });
  }
  return out;
}

/** The fields every line about one envelope starts with. */
function envelopeFields(env: Envelope, v: EnvelopeView, now: number): LogFields {
  return {
    evpid: v.evpid,
    from: `<${env.sender}>`,
    to: `<${v.rcpt.address}>`,
    rcpt: `<${v.rcpt.original ?? v.rcpt.address}>`,
    action: v.action,
    delay: formatDuration(now - env.arrival),
  };
}

/** `mda|mta delivery ok|tempfail|permfail evpid=… from=<…> to=<…> rcpt=<…> action=… delay=… attempts=… stat="…"` */
export function logResult(log: MailLog, stats: Stats, kind: AgentKind, env: Envelope, v: EnvelopeView, r: Result, now: number, transport?: Transport): void {
  const loop = r.status === 'permfail' && r.enhanced === '5.4.6';
  stats.inc(`scheduler.delivery.${loop ? 'loop' : r.status}`);
  const outcome = r.status === 'ok' ? 'delivered' : r.status === 'tempfail' ? 'deferred' : 'bounced';
  stats.probe.delivery(transport ?? transportOf(kind, undefined), outcome, domainOf(v.rcpt.address), (now - env.arrival) / 1000, r.status === 'ok' ? undefined : `${r.enhanced} ${r.detail}`);
  log.event(kind, `delivery ${r.status}`, { ...envelopeFields(env, v, now), attempts: v.attempts + 1, stat: `${r.enhanced} ${r.detail}` });
}

/** `queue expired evpid=… from=<…> to=<…> rcpt=<…> action=… delay=… attempts=…` */
export function logExpired(log: MailLog, stats: Stats, env: Envelope, v: EnvelopeView, now: number, transport?: Transport): void {
  stats.inc('scheduler.envelope.expired');
  stats.probe.delivery(transport ?? 'local', 'expired', domainOf(v.rcpt.address), (now - env.arrival) / 1000);
  log.event('queue', 'expired', { ...envelopeFields(env, v, now), attempts: v.attempts });
}
