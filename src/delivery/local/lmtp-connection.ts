/*
 * delivery/local/lmtp-connection.ts — one LMTP connection (write
 * commands, await replies, respect the socket's buffer), opening one up to
 * its LHLO, and the cache of idle sessions that lets one connection carry
 * message after message.
 *
 * A session left after a complete transaction (every reply read) is kept
 * for IDLE_MS per destination and LHLO name, at most MAX_IDLE of them, as
 * Postfix's lmtp(8) keeps its connections (lmtp_connection_cache_*): the
 * next message starts with MAIL FROM, without a connect, greeting and LHLO.
 * An idle socket does not keep the process alive (unref), and a session
 * that said anything while idle (a 421 before the server hangs up) or was
 * closed is never handed out again. lmtp.ts decides what may be reused.
 */
import { connect, type Socket } from 'node:net';
import { LmtpProtocolError, parseDestination, ReplyParser, type LmtpReply } from './lmtp-wire.js';
import { describe } from './outcome.js';

/** The connection failed or was closed: what was not answered is unknown (4.4.2). */
export class Lost extends Error {}

/** One connection: write commands, await replies. */
export class LmtpConnection {
  private readonly parser = new ReplyParser();
  private waiter: { resolve: (r: LmtpReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private failure: Error | undefined;

  constructor(
    readonly socket: Socket,
    private readonly replyTimeoutMs: number,
  ) {
    socket.on('data', (d: Buffer) => {
      try {
        this.parser.push(d);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      this.deliver();
    });
    socket.on('error', (e) => this.fail(new Lost(describe(e))));
    socket.on('close', () => this.fail(new Lost('connection closed by the server')));
  }

  /** Open, with nothing unread: fit for another transaction. */
  get quiet(): boolean {
    return this.failure === undefined && !this.socket.destroyed && !this.parser.pending();
  }

  private deliver(): void {
    if (!this.waiter) return;
    const r = this.parser.take();
    if (!r) return;
    const w = this.waiter;
    this.waiter = undefined;
    clearTimeout(w.timer);
    w.resolve(r);
  }

  fail(e: Error): void {
    this.failure ??= e;
    const w = this.waiter;
    this.waiter = undefined;
    if (w) {
      clearTimeout(w.timer);
      w.reject(this.failure);
    }
    this.socket.destroy();
  }

  reply(): Promise<LmtpReply> {
    const ready = this.parser.take();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Lost(`no reply within ${Math.round(this.replyTimeoutMs / 1000)} s`)), this.replyTimeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  async command(line: string): Promise<LmtpReply> {
    await this.write(Buffer.from(`${line}\r\n`, 'utf8'));
    return this.reply();
  }

  write(b: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.socket.write(b, (e) => (e ? reject(this.failure ?? new Lost(describe(e))) : resolve()));
    });
  }

  /** Respect the socket's buffer: wait when it is full. */
  async writeData(b: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.socket.write(b)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          this.socket.off('close', onClose);
          resolve();
        };
        const onClose = (): void => {
          this.socket.off('drain', onDrain);
          reject(this.failure ?? new Lost('connection closed by the server'));
        };
        this.socket.once('drain', onDrain);
        this.socket.once('close', onClose);
      });
    }
  }

  /** Say goodbye, briefly, and close; the results are already known. */
  async quit(): Promise<void> {
    try {
      await Promise.race([this.command('QUIT'), new Promise((r) => setTimeout(r, 1000).unref())]);
    } catch {
      /* the server may already be gone */
    }
    this.socket.destroy();
  }
}

export function connectTo(destination: string, timeoutMs: number, signal?: AbortSignal): Promise<Socket> {
  const d = parseDestination(destination);
  if ('error' in d) return Promise.reject(new Error(d.error));
  return new Promise((resolve, reject) => {
    const s = d.kind === 'unix' ? connect({ path: d.path }) : connect({ host: d.host, port: d.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connection timed out after ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    const onAbort = (): void => {
      s.destroy();
      reject(new Error('delivery interrupted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    s.once('connect', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
  });
}

/** A connection past its LHLO, and the extensions the server named there. */
export interface LmtpSession {
  readonly key: string;
  readonly conn: LmtpConnection;
  readonly ext: ReadonlySet<string>;
}

/** Connect, read the greeting, say LHLO: a session, or the reply that refused it (the connection then closed). */
export async function openSession(key: string, destination: string, lhlo: string, o: { connectTimeoutMs: number; replyTimeoutMs: number; signal?: AbortSignal }): Promise<LmtpSession | { readonly refused: LmtpReply; readonly at: 'greeting' | 'LHLO' }> {
  const conn = new LmtpConnection(await connectTo(destination, o.connectTimeoutMs, o.signal), o.replyTimeoutMs);
  const onAbort = (): void => conn.fail(new Lost('delivery interrupted'));
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const greeting = await conn.reply();
    if (greeting.code !== 220) {
      conn.socket.destroy();
      return { refused: greeting, at: 'greeting' };
    }
    const r = await conn.command(`LHLO ${lhlo}`);
    if (r.code !== 250) {
      conn.socket.destroy();
      return { refused: r, at: 'LHLO' };
    }
    return { key, conn, ext: new Set(r.lines.slice(1).map((l) => (l.split(' ')[0] ?? '').toUpperCase())) };
  } catch (e) {
    conn.socket.destroy();
    throw e instanceof Lost || e instanceof LmtpProtocolError ? e : new Lost(describe(e));
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}

/** How long an idle session is kept, and how many per destination (Postfix keeps its cached connections 2 s). */
export const IDLE_MS = 5000;
export const MAX_IDLE = 16;

/** Idle sessions by destination and LHLO name. */
export class LmtpSessions {
  private readonly idle = new Map<string, { session: LmtpSession; timer: NodeJS.Timeout }[]>();

  constructor(
    private readonly idleMs = IDLE_MS,
    private readonly maxIdle = MAX_IDLE,
  ) {}

  /** An idle session for this key that is still fit, or undefined. */
  take(key: string): LmtpSession | undefined {
    const list = this.idle.get(key);
    for (let e = list?.pop(); e !== undefined; e = list?.pop()) {
      clearTimeout(e.timer);
      if (list?.length === 0) this.idle.delete(key);
      if (e.session.conn.quiet) {
        e.session.conn.socket.ref();
        return e.session;
      }
      e.session.conn.socket.destroy();
    }
    return undefined;
  }

  /** Keep a session whose last transaction ended cleanly; one too many, or closed, is let go. */
  put(s: LmtpSession): void {
    let list = this.idle.get(s.key);
    if (!s.conn.quiet || (list?.length ?? 0) >= this.maxIdle) {
      void s.conn.quit();
      return;
    }
    if (!list) this.idle.set(s.key, (list = []));
    const entry = { session: s, timer: setTimeout(() => this.drop(entry), this.idleMs) };
    entry.timer.unref();
    s.conn.socket.unref();
    list.push(entry);
  }

  private drop(entry: { session: LmtpSession; timer: NodeJS.Timeout }): void {
    const list = this.idle.get(entry.session.key);
    const i = list?.indexOf(entry) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
    if (list?.length === 0) this.idle.delete(entry.session.key);
    void entry.session.conn.quit();
  }

  /** The daemon stops: every idle session says QUIT. */
  close(): void {
    for (const list of [...this.idle.values()]) for (const e of [...list]) {
      clearTimeout(e.timer);
      this.drop(e);
    }
  }

  /** Idle sessions kept (tests). */
  get size(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }
}
