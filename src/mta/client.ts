/*
 * mta/client.ts — one outbound SMTP connection: a socket, the reply parser,
 * timed reads and writes, and the STARTTLS upgrade. It knows nothing of
 * commands or messages (session.ts, transaction.ts); it is the small
 * adapter that binds the pure reply parser to a stream.
 *
 *  - setNoDelay(true) on every socket: with Nagle on, a small write that
 *    follows an unacknowledged one waits for the peer's delayed ACK (~40 ms
 *    per message on Linux).
 *  - write() takes several buffers and writes them as one: a pipelined
 *    group of commands, or the last data and the final dot, leave in one
 *    system call (one TCP segment when they fit).
 *  - every read has a deadline; when it passes the socket is destroyed and
 *    the connection is dead (a late reply could not be matched any more).
 *  - startTls(): nothing may be buffered after the server's 220 reply to
 *    STARTTLS — bytes that arrived in clear text and would be read as if
 *    they came through TLS are a protocol error (the client side of
 *    CVE-2011-0411's command injection).
 */
import net from 'node:net';
import tls from 'node:tls';
import { ReplyParser, type ServerReply } from './reply-parser.js';

export type ClientErrorKind = 'connect' | 'timeout' | 'lost' | 'protocol' | 'tls' | 'aborted';

export class ClientError extends Error {
  constructor(
    readonly kind: ClientErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

export interface TlsInfo {
  readonly version: string;
  readonly cipher: string;
  /** The certificate chain was verified (and matched the name) — required mode always is. */
  readonly verified: boolean;
  /** Why it was not verified, in opportunistic mode. */
  readonly verifyError?: string;
  /** The server's certificate chain (DER, its own first), for TLS policies (transport-security/check.ts). */
  readonly peer?: { readonly chain: readonly Buffer[]; readonly cert?: tls.PeerCertificate; readonly chainVerified: boolean; readonly chainError?: string };
}

export interface ConnectOptions {
  readonly address: string;
  readonly port: number;
  readonly localAddress?: string;
  readonly timeoutMs: number;
  /** Connect with TLS from the start (smtps). */
  readonly tls?: tls.ConnectionOptions;
  readonly signal?: AbortSignal;
}

interface Waiter {
  resolve(r: ServerReply): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class ClientConnection {
  private socket: net.Socket;
  private readonly parser = new ReplyParser();
  private readonly replies: ServerReply[] = [];
  private waiter: Waiter | null = null;
  private failure: ClientError | null = null;
  private tlsInfo_: TlsInfo | undefined;
  private readonly onData = (chunk: Buffer): void => this.received(chunk);
  private readonly onAbort = (): void => this.destroy(new ClientError('aborted', 'delivery interrupted'));
  private signal: AbortSignal | undefined;

  private constructor(socket: net.Socket, info: TlsInfo | undefined) {
    this.socket = socket;
    this.tlsInfo_ = info;
    this.attach(socket);
  }

  /** Open a TCP (or TLS, for smtps) connection; rejects with a ClientError. */
  static connect(o: ConnectOptions): Promise<ClientConnection> {
    return new Promise((resolve, reject) => {
      if (o.signal?.aborted) return reject(new ClientError('aborted', 'delivery interrupted'));
      const raw = net.connect({ host: o.address, port: o.port, localAddress: o.localAddress, noDelay: true });
      raw.setNoDelay(true);
      let sock: net.Socket = raw;
      let settled = false;
      const done = (e: ClientError | null, c?: ClientConnection): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', abort);
        sock.removeListener('error', onError);
        if (e !== null) {
          // Late errors of a socket given up on must not go unhandled.
          sock.on('error', () => undefined);
          raw.on('error', () => undefined);
          sock.destroy();
          raw.destroy();
          reject(e);
        } else resolve(c as ClientConnection);
      };
      const onError = (err: Error): void => {
        const code = (err as NodeJS.ErrnoException).code;
        const kind = o.tls !== undefined && raw.readyState === 'open' ? 'tls' : 'connect';
        done(new ClientError(kind, kind === 'tls' ? `TLS handshake failed: ${err.message}` : `connect failed: ${code ?? err.message}`));
      };
      const abort = (): void => done(new ClientError('aborted', 'delivery interrupted'));
      const timer = setTimeout(() => done(new ClientError('timeout', `no connection within ${seconds(o.timeoutMs)}`)), o.timeoutMs);
      o.signal?.addEventListener('abort', abort, { once: true });
      raw.once('error', onError);
      if (o.tls === undefined) {
        raw.once('connect', () => {
          const c = new ClientConnection(raw, undefined);
          c.watch(o.signal);
          done(null, c);
        });
        return;
      }
      const t = tls.connect({ ...o.tls, socket: raw });
      sock = t;
      t.once('error', onError);
      t.once('secureConnect', () => {
        t.removeListener('error', onError);
        const c = new ClientConnection(t, tlsInfoOf(t));
        c.watch(o.signal);
        done(null, c);
      });
    });
  }

  get tls(): TlsInfo | undefined {
    return this.tlsInfo_;
  }

  /** Still usable: no error, socket open. */
  get alive(): boolean {
    return this.failure === null && !this.socket.destroyed;
  }

  get remoteAddress(): string {
    return this.socket.remoteAddress ?? '';
  }

  /** Follow another task's abort signal (a cached connection changes owner). */
  watch(signal: AbortSignal | undefined): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.signal = signal;
    if (signal?.aborted) this.onAbort();
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** The next reply; rejects with a ClientError on timeout, loss of the connection or a malformed reply. */
  read(timeoutMs: number, after: string): Promise<ServerReply> {
    const r = this.replies.shift();
    if (r !== undefined) return Promise.resolve(r);
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.waiter !== null) return Promise.reject(new ClientError('protocol', 'internal: two reads at once'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.destroy(new ClientError('timeout', `no reply within ${seconds(timeoutMs)} (${after})`));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** Write buffers in one system call; waits (at most timeoutMs) while the socket's buffer is full. */
  async write(parts: string | Buffer | readonly (string | Buffer)[], timeoutMs: number, during: string): Promise<void> {
    if (this.failure !== null) throw this.failure;
    const list = typeof parts === 'string' || Buffer.isBuffer(parts) ? [parts] : parts;
    const buf = list.length === 1 && Buffer.isBuffer(list[0]) ? list[0] : Buffer.concat(list.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
    const flushed = this.socket.write(buf);
    if (!flushed) await this.drain(timeoutMs, during);
    if (this.failure !== null) throw this.failure;
  }

  private drain(timeoutMs: number, during: string): Promise<void> {
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.socket.removeListener('drain', finish);
        this.socket.removeListener('close', finish);
        resolve();
      };
      const timer = setTimeout(() => {
        this.destroy(new ClientError('timeout', `could not send ${during} within ${seconds(timeoutMs)}`));
        finish();
      }, timeoutMs);
      this.socket.once('drain', finish);
      this.socket.once('close', finish);
    });
  }

  /** Upgrade after the server's 220 to STARTTLS. */
  async startTls(options: tls.ConnectionOptions, timeoutMs: number): Promise<TlsInfo> {
    if (this.replies.length > 0 || this.parser.buffered > 0) {
      const e = new ClientError('protocol', 'server sent data after its STARTTLS reply (possible command injection)');
      this.destroy(e);
      throw e;
    }
    const raw = this.socket;
    raw.removeListener('data', this.onData);
    const t = tls.connect({ ...options, socket: raw });
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`no handshake within ${seconds(timeoutMs)}`)), timeoutMs);
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const e = new ClientError('tls', `TLS handshake failed: ${err.message}`);
        this.failure ??= e;
        t.on('error', () => undefined);
        t.destroy();
        raw.destroy();
        reject(e);
      };
      t.once('error', fail);
      t.once('secureConnect', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        t.removeListener('error', fail);
        this.socket = t;
        this.attach(t);
        this.tlsInfo_ = tlsInfoOf(t);
        resolve(this.tlsInfo_);
      });
    });
  }

  /** Close politely (the caller sent QUIT, or will not). */
  end(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.failure ??= new ClientError('lost', 'connection closed by us');
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  destroy(e: ClientError = new ClientError('lost', 'connection closed by us')): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.fail(e);
    this.socket.destroy();
  }

  private attach(s: net.Socket): void {
    s.on('data', this.onData);
    s.on('error', (err: NodeJS.ErrnoException) => this.fail(new ClientError('lost', `connection error: ${err.code ?? err.message}`)));
    s.on('close', () => this.fail(new ClientError('lost', 'connection closed by the server')));
  }

  private received(chunk: Buffer): void {
    this.parser.push(chunk);
    for (let ev = this.parser.next(); ev !== null; ev = this.parser.next()) {
      if (ev.kind === 'error') {
        this.destroy(new ClientError('protocol', ev.message));
        return;
      }
      const w = this.waiter;
      if (w !== null) {
        this.waiter = null;
        clearTimeout(w.timer);
        w.resolve(ev.reply);
      } else {
        this.replies.push(ev.reply);
        if (this.replies.length > 1000) {
          this.destroy(new ClientError('protocol', 'server sent too many unsolicited replies'));
          return;
        }
      }
    }
  }

  private fail(e: ClientError): void {
    if (this.failure === null) this.failure = e;
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.reject(this.failure);
    }
  }
}

/** "300 s", "0.5 s". */
export function seconds(ms: number): string {
  return ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 100) / 10} s`;
}

function tlsInfoOf(t: tls.TLSSocket): TlsInfo {
  const cipher = t.getCipher();
  const err = t.authorizationError;
  return {
    version: t.getProtocol() ?? 'unknown',
    cipher: cipher?.name ?? 'unknown',
    verified: t.authorized,
    ...(err ? { verifyError: String(err) } : {}),
    peer: peerOf(t),
  };
}

/** The chain the server presented (leaf first; Node links each certificate to its issuer, the last to itself). */
function peerOf(t: tls.TLSSocket): NonNullable<TlsInfo['peer']> {
  const leaf = t.getPeerCertificate(true);
  const chain: Buffer[] = [];
  let c: tls.DetailedPeerCertificate | undefined = leaf && leaf.raw !== undefined ? leaf : undefined;
  while (c !== undefined && chain.length < 10) {
    chain.push(c.raw);
    const next: tls.DetailedPeerCertificate | undefined = c.issuerCertificate;
    if (next === undefined || next === c || next.raw === undefined || next.raw.equals(c.raw)) break;
    c = next;
  }
  const err = t.authorizationError;
  return { chain, ...(chain.length > 0 ? { cert: leaf } : {}), chainVerified: t.authorized, ...(err ? { chainError: String(err) } : {}) };
}
