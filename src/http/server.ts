/*
 * http/server.ts — the optional HTTP listener (`http listen on …`, off by
 * default): /metrics for Prometheus, the JSON API (api.ts) over the same
 * control handlers as smtpctl, the dashboard's files (static.ts) and its
 * live stream of server-sent events (/api/v1/events, live.ts).
 *
 * Access. /metrics needs a token of any role, except on a loopback
 * listener with no token configured (then it is open, as most exporters
 * are). /api/… always needs a token: read-only for GETs and the event
 * stream, admin for changes (POST); 401 without a valid one, 403 with a
 * read-only one. Every change is logged with the token's name (never its
 * secret), and so is every refusal. The dashboard's files are public: they
 * hold no data, and the page asks for a token.
 *
 * Bad input. Request lines over MAX_URL bytes get 414; headers over 8 KiB
 * 431 (Node's parser); a body over maxBodyBytes 413; a body that is not a
 * JSON object 400; malformed HTTP 400 (Node's parser). Slow clients: the
 * headers must arrive within headersTimeoutMs and the whole request within
 * requestTimeoutMs, an idle connection is closed after idleTimeoutMs, at
 * most `http max-connections` sockets are open (Node closes any more at
 * once) and at most maxStreams event streams; a stream
 * whose reader falls more than 1 MiB behind is cut.
 */
import { listenOn } from '../privsep/listen.js';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { HttpOptions } from '../config/model.js';
import { CommandError } from '../control/handlers.js';
import type { QueueEntry } from '../control/queue-view.js';
import type { MailLog } from '../log/maillog.js';
import type { Metrics } from '../metrics/registry.js';
import { pageQueue, route, type Route } from './api.js';
import type { CertExpiry } from './certs.js';
import { snapshot, type LiveDeps } from './live.js';
import { isLoopback } from '../config/parse-http.js';
import { loadStatic, type StaticFile } from './static.js';
import type { Principal, TokenStore } from './tokens.js';

export interface HttpDeps extends LiveDeps {
  readonly metrics: Metrics;
  readonly log: MailLog;
  certificates(): readonly CertExpiry[];
}

export interface HttpLimits {
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly maxStreams: number;
  readonly liveIntervalMs: number;
}

export const DEFAULT_LIMITS: HttpLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, idleTimeoutMs: 60_000, maxBodyBytes: 4096, maxStreams: 16, liveIntervalMs: 1000 };
const MAX_URL = 2048;
const MAX_BEHIND = 1 << 20;
const RECENT_LINES = 200;

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
};

export class HttpListener {
  private server: Server | undefined;
  private readonly files: Map<string, StaticFile>;
  private readonly streams = new Set<ServerResponse>();
  private readonly recent: string[] = [];
  private pending: string[] = [];
  private ticker: NodeJS.Timeout | undefined;
  private last: { at: number; data: string } | undefined;
  private unwatch: (() => void) | undefined;
  private readonly limits: HttpLimits;

  constructor(
    private readonly opts: HttpOptions,
    private tokens: TokenStore,
    private readonly tls: { readonly cert: Buffer; readonly key: Buffer } | undefined,
    private readonly deps: HttpDeps,
    limits: Partial<HttpLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    const s = loadStatic();
    this.files = s.files;
    if (s.missing.length > 0) deps.log.warn(`http: dashboard files missing from the package: ${s.missing.join(', ')}`);
  }

  /** Bind; resolves with the port (the kernel's choice for port 0). */
  async listen(): Promise<number> {
    const l = this.limits;
    const o = { headersTimeout: l.headersTimeoutMs, requestTimeout: l.requestTimeoutMs, keepAliveTimeout: 5000, maxHeaderSize: 8192, connectionsCheckingInterval: Math.min(1000, l.headersTimeoutMs) };
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res).catch((e: Error) => this.fail(res, e));
    const server = this.tls ? createHttps({ ...o, cert: this.tls.cert, key: this.tls.key, minVersion: 'TLSv1.2' }, handler) : createHttp(o, handler);
    server.maxConnections = this.opts.maxConnections;
    server.timeout = l.idleTimeoutMs;
    await listenOn(server, { kind: 'tcp', host: this.opts.address, port: this.opts.port });
    server.on('error', (e) => this.deps.log.error(`http: ${e.message}`));
    this.server = server;
    this.unwatch = this.deps.log.watch((line) => this.logLine(line));
    const port = (server.address() as AddressInfo).port;
    this.deps.log.info(`http listener on ${this.opts.address} port ${port} (${this.tls ? 'https' : 'http'}; ${this.tokens.size} token(s))`);
    return port;
  }

  /** What the listener was started with. */
  get options(): HttpOptions {
    return this.opts;
  }

  /** New tokens (reload). */
  setTokens(t: TokenStore): void {
    this.tokens = t;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.unwatch?.();
    if (this.ticker) clearInterval(this.ticker);
    for (const s of this.streams) s.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    if ((req.url ?? '').length > MAX_URL) return this.json(res, 414, { error: `request target longer than ${MAX_URL} bytes` });
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://postern');
    } catch {
      return this.json(res, 400, { error: 'malformed request target' });
    }
    const method = req.method ?? 'GET';
    const path = url.pathname;
    const file = this.files.get(path);
    if (file !== undefined) {
      if (method !== 'GET' && method !== 'HEAD') return this.json(res, 405, { error: 'use GET here' }, { Allow: 'GET, HEAD' });
      res.writeHead(200, { 'Content-Type': file.type, 'Content-Length': file.body.length, 'Cache-Control': 'no-cache' });
      res.end(method === 'HEAD' ? undefined : file.body);
      return;
    }
    if (path === '/metrics') {
      if (method !== 'GET' && method !== 'HEAD') return this.json(res, 405, { error: 'use GET here' }, { Allow: 'GET, HEAD' });
      const open = this.tokens.size === 0 && isLoopback(this.opts.address);
      if (!open && this.principal(req, res, path) === undefined) return;
      const m = await this.deps.metrics.text();
      res.writeHead(200, { 'Content-Type': m.contentType, 'Cache-Control': 'no-store' });
      res.end(method === 'HEAD' ? undefined : m.body);
      return;
    }
    if (!path.startsWith('/api/v1/')) return this.json(res, 404, { error: 'not found' });
    const who = this.principal(req, res, path);
    if (who === undefined) return;
    if (path === '/api/v1/whoami') return this.json(res, 200, { name: who.name, role: who.role });
    if (path === '/api/v1/events') {
      if (method !== 'GET') return this.json(res, 405, { error: 'use GET here' }, { Allow: 'GET' });
      return this.stream(req, res);
    }
    const r = route(method, path, url.searchParams);
    if (!r.ok) return this.json(res, r.status, { error: r.error }, r.allow !== undefined ? { Allow: r.allow } : {});
    if (r.route.role === 'admin' && who.role !== 'admin') {
      this.deps.log.event('http', 'refused', { token: who.name, address: req.socket.remoteAddress, method, path, status: 403 });
      return this.json(res, 403, { error: `token "${who.name}" is read-only; this needs an admin token` });
    }
    const body = await this.body(req, res);
    if (body === undefined) return;
    return this.run(res, r.route, who, url.searchParams, method);
  }

  /** The caller's token, or undefined after answering 401. */
  private principal(req: IncomingMessage, res: ServerResponse, path: string): Principal | undefined {
    const p = this.tokens.check(req.headers.authorization);
    if (p !== undefined) return p;
    const reason = req.headers.authorization === undefined ? 'no token' : 'unknown token';
    this.deps.log.event('http', 'refused', { address: req.socket.remoteAddress, method: req.method, path, status: 401, reason });
    this.json(res, 401, { error: this.tokens.size === 0 ? 'no http token is configured: the API needs one (docs/configuration.md)' : 'a valid bearer token is required' }, { 'WWW-Authenticate': 'Bearer realm="postern"' });
    return undefined;
  }

  /** Read a request body: empty or one JSON object, at most maxBodyBytes; undefined after answering 400/413. */
  private async body(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const max = this.limits.maxBodyBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (!Number.isFinite(declared) || declared > max) {
      this.json(res, 413, { error: `request body larger than ${max} bytes` }, { Connection: 'close' });
      req.socket.end();
      return undefined;
    }
    const parts: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > max) {
        this.json(res, 413, { error: `request body larger than ${max} bytes` }, { Connection: 'close' });
        req.socket.end();
        return undefined;
      }
      parts.push(c as Buffer);
    }
    if (size === 0) return {};
    try {
      const v: unknown = JSON.parse(Buffer.concat(parts).toString('utf8'));
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v;
    } catch {
      /* answered below */
    }
    this.json(res, 400, { error: 'the request body must be empty or a JSON object' });
    return undefined;
  }

  private async run(res: ServerResponse, r: Route, who: Principal, query: URLSearchParams, method: string): Promise<void> {
    const change = r.role === 'admin';
    const fields = { token: who.name, command: r.command, ...r.args };
    try {
      if (r.raw) return await this.raw(res, r);
      let data = await this.deps.control.execute(r.command, r.args);
      if (r.command === 'show queue') {
        const page = pageQueue(data as QueueEntry[], query);
        if ('error' in page) return this.json(res, 400, { error: page.error });
        data = page;
      }
      if (change) this.deps.log.event('http', 'change', { ...fields, result: 'ok' });
      return this.json(res, 200, data, {}, method === 'HEAD');
    } catch (e) {
      if (change) this.deps.log.event('http', 'change', { ...fields, result: 'error' });
      if (!(e instanceof CommandError)) throw e;
      return this.json(res, /^no such/.test(e.message) ? 404 : 400, { error: e.message });
    }
  }

  /** `show message`: the raw message, streamed as the control socket streams it (base64 parts). */
  private async raw(res: ServerResponse, r: Route): Promise<void> {
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    await this.deps.control.execute(
      r.command,
      r.args,
      async (part) => {
        if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'message/rfc822', 'Cache-Control': 'no-store' });
        const chunk = Buffer.from(String((part as { chunk?: unknown }).chunk ?? ''), 'base64');
        if (!res.write(chunk)) await new Promise<void>((resolve) => res.once('drain', resolve));
      },
      ac.signal,
    );
    if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'message/rfc822', 'Cache-Control': 'no-store' });
    res.end();
  }

  /* ------------------------------------------------------- live events */

  private stream(req: IncomingMessage, res: ServerResponse): void {
    if (this.streams.size >= this.limits.maxStreams) return this.json(res, 503, { error: 'too many event streams open' }, { 'Retry-After': '10' });
    req.socket.setTimeout(0);
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    res.write(`retry: 3000\n\n`);
    if (this.recent.length > 0) res.write(event('log', this.recent));
    if (this.last) res.write(this.last.data);
    this.streams.add(res);
    res.on('close', () => {
      this.streams.delete(res);
      if (this.streams.size === 0 && this.ticker) {
        clearInterval(this.ticker);
        this.ticker = undefined;
      }
    });
    if (!this.ticker) {
      this.ticker = setInterval(() => void this.tick(), Math.min(250, this.limits.liveIntervalMs));
      this.ticker.unref();
    }
    void this.tick(true);
  }

  private async tick(force = false): Promise<void> {
    if (this.pending.length > 0) {
      const data = event('log', this.pending);
      this.pending = [];
      this.broadcast(data);
    }
    const now = Date.now();
    if (!force && this.last && now - this.last.at < this.limits.liveIntervalMs) return;
    this.last = { at: now, data: this.last?.data ?? '' };
    try {
      this.last = { at: now, data: event('snapshot', await snapshot(this.deps, now)) };
      this.broadcast(this.last.data);
    } catch (e) {
      this.deps.log.error(`http: live snapshot: ${(e as Error).message}`);
    }
  }

  private broadcast(data: string): void {
    for (const s of this.streams) {
      if (s.writableLength > MAX_BEHIND) s.destroy();
      else s.write(data);
    }
  }

  private logLine(line: string): void {
    this.recent.push(line);
    if (this.recent.length > RECENT_LINES) this.recent.shift();
    if (this.streams.size > 0) this.pending.push(line);
  }

  /* ------------------------------------------------------------ replies */

  private json(res: ServerResponse, status: number, data: unknown, headers: Record<string, string> = {}, head = false): void {
    if (res.headersSent) return void res.destroy();
    const body = `${JSON.stringify(data)}\n`;
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body), ...headers });
    res.end(head ? undefined : body);
  }

  private fail(res: ServerResponse, e: Error): void {
    this.deps.log.error(`http: ${e.message}`);
    this.json(res, 500, { error: 'internal error (see the mail log)' });
  }
}

/** One server-sent event. */
function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}
