/*
 * control/client.ts — smtpctl's side of the control socket (protocol.ts).
 *
 * connect() tells apart the failures an administrator must read differently:
 *   not-running  no socket at the path, or nobody answers on it
 *   denied       the socket's mode refuses us (root and the daemon's group only)
 *   failed       anything else
 * Requests may overlap; replies are matched by id.
 */
import { createConnection, type Socket } from 'node:net';
import { LineDecoder, encodeRequest, parseReply, type Args, type CommandName } from './protocol.js';

export type ConnectFailure = 'not-running' | 'denied' | 'failed';

export class ConnectError extends Error {
  constructor(
    readonly kind: ConnectFailure,
    message: string,
  ) {
    super(message);
  }
}

/** The daemon answered with an error. */
export class RemoteError extends Error {}

/** Replies are not bounded like requests; a line this long means something is wrong. */
const MAX_REPLY_BYTES = 64 * 1024 * 1024;

interface Waiter {
  onData(data: unknown, more: boolean): void;
  onError(e: Error): void;
}

export class ControlClient {
  private nextId = 1;
  private readonly waiters = new Map<number, Waiter>();
  private readonly decoder = new LineDecoder(MAX_REPLY_BYTES);
  private closed = false;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => this.data(d));
    sock.on('error', (e) => this.fail(new Error(`control socket: ${e.message}`)));
    sock.on('close', () => this.fail(new Error('smtpd closed the control connection')));
  }

  static connect(path: string, timeoutMs = 5000): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new ConnectError('failed', `smtpd does not answer on ${path}`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new ControlClient(sock));
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(connectError(path, e));
      });
    });
  }

  /** One request, one reply: its data, or RemoteError. */
  request(name: CommandName, args: Args = {}): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.send(name, args, {
        onData: (data, more) => {
          if (!more) resolve(data);
        },
        onError: reject,
      });
    });
  }

  /** A streaming request: onPart() for each part; resolves with the final data (never, for monitor). */
  stream(name: CommandName, args: Args, onPart: (data: unknown) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.send(name, args, {
        onData: (data, more) => {
          if (more) onPart(data);
          else resolve(data);
        },
        onError: reject,
      });
    });
  }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }

  private send(name: CommandName, args: Args, w: Waiter): void {
    if (this.closed) return w.onError(new Error('control connection closed'));
    const id = this.nextId++;
    this.waiters.set(id, w);
    this.sock.write(encodeRequest(id, name, args));
  }

  private data(d: Buffer): void {
    for (const ev of this.decoder.push(d)) {
      if ('tooLong' in ev) return this.fail(new Error('reply from smtpd too long'));
      const r = parseReply(ev.line);
      if (r === undefined) return this.fail(new Error('unreadable reply from smtpd'));
      const w = r.id === null ? undefined : this.waiters.get(r.id);
      if (w === undefined) {
        // A reply to no request of ours (id null: the daemon refused a line): fail everything.
        if (!r.ok) this.fail(new RemoteError(r.error));
        continue;
      }
      if (!r.ok) {
        this.waiters.delete(r.id as number);
        w.onError(new RemoteError(r.error));
      } else {
        if (r.more !== true) this.waiters.delete(r.id as number);
        w.onData(r.data, r.more === true);
      }
    }
  }

  private fail(e: Error): void {
    const ws = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of ws) w.onError(e);
  }
}

function connectError(path: string, e: NodeJS.ErrnoException): ConnectError {
  switch (e.code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new ConnectError('not-running', `smtpd is not running (no control socket at ${path})`);
    case 'ECONNREFUSED':
      return new ConnectError('not-running', `smtpd is not running (nothing answers on the control socket ${path})`);
    case 'EACCES':
    case 'EPERM':
      return new ConnectError('denied', `permission denied on ${path} (the control socket is for root and the smtpd group)`);
    default:
      return new ConnectError('failed', `cannot connect to ${path}: ${e.message}`);
  }
}

/**
 * Ask a running daemon to re-read table `name` (for newaliases/makemap).
 * 'not-running' when there is no daemon to tell; else the daemon's answer.
 */
export async function updateTableOnDaemon(socketPath: string, name: string): Promise<{ ok: true } | { ok: false; error: string } | 'not-running'> {
  let c: ControlClient;
  try {
    c = await ControlClient.connect(socketPath);
  } catch (e) {
    if (e instanceof ConnectError && e.kind === 'not-running') return 'not-running';
    return { ok: false, error: (e as Error).message };
  }
  try {
    await c.request('update table', { name });
    return { ok: true };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  } finally {
    c.close();
  }
}
