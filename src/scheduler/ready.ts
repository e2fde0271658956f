/*
 * scheduler/ready.ts — envelopes due for a try, and the limits on handing
 * them out.
 *
 * Ready envelopes wait in one queue per (kind, key), grouped by message so
 * that the recipients of one message that share a key form one task. Keys
 * that have ready work and are under their own limit sit in a rotation per
 * kind; take() walks the rotations round-robin (a key goes to the back once
 * served), alternating kinds, so that one busy domain cannot starve the
 * others and local deliveries are not starved by relaying. The cost of
 * take() is proportional to the tasks it hands out, not to the queue size.
 */
import { AGENT_KINDS, type AgentKind, type ScheduleLimits } from './policy.js';

interface KeyQueue {
  readonly kind: AgentKind;
  readonly key: string;
  /** Tasks of this key running now. */
  running: number;
  /** msgid → ready evpids, in arrival order. */
  readonly groups: Map<string, Group>;
}

/**
 * The ready evpids of one message under one key: an array while small (the
 * usual one or few recipients: a Set costs several times as much memory for
 * each of the many messages held), a Set beyond SMALL_GROUP, where deleting
 * from an array would cost too much. The caller adds an evpid only once
 * (Schedule keeps a `queued` flag).
 */
type Group = string[] | Set<string>;
const SMALL_GROUP = 16;

function groupAdd(g: Group, evpid: string): Group {
  if (g instanceof Set) return g.add(evpid);
  g.push(evpid);
  return g.length > SMALL_GROUP ? new Set(g) : g;
}

function groupDelete(g: Group, evpid: string): void {
  if (g instanceof Set) {
    g.delete(evpid);
    return;
  }
  const i = g.indexOf(evpid);
  if (i >= 0) g.splice(i, 1);
}

function groupSize(g: Group): number {
  return g instanceof Set ? g.size : g.length;
}

export interface Batch {
  readonly kind: AgentKind;
  readonly key: string;
  readonly msgid: string;
  readonly evpids: readonly string[];
}

export class ReadyQueues {
  private readonly queues = new Map<string, KeyQueue>();
  private readonly rotation: Record<AgentKind, Set<string>> = { mda: new Set(), mta: new Set() };
  private readonly running: Record<AgentKind, number> = { mda: 0, mta: 0 };
  private total = 0;

  /** Nodes sharing the per-key limits (a cluster: scheduler/lease-watch.ts); each gets floor(limit / share), at least 1. */
  private share = 1;

  constructor(private readonly limits: ScheduleLimits) {}

  setShare(nodes: number): void {
    this.share = Math.max(1, Math.floor(nodes));
  }

  private perKey(kind: AgentKind): number {
    return Math.max(1, Math.floor(this.limits.maxTasksPerKey[kind] / this.share));
  }

  /** Tasks running now, of one kind or all. */
  tasks(kind?: AgentKind): number {
    return kind === undefined ? this.total : this.running[kind];
  }

  add(kind: AgentKind, key: string, msgid: string, evpid: string): void {
    const id = qid(kind, key);
    let q = this.queues.get(id);
    if (q === undefined) {
      q = { kind, key, running: 0, groups: new Map() };
      this.queues.set(id, q);
    }
    const g = q.groups.get(msgid);
    if (g === undefined) q.groups.set(msgid, [evpid]);
    else {
      const grown = groupAdd(g, evpid);
      if (grown !== g) q.groups.set(msgid, grown);
    }
    if (q.running < this.perKey(kind)) this.rotation[kind].add(id);
  }

  delete(kind: AgentKind, key: string, msgid: string, evpid: string): void {
    const id = qid(kind, key);
    const q = this.queues.get(id);
    const g = q?.groups.get(msgid);
    if (q === undefined || g === undefined) return;
    groupDelete(g, evpid);
    if (groupSize(g) === 0) q.groups.delete(msgid);
    this.tidy(id, q);
  }

  /** Hand out batches while the limits allow; kinds in `paused` get none. */
  take(paused: ReadonlySet<AgentKind>): Batch[] {
    const out: Batch[] = [];
    const L = this.limits;
    for (let progress = true; progress && this.total < L.maxTasks; ) {
      progress = false;
      for (const kind of AGENT_KINDS) {
        if (this.total >= L.maxTasks) break;
        if (paused.has(kind) || this.running[kind] >= L.maxTasksPerKind[kind]) continue;
        const id = first(this.rotation[kind]);
        if (id === undefined) continue;
        const q = this.queues.get(id) as KeyQueue;
        this.rotation[kind].delete(id);
        if (q.running >= this.perKey(kind)) continue; // the share shrank since it joined the rotation
        const entry = first(q.groups.entries());
        if (entry === undefined) continue;
        const [msgid, group] = entry;
        let evpids: string[];
        if (Array.isArray(group)) {
          evpids = group.splice(0, L.maxRcptPerTask[kind]);
        } else {
          evpids = [];
          for (const e of group) {
            if (evpids.length >= L.maxRcptPerTask[kind]) break;
            evpids.push(e);
          }
          for (const e of evpids) group.delete(e);
        }
        if (groupSize(group) === 0) q.groups.delete(msgid);
        q.running++;
        this.running[kind]++;
        this.total++;
        this.tidy(id, q);
        out.push({ kind, key: q.key, msgid, evpids });
        progress = true;
      }
    }
    return out;
  }

  /** A task handed out by take() ended. */
  release(kind: AgentKind, key: string): void {
    const id = qid(kind, key);
    const q = this.queues.get(id);
    if (q === undefined || q.running === 0) throw new Error(`release of ${id} with no task running`);
    q.running--;
    this.running[kind]--;
    this.total--;
    this.tidy(id, q);
  }

  /** Put a key in (the back of) its rotation or take it out, and forget empty idle keys. */
  private tidy(id: string, q: KeyQueue): void {
    const rot = this.rotation[q.kind];
    if (q.groups.size > 0 && q.running < this.perKey(q.kind)) rot.add(id);
    else rot.delete(id);
    if (q.groups.size === 0 && q.running === 0) this.queues.delete(id);
  }
}

function qid(kind: AgentKind, key: string): string {
  return `${kind}\u0000${key}`;
}

function first<T>(it: Iterable<T>): T | undefined {
  for (const v of it) return v;
  return undefined;
}
