/*
 * smtp/connection.ts — binds one socket to a Framer and a Session.
 *
 * The connection owns everything the session must not: the socket, the
 * timers, the input framing, back-pressure and the output buffer. It pulls
 * events from the framer one at a time, so pipelined commands run in order
 * and the framer switches to DATA/BDAT mode exactly where the session says.
 * Replies are collected and written in one write when the input runs dry
 * (RFC 2920 §3.2): a pipelined group costs one write, not one per command.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { TlsContexts } from '../tls/contexts.js';
import { isUtf8 } from 'node:buffer';
import { Framer } from '../wire/framer.js';
import type { MailLog } from '../log/maillog.js';
import type { Stats } from '../stats.js';
import { formatReply, reply, closing, type Reply, type FormatOptions } from './reply.js';
import type { CommandResult, Session } from './session.js';

/** RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF. */
const COMMAND_LINE_MAX = 510;
/** RFC 4954 §4: an AUTH command or response line may be up to 12288 octets. */
const AUTH_LINE_MAX = 12288;

export interface ConnectionOptions {
  readonly commandTimeoutMs: number;
  readonly dataTimeoutMs: number;
  readonly earlyTalker: 'reject' | 'allow';
  readonly greetingDelayMs: number;
  /** Pause reading when this many bytes wait unprocessed. */
  readonly maxBuffered: number;
}

export type DisconnectReason = 'quit' | 'timeout' | 'disconnect' | 'error' | 'shutdown' | 'refused' | 'protocol';

export class Connection {
  private readonly framer: Framer;
  private out: string[] = [];
  private pumping = false;
  private greeted = false;
  private closed = false;
  private shuttingDown = false;
  private timer: NodeJS.Timeout | undefined;
  private bdatSize = 0;
  private lastCommand = '';
  private inputEnded = false;
  private readonly fmt: FormatOptions;
  /** The next line answers an AUTH challenge (RFC 4954): not a command, never logged. */
  private authMode = false;
  private socket: Socket;
  private readonly handlers = {
    data: (chunk: Buffer): void => this.onData(chunk),
    // The client may half-close after its last command: finish what it sent, then close.
    end: (): void => {
      this.inputEnded = true;
      if (this.greeted) this.pump();
    },
    error: (e: Error): void => {
      if (this.log.tracing('io')) this.log.trace('io', `session ${this.session.id}: socket error: ${e.message}`);
      this.finish('error');
    },
    close: (): void => this.finish('disconnect'),
  };
  onClose?: (reason: DisconnectReason) => void;

  constructor(
    socket: Socket,
    readonly session: Session,
    private readonly opts: ConnectionOptions,
    private readonly log: MailLog,
    private readonly stats: Stats,
    private readonly tls?: TlsContexts,
  ) {
    // The framer holds at most 12288 octets of a line (the AUTH limit, RFC 4954 §4); commands are held to 512 below.
    this.framer = new Framer({ maxLine: AUTH_LINE_MAX, policy: session.env.config.smtp.bareNewline });
    this.fmt = { enhanced: session.extensionOn('ENHANCEDSTATUSCODES'), multiline: true };
    this.socket = socket;
    this.attach(socket);
  }

  private attach(s: Socket): void {
    s.setNoDelay(true);
    s.on('data', this.handlers.data);
    s.on('end', this.handlers.end);
    s.on('error', this.handlers.error);
    s.on('close', this.handlers.close);
  }

  private detach(s: Socket): void {
    s.off('data', this.handlers.data);
    s.off('end', this.handlers.end);
    s.off('error', this.handlers.error);
    s.off('close', this.handlers.close);
  }

  /**
   * Implicit TLS (smtps, RFC 8314) before the greeting, or STARTTLS (RFC 3207) after its 220.
   * Whatever the client sent after STARTTLS in clear text is thrown away (CVE-2011-0411).
   */
  private upgrade(): Promise<boolean> {
    const opts = this.tls?.serverOptions(this.session.peer.config);
    if (!opts) return Promise.resolve(false);
    const discarded = this.framer.discard();
    if (discarded > 0) this.log.event('smtp', 'starttls-injection', { session: this.session.id, address: this.session.peer.address, discarded });
    const raw = this.socket;
    this.detach(raw);
    raw.pause();
    const secure = new TLSSocket(raw, { isServer: true, ...opts });
    this.socket = secure;
    return new Promise((resolve) => {
      const fail = (e: Error): void => {
        this.log.event('smtp', 'tls-failed', { session: this.session.id, address: this.session.peer.address, error: e.message });
        this.stats.inc('smtp.tls.error');
        secure.destroy();
        this.finish('error');
        resolve(false);
      };
      secure.once('error', fail);
      secure.once('secure', () => {
        secure.off('error', fail);
        this.attach(secure);
        const cipher = secure.getCipher();
        const cert = secure.getPeerCertificate();
        const peer = cert && typeof cert.subject === 'object' && cert.subject ? Object.entries(cert.subject).map(([k, v]) => `${k}=${String(v)}`).join('/') : undefined;
        this.session.tlsEstablished({ version: secure.getProtocol() ?? 'TLS', cipher: cipher?.name ?? 'unknown', ...(peer ? { peer } : {}) });
        this.stats.inc('smtp.tls');
        this.log.event('smtp', 'tls', { session: this.session.id, version: secure.getProtocol() ?? undefined, cipher: cipher?.name });
        resolve(true);
      });
    });
  }

  /** Greet the client (after rDNS and the optional greeting delay). */
  async start(rdns: Promise<string | undefined>): Promise<void> {
    this.armTimer(this.opts.commandTimeoutMs);
    if (this.session.peer.config.tls === 'smtps') {
      this.stats.inc('smtp.smtps');
      if (!(await this.upgrade())) return;
    }
    this.session.rdns = await rdns;
    if (this.opts.greetingDelayMs > 0) await new Promise((r) => setTimeout(r, this.opts.greetingDelayMs));
    if (this.closed) return;
    this.log.event('smtp', 'connected', { session: this.session.id, address: this.session.peer.address, host: this.session.rdns ?? '<unknown>', listener: this.session.peer.listener });
    if (this.framer.buffered > 0 && this.opts.earlyTalker === 'reject') {
      this.stats.inc('smtp.errors.toofast');
      return this.refuse(reply(550, '5.7.1', 'Protocol error: talked before the greeting'), '(before greeting)');
    }
    const greeting = await this.session.greet();
    this.greeted = true;
    this.send(greeting, '(connect)');
    if (greeting.close) return this.closeAfterFlush('refused');
    this.flush();
    this.pump();
  }

  /** Graceful stop: finish the message in progress, then 421 at the next command. */
  shutdown(): void {
    this.shuttingDown = true;
    if (!this.pumping && this.framer.mode === 'line' && this.session.tx === undefined) {
      this.send(closing(reply(421, '4.3.2', `${this.session.peer.hostname} Service shutting down, closing connection`)), '(shutdown)');
      this.closeAfterFlush('shutdown');
    }
  }

  /** Hard stop: abort whatever is unacknowledged and drop the connection. */
  destroy(): void {
    void this.session.resetTransaction();
    this.socket.destroy();
    this.finish('shutdown');
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /* ------------------------------------------------------------- input */

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.framer.push(chunk);
    if (this.framer.buffered > this.opts.maxBuffered) this.socket.pause();
    if (this.greeted) this.pump();
  }

  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    this.run()
      .catch((e: Error) => {
        this.log.error(`session ${this.session.id}: internal error: ${e.stack ?? e.message}`);
        this.send(closing(reply(421, '4.3.0', 'Internal error, closing connection')), '(internal)');
        this.closeAfterFlush('error');
      })
      .finally(() => {
        this.pumping = false;
      });
  }

  private async run(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      const ev = this.framer.next();
      if (ev === null) break;
      let r: Reply | undefined;
      switch (ev.type) {
        case 'line':
          r = await this.onLine(ev.line);
          break;
        case 'line-too-long':
          this.stats.inc('smtp.errors.linetoolong');
          r = this.session.lineTooLong();
          this.lastCommand = '(line too long)';
          break;
        case 'data': {
          const p = this.session.content(ev.chunk);
          if (p) await p;
          break;
        }
        case 'data-end':
          this.armTimer(this.opts.commandTimeoutMs);
          r = await this.session.dataEnd(ev);
          this.lastCommand = 'DATA';
          break;
        case 'bytes': {
          const p = this.session.bdatChunk(ev.chunk);
          if (p) await p;
          break;
        }
        case 'bytes-end':
          r = await this.session.bdatEnd(this.bdatSize);
          break;
      }
      if (r) {
        this.send(r, this.lastCommand);
        if (r.close) return this.closeAfterFlush(r.code === 221 ? 'quit' : 'protocol');
      }
      if (this.shuttingDown && this.framer.mode === 'line' && this.session.tx === undefined) {
        this.send(closing(reply(421, '4.3.2', `${this.session.peer.hostname} Service shutting down, closing connection`)), '(shutdown)');
        return this.closeAfterFlush('shutdown');
      }
    }
    this.flush();
    if (this.inputEnded) return this.closeAfterFlush('disconnect');
    if (this.socket.isPaused()) this.socket.resume();
    this.armTimer(this.framer.mode === 'line' ? this.opts.commandTimeoutMs : this.opts.dataTimeoutMs);
  }

  private async onLine(raw: Buffer): Promise<Reply | undefined> {
    const s = this.session;
    if (this.authMode) {
      this.authMode = false;
      this.lastCommand = 'AUTH (response)';
      const line = raw.toString('latin1').trim();
      return this.apply(await s.authContinue(line));
    }
    if (raw.length > COMMAND_LINE_MAX && !/^AUTH /i.test(raw.subarray(0, 5).toString('latin1'))) {
      this.stats.inc('smtp.errors.linetoolong');
      this.lastCommand = '(line too long)';
      return s.lineTooLong();
    }
    // A line is text: no NUL, no CR inside it, valid UTF-8 (non-ASCII only matters for SMTPUTF8 paths).
    if (raw.includes(0) || raw.includes(13) || !isUtf8(raw)) {
      this.lastCommand = '(invalid characters)';
      return reply(500, '5.5.2', 'Invalid characters in command');
    }
    const line = raw.toString('utf8');
    this.lastCommand = redact(line);
    if (this.log.tracing('io')) this.log.trace('io', `session ${s.id}: <<< ${this.lastCommand}`);
    // RFC 2920: no pipelining unless EHLO offered it. ZMailer refuses such clients outright.
    if (this.framer.buffered > 0 && this.opts.earlyTalker === 'reject' && !this.pipeliningAllowed(line)) {
      this.stats.inc('smtp.errors.toofast');
      return closing(reply(550, '5.7.1', 'Protocol error: commands pipelined without PIPELINING'));
    }
    return this.apply(await s.command(line));
  }

  /** Do what a command result asks of the connection; return the reply to write. */
  private async apply(res: CommandResult): Promise<Reply | undefined> {
    if (res.then?.mode === 'starttls') {
      if (res.reply) this.send(res.reply, this.lastCommand);
      this.flush();
      await this.upgrade();
      return undefined;
    }
    if (res.then?.mode === 'auth') {
      this.authMode = true;
    } else if (res.then?.mode === 'data') {
      this.framer.startData(res.then.maxSize);
      this.armTimer(this.opts.dataTimeoutMs);
    } else if (res.then?.mode === 'bytes') {
      this.bdatSize = res.then.n;
      this.framer.startBytes(res.then.n);
      this.armTimer(this.opts.dataTimeoutMs);
    }
    return res.reply;
  }

  /** May the client have sent more after this line without waiting for our reply? */
  private pipeliningAllowed(line: string): boolean {
    const s = this.session;
    if (s.esmtp && s.extensionOn('PIPELINING')) return true;
    // EHLO itself may arrive with more behind it only if it ends the client's group; be lenient there.
    return /^EHLO(\s|$)/i.test(line);
  }

  /* ------------------------------------------------------------ output */

  private send(r: Reply, command: string): void {
    if (r.code >= 400) {
      this.log.event('smtp', 'failed-command', { session: this.session.id, command, result: `${r.code} ${r.enhanced ?? ''} ${r.lines[0] ?? ''}`.replace(/\s+/g, ' ') });
    }
    const text = formatReply(r, this.fmt);
    if (this.log.tracing('io')) this.log.trace('io', `session ${this.session.id}: >>> ${text.trimEnd()}`);
    this.out.push(text);
  }

  private flush(): void {
    if (this.out.length === 0 || this.closed) return;
    const text = this.out.length === 1 ? (this.out[0] as string) : this.out.join('');
    this.out = [];
    this.socket.write(text);
  }

  private refuse(r: Reply, command: string): void {
    this.send(closing(r), command);
    this.closeAfterFlush('refused');
  }

  private closeAfterFlush(reason: DisconnectReason): void {
    this.flush();
    this.socket.end();
    this.finish(reason);
  }

  /* ------------------------------------------------------------ timers */

  private armTimer(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.closed) return;
    this.timer = setTimeout(() => this.onTimeout(), ms);
    this.timer.unref();
  }

  private onTimeout(): void {
    if (this.closed) return;
    if (this.pumping) {
      // Busy on our side (e.g. a slow disk): the client is not to blame.
      this.armTimer(this.opts.commandTimeoutMs);
      return;
    }
    this.stats.inc('smtp.session.timeout');
    this.send(this.session.timeout(), '(timeout)');
    this.closeAfterFlush('timeout');
  }

  private finish(reason: DisconnectReason): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    // Anything not acknowledged is thrown away: it will never be delivered.
    void this.session.resetTransaction();
    this.session.enter('closed');
    this.log.event('smtp', 'disconnected', { session: this.session.id, reason, messages: this.session.messages });
    this.onClose?.(reason);
  }
}

/** Never log credentials: AUTH arguments are replaced. */
function redact(line: string): string {
  const l = line.length > 200 ? `${line.slice(0, 200)}…` : line;
  return /^AUTH\s/i.test(l) ? l.replace(/^(AUTH\s+\S+).*$/i, '$1 ********') : l;
}
