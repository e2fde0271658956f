/*
 * control/server.ts — the control socket: where smtpctl talks to the
 * running daemon (protocol in protocol.ts, commands in handlers.ts).
 *
 * Access. A Unix socket, mode 0660: root and the daemon's group (the
 * daemon's own gid, or ControlServerOptions.gid) may connect; others get
 * EACCES from connect(). The socket is bound inside a fresh 0700 folder
 * next to its final path, given its mode there, and renamed into place, so
 * nobody can connect while it still has the process umask's mode (a
 * connection made then would outlive a later chmod).
 *
 * An existing socket at the path is removed when nothing answers on it (a
 * daemon that crashed); a live one is an error, and so is a file that is
 * not a socket. close() removes the socket only if it is still ours.
 *
 * Robustness. Each connection reads lines of at most MAX_REQUEST_BYTES;
 * every request is checked before anything runs; a handler that throws
 * gives an error reply. Nothing a client sends can throw out of here: the
 * worst a client can do is be disconnected. Limits: 32 connections, 8
 * requests in progress per connection, 60 s idle per connection without a
 * request in progress (monitor keeps its connection busy).
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { hasBinder, listenOn } from '../privsep/listen.js';
import { bindControlSocket } from './bind.js';
import { CommandError, handlerFor, queueSummary, type HandlerContext, type Streamer } from './handlers.js';
import { LineDecoder, MAX_REQUEST_BYTES, encodeLine, isStream, parseRequest, type Args, type CommandName, type Reply, type Request } from './protocol.js';
import { DigestMaker, RateMeter, type Digest } from './stats-view.js';
import type { ControlTarget } from './target.js';

export type { ControlTarget } from './target.js';

export interface ControlServerOptions {
  /** Group allowed on the socket (chown'd when running as root); default: the daemon's. */
  readonly gid?: number;
  readonly maxConnections?: number;
  readonly maxInFlight?: number;
  /** Close a connection with nothing in progress after this long (default 60 s). */
  readonly idleMs?: number;
  /** Between two monitor digests (default 1 s). */
  readonly monitorIntervalMs?: number;
  readonly now?: () => number;
}

/** Longest socket path most systems take (sun_path is 104 bytes on the BSDs, 108 on Linux). */
const MAX_SOCKET_PATH = 103;

export class ControlServer {
  private server: Server | undefined;
  private readonly conns = new Set<Connection>();
  private readonly rate = new RateMeter(60_000);
  private readonly digests = new DigestMaker();
  private lastDigest: { at: number; d: Digest } | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private inode: number | undefined;
  private readonly now: () => number;

  constructor(
    readonly path: string,
    private readonly target: ControlTarget,
    private readonly opts: ControlServerOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  async listen(): Promise<void> {
    if (this.server) throw new Error('control socket: listen() twice');
    if (Buffer.byteLength(this.path) > MAX_SOCKET_PATH) throw new Error(`control socket path too long (more than ${MAX_SOCKET_PATH} bytes): ${this.path}`);
    let server = createServer({ allowHalfOpen: false }, (sock) => this.accept(sock));
    server.maxConnections = (this.opts.maxConnections ?? 32) + 1; // +1: the one we refuse politely
    if (hasBinder()) {
      // The SMTP side of a root-started smtpd: the privileged parent binds it (control/bind.ts there).
      try {
        server = await listenOn(server, { kind: 'unix', path: this.path });
      } catch (e) {
        throw new Error(`control socket ${this.path}: ${(e as Error).message}`);
      }
      this.inode = undefined; // the parent's to remove
    } else this.inode = await bindControlSocket(this.path, server, this.opts.gid);
    server.on('error', (e) => this.target.log.error(`control socket: ${e.message}`));
    this.server = server;
    this.sample();
    this.sampler = setInterval(() => this.sample(), 1000);
    this.sampler.unref();
  }

  /** Stop accepting, end every connection (streams included), remove the socket. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    if (this.sampler) clearInterval(this.sampler);
    for (const c of this.conns) c.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      if (this.inode !== undefined && lstatSync(this.path).ino === this.inode) unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }

  /** Connections open now (tests). */
  get connections(): number {
    return this.conns.size;
  }

  private accept(sock: Socket): void {
    if (this.conns.size >= (this.opts.maxConnections ?? 32)) {
      sock.on('error', () => undefined);
      sock.end(encodeLine({ id: null, ok: false, error: 'too many control connections' }));
      return;
    }
    const c = new Connection(sock, (after) => this.context(after), this.target, this.opts.maxInFlight ?? 8, this.opts.idleMs ?? 60_000, () => this.conns.delete(c));
    this.conns.add(c);
  }

  /** What a handler is given; `after` runs once its reply is out. */
  private context(after: (fn: () => void) => void): HandlerContext {
    return {
      target: this.target,
      now: this.now,
      messageRate: () => this.rate.rate(),
      digest: () => this.digest(),
      monitorIntervalMs: this.opts.monitorIntervalMs ?? 1000,
      after,
    };
  }

  /**
   * Run one command through the same handlers as the socket (the HTTP API's
   * way in): resolves with the handler's data — for a stream, each part goes
   * to `send` and the last one is returned — or rejects (CommandError: the
   * client's mistake, its message safe to show).
   */
  async execute(name: CommandName, args: Args, send?: (data: unknown) => Promise<void>, signal: AbortSignal = new AbortController().signal): Promise<unknown> {
    const afters: (() => void)[] = [];
    try {
      const result = await handlerFor(name)(this.context((fn) => afters.push(fn)), args);
      if (!isStream(name)) return result ?? null;
      return await (result as Streamer)(send ?? (() => Promise.resolve()), signal);
    } finally {
      for (const fn of afters) setImmediate(fn);
    }
  }

  /** Messages received per second over the last minute, and the monitor digest (the dashboard's figures). */
  live(): { readonly messageRate: number; readonly digest: Digest } {
    return { messageRate: this.rate.rate(), digest: this.digest() };
  }

  private sample(): void {
    const s = this.target.stats;
    this.rate.sample(this.now(), s.get('smtp.message') + s.get('smtp.message.local'));
  }

  /** The monitor digest, computed at most every 200 ms (half an interval) whatever the number of monitors. */
  private digest(): Digest {
    const now = this.now();
    const fresh = Math.min(200, (this.opts.monitorIntervalMs ?? 1000) / 2);
    if (this.lastDigest && now - this.lastDigest.at < fresh && now >= this.lastDigest.at) return this.lastDigest.d;
    const q = queueSummary(this.target);
    const d = this.digests.make(this.target.stats.snapshot(), this.target.sessions(), q.envelopes);
    this.lastDigest = { at: now, d };
    return d;
  }
}

/** One client: reads requests, runs them, writes replies in any order (ids tell them apart). */
class Connection {
  private readonly decoder = new LineDecoder(MAX_REQUEST_BYTES);
  private readonly abort = new AbortController();
  private inFlight = 0;
  private closed = false;
  private idle: NodeJS.Timeout | undefined;

  constructor(
    private readonly sock: Socket,
    private readonly ctx: (after: (fn: () => void) => void) => HandlerContext,
    private readonly target: ControlTarget,
    private readonly maxInFlight: number,
    private readonly idleMs: number,
    private readonly gone: () => void,
  ) {
    sock.on('data', (d: Buffer) => this.data(d));
    sock.on('error', () => undefined);
    sock.on('close', () => this.destroy());
    this.arm();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.idle) clearTimeout(this.idle);
    this.abort.abort();
    this.sock.destroy();
    this.gone();
  }

  private arm(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    if (this.inFlight === 0 && !this.closed) {
      this.idle = setTimeout(() => this.destroy(), this.idleMs);
      this.idle.unref();
    }
  }

  private data(chunk: Buffer): void {
    for (const ev of this.decoder.push(chunk)) {
      if (this.closed) return;
      if ('tooLong' in ev) {
        this.target.log.trace('control', 'request line too long');
        void this.write({ id: null, ok: false, error: `malformed request: line longer than ${MAX_REQUEST_BYTES} bytes` });
        continue;
      }
      const p = parseRequest(ev.line);
      if (!p.ok) {
        this.target.log.trace('control', `refused request: ${p.error}`);
        void this.write({ id: p.id, ok: false, error: p.error });
        continue;
      }
      if (this.inFlight >= this.maxInFlight) {
        void this.write({ id: p.request.id, ok: false, error: 'too many requests in progress on this connection' });
        continue;
      }
      this.inFlight++;
      this.arm();
      void this.run(p.request).finally(() => {
        this.inFlight--;
        this.arm();
      });
    }
  }

  private async run(req: Request): Promise<void> {
    const afters: (() => void)[] = [];
    const id = req.id;
    try {
      const result = await handlerFor(req.name)(this.ctx((fn) => afters.push(fn)), req.args);
      if (isStream(req.name)) {
        const final = await (result as Streamer)((data) => this.write({ id, ok: true, more: true, data }), this.abort.signal);
        if (!this.closed && final !== undefined) await this.write({ id, ok: true, data: final });
      } else {
        await this.write({ id, ok: true, data: result ?? null });
      }
    } catch (e) {
      if (!(e instanceof CommandError)) this.target.log.error(`control: ${req.name}: ${(e as Error).message}`);
      await this.write({ id, ok: false, error: (e as Error).message });
    }
    for (const fn of afters) setImmediate(fn);
  }

  /** Write one reply; resolves when it reached the kernel (or the client left). */
  private write(r: Reply): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.sock.write(encodeLine(r), () => resolve());
    });
  }
}
