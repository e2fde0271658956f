/*
 * mta/pool.ts — idle outbound sessions kept for reuse.
 *
 * One connection carries several messages to the same destination: when
 * a task ends with its session healthy, the session rests here under its
 * destination key (the route and every option that shapes a session:
 * TLS policy, credentials, HELO name, source address), and the next task
 * for that destination takes it instead of connecting again (after an
 * RSET that proves the server is still there). An idle session is closed
 * with QUIT after `idleMs`, or at once when the pool is full or closed.
 * Limits on concurrent connections per destination are the scheduler's
 * (DeliveryAgent.key()); the pool only keeps the idle ones.
 */
import type { ClientSession } from './session.js';

interface Idle {
  readonly session: ClientSession;
  readonly timer: NodeJS.Timeout;
}

export class SessionPool {
  private readonly idle = new Map<string, Idle[]>();
  private closed = false;

  constructor(
    private readonly idleMs: number,
    private readonly maxPerKey: number,
    private readonly onClose: (s: ClientSession, reason: string) => void = () => undefined,
  ) {}

  /** How many idle sessions each key has. */
  idleCounts(): [key: string, idle: number][] {
    return [...this.idle].map(([key, list]) => [key, list.length]);
  }

  /** An idle session for this key, if one is still connected. */
  take(key: string): ClientSession | undefined {
    const list = this.idle.get(key);
    while (list !== undefined && list.length > 0) {
      const it = list.pop() as Idle;
      clearTimeout(it.timer);
      if (list.length === 0) this.idle.delete(key);
      if (it.session.alive) return it.session;
      this.onClose(it.session, 'closed by the server while idle');
    }
    return undefined;
  }

  /** Keep a healthy session for later; closes it when the pool cannot. */
  put(key: string, session: ClientSession): void {
    if (this.closed || !session.alive) {
      void this.retire(session, this.closed ? 'shutdown' : 'connection lost');
      return;
    }
    const list = this.idle.get(key) ?? [];
    if (list.length >= this.maxPerKey) {
      void this.retire(session, 'too many idle connections');
      return;
    }
    const timer = setTimeout(() => {
      const l = this.idle.get(key);
      const i = l?.findIndex((x) => x.session === session) ?? -1;
      if (l !== undefined && i >= 0) {
        l.splice(i, 1);
        if (l.length === 0) this.idle.delete(key);
      }
      void this.retire(session, 'idle');
    }, this.idleMs);
    timer.unref();
    list.push({ session, timer });
    this.idle.set(key, list);
  }

  get size(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  /** QUIT every idle session; later put() calls close at once. */
  async close(): Promise<void> {
    this.closed = true;
    await this.drop('shutdown');
  }

  /** QUIT every idle session now (sessions in use come back later as usual): e.g. opened under a TLS policy a reload replaced. */
  async drop(reason: string): Promise<void> {
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    await Promise.all(
      all.map((it) => {
        clearTimeout(it.timer);
        return this.retire(it.session, reason);
      }),
    );
  }

  async retire(session: ClientSession, reason: string): Promise<void> {
    await session.quit();
    this.onClose(session, reason);
  }
}
