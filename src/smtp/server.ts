/*
 * smtp/server.ts — the listening side: one net.Server per bound address,
 * a Session and a Connection per client.
 *
 * Connection limits are checked here, when a client connects and before
 * anything is written (policy/limits/connections.ts): per client address
 * and in total; beyond them the client gets 421 (450 with a ZMailer file)
 * or, far beyond, is closed without a word.
 */
import { hasBinder, listenOn } from '../privsep/listen.js';
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Config, Listener } from '../config/model.js';
import { checkHostname } from '../config/values.js';
import type { MailLog } from '../log/maillog.js';
import type { Stats } from '../stats.js';
import type { TableRegistry } from '../table/table.js';
import type { Resolver } from '../dns/resolver.js';
import { Connection } from './connection.js';
import { Session, type SessionEnv } from './session.js';
import { listenAddresses } from './listen-addresses.js';
import { readProxyHeader } from './proxy-header.js';
import type { TlsContexts } from '../tls/contexts.js';
import { ConnectionLimiter } from './limits/connections.js';
import { type ErrorLimits, type TarpitSettings, DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '../config/limits.js';
import { formatReply } from '../mail/reply.js';
import { startPeerLookups, type PeerLookupOptions } from './peer-lookups.js';
import { serverFd, setSocketBuffers, type SocketBuffers } from '../net/socket-buffers.js';

/** Limits and pacing for every connection (policy/build.ts's ConnectionPolicy). */
export interface ServerOptions {
  readonly limits?: ConnectionLimits;
  readonly tarpit?: TarpitSettings;
  readonly errors?: ErrorLimits;
  readonly minDataRate?: number;
  /** listen(2) backlog; default 1024. */
  readonly backlog?: number;
  /** A socket already bound and listening (Obtuse smtpd's receiver: bound as root by its launcher), used for the first listener. */
  readonly fd?: number;
  /** Ask each client's identd (RFC 1413, smtpserver -a) and the whoson server (-w) at accept, for the log, Received: and policy. */
  readonly ident?: PeerLookupOptions['ident'];
  readonly whoson?: PeerLookupOptions['whoson'];
  /** smtpserver -g (gullible): the client's name is its reverse DNS, not checked forward. */
  readonly gullible?: boolean;
  /** SO_RCVBUF / SO_SNDBUF for every listening socket, so for every connection (ZMailer's TcpRcvBufferSize / TcpXmitBufferSize). */
  readonly socketBuffers?: SocketBuffers;
}

export interface BoundListener {
  readonly listener: Listener;
  readonly address: string;
  readonly port: number;
  readonly server: Server;
}

export class SmtpServer {
  private readonly bound: BoundListener[] = [];
  /** `smtpctl pause smtp` / `smtpd -P smtp`: new clients get 421 and are closed. */
  paused = false;
  private readonly connections = new Set<Connection>();
  private readonly limiter: ConnectionLimiter;
  /** Connections on `proxy-v2` listeners still waiting for their header (not yet known to the limiter). */
  private proxyWaiting = 0;

  constructor(
    private readonly env: SessionEnv & { readonly log: MailLog; readonly stats: Stats; readonly tables: TableRegistry },
    private readonly resolver: Resolver,
    private readonly tls?: TlsContexts,
    private readonly opts: ServerOptions = {},
  ) {
    this.limiter = new ConnectionLimiter(opts.limits ?? DEFAULT_CONNECTION_LIMITS);
  }

  /** Connections counted by the limiter per client address. */
  connectionsByClient(): ReadonlyMap<string, number> {
    return this.limiter.clients();
  }

  /** Connections counted by the limiter, from one address or in total. */
  connectionCount(ip?: string): number {
    return this.limiter.count(ip);
  }

  private get log(): MailLog {
    return this.env.log;
  }

  private get stats(): Stats {
    return this.env.stats;
  }

  /** Bind every listener of the configuration. Rejects with a clear message when one cannot be bound. */
  async listen(config: Config): Promise<void> {
    for (const l of config.listeners) {
      const addrs = listenAddresses(l.on, l.family);
      if (!Array.isArray(addrs)) throw new Error(`${l.pos.file}:${l.pos.line}: listen on ${l.on}: ${addrs.error}`);
      for (const address of addrs) {
        try {
          await this.bind(l, address);
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          // ::1 may be missing on hosts without IPv6: skip it when it came from a name, not an explicit address.
          if ((err.code === 'EADDRNOTAVAIL' || err.code === 'EAFNOSUPPORT') && address.includes(':') && l.on !== address) continue;
          throw new Error(`${l.pos.file}:${l.pos.line}: cannot listen on ${address} port ${l.port}: ${err.code ?? err.message}`);
        }
      }
    }
  }

  private bind(l: Listener, address: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(l, address, socket));
      server.once('error', reject);
      const fd = this.bound.length === 0 ? this.opts.fd : undefined;
      const where = fd !== undefined ? { fd, backlog: this.opts.backlog ?? 1024 } : { host: address, port: l.port, backlog: this.opts.backlog ?? 1024, ipv6Only: false };
      const bound = (): void => {
        server.off('error', reject);
        server.on('error', (e) => this.log.error(`listener ${address}:${l.port}: ${e.message}`));
        const a = server.address();
        const port = typeof a === 'object' && a ? a.port : l.port;
        this.bound.push({ listener: l, address, port, server });
        this.log.info(`listening on ${address} port ${port}${l.tag ? ` tag ${l.tag}` : ''}`);
        if (this.opts.socketBuffers) this.setBuffers(server, `${address} port ${port}`, this.opts.socketBuffers);
        resolve();
      };
      // The SMTP side of a root-started smtpd has the privileged parent bind for it (privsep/listen.ts).
      if (fd === undefined && hasBinder()) listenOn(server, { kind: 'tcp', host: address, port: l.port, backlog: this.opts.backlog ?? 1024 }).then(bound, reject);
      else server.listen(where, bound);
    });
  }

  /** TcpRcvBufferSize / TcpXmitBufferSize on a listener: said in the log, a failure a warning (the kernel's default stays). */
  private setBuffers(server: object, where: string, b: SocketBuffers): void {
    const fd = serverFd(server);
    const r = fd === undefined ? { error: 'Node.js shows no descriptor for it' } : setSocketBuffers(fd, b);
    if ('error' in r) this.log.warn(`listener ${where}: socket buffers not set (the kernel's defaults apply): ${r.error}`);
    else this.log.info(`listener ${where}: socket buffers receive ${r.receive} send ${r.send} bytes (the kernel doubles what is asked)`);
  }

  get listeners(): readonly BoundListener[] {
    return this.bound;
  }

  /**
   * The name this session goes by (greeting, HELO reply, Received:): with
   * `hostnames <T>`, the table's name for the local address the client
   * reached (OpenSMTPD's: `192.0.2.1 mail.example.org`), else the
   * listener's `hostname`, else the server's. A value that is not a host
   * name is ignored, with a log line.
   */
  private hostnameFor(l: Listener, localAddress: string | undefined): string {
    const fallback = l.hostname ?? this.env.config.hostname;
    if (l.hostnamesTable === undefined) return fallback;
    const local = (localAddress ?? '').replace(/^::ffff:/, '');
    const r = this.env.tables.lookup(l.hostnamesTable, local);
    if (r.kind !== 'found') {
      if (r.kind === 'error') this.log.error(`listen on ${l.on}: hostnames <${l.hostnamesTable}>: ${r.reason}`);
      return fallback;
    }
    const name = r.value.trim();
    if (checkHostname(name) !== undefined) {
      this.log.error(`listen on ${l.on}: hostnames <${l.hostnamesTable}>: ${JSON.stringify(name)} for ${local} is not a host name; using ${fallback}`);
      return fallback;
    }
    return name;
  }

  private accept(l: Listener, address: string, socket: Socket): void {
    if (this.paused) {
      socket.end('421 4.3.2 Service temporarily unavailable, try again later\r\n');
      socket.on('error', () => undefined);
      // Half-open sockets are allowed: one whose client never closes must not stay.
      setTimeout(() => socket.destroy(), 10_000).unref();
      return;
    }
    const ip = (socket.remoteAddress ?? '0.0.0.0').replace(/^::ffff:/, '');
    if (!l.proxyV2) return this.admit(l, address, socket, { address: ip, port: socket.remotePort ?? 0 }, socket.localAddress);
    // `proxy-v2`: the proxy's header comes first and says who the client is; nothing is said before it.
    // Until then the limiter cannot count the connection by its client: cap how many may wait, at the
    // server's own limit, so that connections which never send a header cannot pile up.
    const cap = (this.opts.limits ?? DEFAULT_CONNECTION_LIMITS).maxTotal;
    if (cap > 0 && this.proxyWaiting >= cap) {
      this.stats.inc('smtp.proxy.error');
      this.log.event('smtp', 'proxy-failed', { address: ip, listener: `${address}:${l.port}`, error: `${this.proxyWaiting} connections already wait for their PROXY header (limit ${cap})` });
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    this.proxyWaiting++;
    readProxyHeader(socket).then(
      (p) => {
        this.proxyWaiting--;
        if (socket.destroyed) return;
        this.admit(l, address, socket, p.source ?? { address: ip, port: socket.remotePort ?? 0 }, p.destination?.address ?? socket.localAddress);
        socket.resume();
      },
      (e: Error) => {
        this.proxyWaiting--;
        this.stats.inc('smtp.proxy.error');
        this.log.event('smtp', 'proxy-failed', { address: ip, listener: `${address}:${l.port}`, error: e.message });
        socket.on('error', () => undefined);
        socket.destroy();
      },
    );
  }

  /** A client, where it came from (the proxy's word, on a `proxy-v2` listener) and the address it reached. */
  private admit(l: Listener, address: string, socket: Socket, client: { readonly address: string; readonly port: number }, localAddress: string | undefined): void {
    const ip = client.address;
    const lease = this.limiter.open(ip);
    const d = lease.decision;
    if (d.kind !== 'accept') {
      socket.on('error', () => undefined);
      this.stats.inc('smtp.session.refused');
      this.stats.probe.session(l.tag ?? `${address}:${l.port}`, 'refused');
      this.log.event('smtp', 'refused', { address: ip, reason: d.reason, reply: d.kind === 'reply' ? d.reply.code : 'none' });
      if (d.kind === 'drop') {
        socket.destroy();
        return;
      }
      // Counted until it is closed: a client hammering the port keeps its own count high.
      socket.once('close', () => lease.release());
      socket.end(formatReply(d.reply, { enhanced: true, multiline: true }));
      setTimeout(() => socket.destroy(), 10_000).unref();
      return;
    }
    const id = randomBytes(8).toString('hex');
    const lookups = startPeerLookups(this.opts, { session: id, client, ...(socket.localAddress ? { localAddress: socket.localAddress } : {}), localPort: socket.localPort ?? 0 }, this.log);
    this.stats.inc('smtp.session');
    this.stats.inc(ip.includes(':') ? 'smtp.session.inet6' : 'smtp.session.inet4');
    this.stats.inc('smtp.session.active');
    this.stats.probe.session(l.tag ?? `${address}:${l.port}`, 'accepted');
    const session = new Session(id, this.env, {
      address: ip,
      port: client.port,
      fromSocket: false,
      // `port 0` (a port the kernel chose): the port actually bound, which ident queries name.
      listener: `${address}:${l.port === 0 ? (socket.localPort ?? 0) : l.port}`,
      localPort: socket.localPort ?? l.port,
      hostname: this.hostnameFor(l, localAddress),
      tag: l.tag,
      noDsn: l.noDsn,
      config: l,
      ...lookups,
    });
    const smtp = this.env.config.smtp;
    const conn = new Connection(
      socket,
      session,
      {
        commandTimeoutMs: smtp.commandTimeoutMs,
        dataTimeoutMs: smtp.dataTimeoutMs,
        tlsHandshakeTimeoutMs: smtp.tlsHandshakeTimeoutMs,
        sessionLifetimeMs: smtp.sessionLifetimeMs,
        transactionLifetimeMs: smtp.transactionLifetimeMs,
        earlyTalker: smtp.earlyTalker,
        greetingDelayMs: smtp.greetingDelayMs,
        maxBuffered: 1 << 20,
        ...(this.opts.tarpit ? { tarpit: this.opts.tarpit } : {}),
        ...(this.opts.errors ? { errors: this.opts.errors } : {}),
        ...(this.opts.minDataRate !== undefined ? { minDataRate: this.opts.minDataRate } : {}),
        multiline: this.env.runtime?.multilineReplies ?? true,
      },
      this.log,
      this.stats,
      this.tls,
    );
    this.connections.add(conn);
    conn.onClose = () => {
      lease.release();
      this.connections.delete(conn);
      this.stats.dec('smtp.session.active');
    };
    void conn.start(this.opts.gullible === true ? this.resolver.reverseName(ip) : this.resolver.reverseConfirmed(ip));
  }

  /** Stop accepting new clients but keep the sessions in progress (reload: a new server takes over the ports). */
  async stopListening(): Promise<void> {
    await Promise.all(
      this.bound.splice(0).map(
        (b) =>
          new Promise<void>((resolve) => {
            b.server.close();
            // The listening handle is released at once; close()'s callback would wait for the sessions.
            setImmediate(resolve);
          }),
      ),
    );
  }

  /** Stop accepting; ask every session to finish; force-close what is left after graceMs. */
  async close(graceMs: number): Promise<void> {
    // server.close() stops accepting at once; its callback waits for open connections, so don't await it here.
    const closed = Promise.all(this.bound.map((b) => new Promise<void>((r) => b.server.close(() => r()))));
    for (const c of this.connections) c.shutdown();
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const c of this.connections) c.destroy();
    await closed;
  }

  get sessionCount(): number {
    return this.connections.size;
  }
}
