/*
 * smtp/connection.ts — binds one socket to a Framer and a Session.
 *
 * The connection owns everything the session must not: the socket, the
 * timers, the input framing, back-pressure and the output buffer. It pulls
 * events from the framer one at a time, so pipelined commands run in order
 * and the framer switches to DATA/BDAT mode exactly where the session says.
 * Replies are collected and written in one write when the input runs dry
 * (RFC 2920 §3.2): a pipelined group costs one write, not one per command;
 * that write waits for the end of the turn (turn-flush.ts), where every
 * session's replies go out after one write of the log.
 *
 * Abuse handling that needs a clock lives here too (policy/limits):
 *  - a reply waits as long as its verdict asks (noto_delay, deny_delay) or
 *    as the tarpit / soft error limit ask, whichever is longer; the wait is
 *    a timer, so other sessions go on;
 *  - after the hard error limit the next command gets 421 and the session ends;
 *  - each request has a deadline (RequestDeadline): a command line must
 *    arrive whole within the command timeout however slowly it trickles,
 *    and DATA/BDAT content must keep a minimum rate (slowloris);
 *  - the session and each transaction have a lifetime (Lifetimes), the TLS
 *    handshake its own limit (tls/handshake.ts), and a closing socket a
 *    last few seconds to drain: every state has a deadline, and every state
 *    notices the client leaving (docs/architecture.md, "Deadlines of a
 *    connection").
 */
import type { Socket } from 'node:net';
import type { TlsContexts } from '../tls/contexts.js';
import { serverHandshake } from '../tls/handshake.js';
import { isUtf8 } from 'node:buffer';
import { Framer } from '../wire/framer.js';
import type { MailLog } from '../log/maillog.js';
import type { Stats } from '../stats.js';
import { formatReply, reply, closing, type Reply, type FormatOptions } from '../mail/reply.js';
import type { CommandResult, Session } from './session.js';
import { ReplyPacer } from './limits/errors.js';
import { NO_TARPIT, type TarpitSettings, LIMIT_DEFAULTS, DEFAULT_ERROR_LIMITS, type ErrorLimits } from '../config/limits.js';
import { RequestDeadline } from './limits/deadline.js';
import { flushThisTurn } from './turn-flush.js';
import { Lifetimes } from './limits/lifetime.js';
import { DEFAULT_SESSION_LIFETIME_MS, DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS, DEFAULT_TRANSACTION_LIFETIME_MS } from '../config/defaults.js';

/** RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF. */
const COMMAND_LINE_MAX = 510;
/** RFC 4954 §4: an AUTH command or response line may be up to 12288 octets. */
const AUTH_LINE_MAX = 12288;
/** After our last reply and FIN, how long the client has to close its side before the socket is destroyed. */
const CLOSING_GRACE_MS = 10_000;

export interface ConnectionOptions {
  readonly commandTimeoutMs: number;
  readonly dataTimeoutMs: number;
  /** The STARTTLS / smtps handshake; default DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS (60 s). */
  readonly tlsHandshakeTimeoutMs?: number;
  /** The whole session and one transaction; defaults 1 h and 30 min (config/defaults.ts); 0 = no limit. */
  readonly sessionLifetimeMs?: number;
  readonly transactionLifetimeMs?: number;
  readonly earlyTalker: 'reject' | 'allow';
  readonly greetingDelayMs: number;
  /** Pause reading when this many bytes wait unprocessed. */
  readonly maxBuffered: number;
  /** DATA/BDAT bytes a second that earn more time; default LIMIT_DEFAULTS.minDataRate (500). */
  readonly minDataRate?: number;
  /** ZMailer's tarpit; default off. */
  readonly tarpit?: TarpitSettings;
  /** Soft/hard error limits; default Postfix's (10, 20, 1 s). */
  readonly errors?: ErrorLimits;
  /** Multi-line replies; false: one line each except the EHLO list (ZMailer's no-multiline-replies). */
  readonly multiline?: boolean;
  /** How to wait before a reply (the dry run only notes the wait). Default: a timer. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** The dry run: comment lines to write after each reply (which rule decided it, and why). */
  readonly explain?: (r: Reply, info: ReplyInfo) => readonly string[];
}

/** How a reply was paced, for the dry run's comments. */
export interface ReplyInfo {
  readonly command: string;
  /** What the verdict asked for (noto_delay, deny_delay). */
  readonly verdictDelayMs: number;
  /** What the tarpit / error limits asked for. */
  readonly pacingDelayMs: number;
  /** 4xx/5xx replies so far. */
  readonly errors: number;
}

const sleepFor = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export type DisconnectReason = 'quit' | 'timeout' | 'disconnect' | 'error' | 'shutdown' | 'refused' | 'protocol';

export class Connection {
  private readonly framer: Framer;
  private out: string[] = [];
  private pumping = false;
  private greeted = false;
  private closed = false;
  private shuttingDown = false;
  private timer: NodeJS.Timeout | undefined;
  /** When the inactivity deadline is, and when the timer set for it fires (performance.now()). */
  private timerDeadline = 0;
  private timerFiresAt = 0;
  private bdatSize = 0;
  private lastCommand = '';
  private inputEnded = false;
  private readonly fmt: FormatOptions;
  private readonly pacer: ReplyPacer;
  private deadline: RequestDeadline;
  private readonly lifetimes: Lifetimes;
  /** A TLS handshake is running (it keeps its own deadline and watches the peer). */
  private handshaking = false;
  /** The delay the last command result asked for (a verdict's delayMs). */
  private verdictDelay = 0;
  private lastPacing = { verdictDelayMs: 0, pacingDelayMs: 0 };
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
      else this.log.debug(`smtp session ${this.session.id} address ${this.session.peer.address}: socket error: ${e.message}`);
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
    this.fmt = { enhanced: session.extensionOn('ENHANCEDSTATUSCODES'), multiline: opts.multiline ?? true };
    this.pacer = new ReplyPacer({ tarpit: opts.tarpit ?? NO_TARPIT, errors: opts.errors ?? DEFAULT_ERROR_LIMITS });
    this.deadline = new RequestDeadline({ timeoutMs: opts.commandTimeoutMs, minDataRate: 0 });
    this.lifetimes = new Lifetimes({
      sessionMs: opts.sessionLifetimeMs ?? DEFAULT_SESSION_LIFETIME_MS,
      transactionMs: opts.transactionLifetimeMs ?? DEFAULT_TRANSACTION_LIFETIME_MS,
    });
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
   * The handshake has its own deadline and ends the session when the client leaves during it.
   */
  private async upgrade(): Promise<boolean> {
    const opts = this.tls?.serverOptions(this.session.peer.config);
    if (!opts) return false;
    const discarded = this.framer.discard();
    if (discarded > 0) this.log.event('smtp', 'starttls-injection', { session: this.session.id, address: this.session.peer.address, discarded });
    const raw = this.socket;
    this.detach(raw);
    raw.pause();
    this.handshaking = true;
    const hs = serverHandshake(raw, opts, this.opts.tlsHandshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS, () => this.onRenegotiation());
    this.socket = hs.socket;
    const o = await hs.done;
    this.handshaking = false;
    if (!o.ok) {
      this.log.event('smtp', 'tls-failed', { session: this.session.id, address: this.session.peer.address, reason: o.reason, error: o.error });
      this.stats.inc(o.reason === 'timeout' ? 'smtp.tls.timeout' : 'smtp.tls.error');
      this.finish(o.reason);
      return false;
    }
    if (this.closed) {
      hs.socket.destroy();
      return false;
    }
    this.attach(hs.socket);
    this.session.tlsEstablished({ version: o.version, cipher: o.cipher, ...(o.peer !== undefined ? { peer: o.peer } : {}), ...(o.peerVerified !== undefined ? { peerVerified: o.peerVerified } : {}) });
    this.stats.inc('smtp.tls');
    this.stats.probe.tls(o.version);
    if (this.session.peer.config.tls !== 'smtps') this.stats.inc('smtp.tls.starttls');
    // tlsloglevel (ZMailer): 1 adds the client certificate, 2 the name the client asked for too.
    const level = this.session.peer.config.tlsLogLevel ?? 0;
    this.log.event('smtp', 'tls', {
      session: this.session.id,
      version: o.version,
      cipher: o.cipher,
      ...(level >= 1 ? { peer: o.peer ?? 'none', ...(o.peerIssuer ? { issuer: o.peerIssuer } : {}), ...(o.peerVerified !== undefined ? { verified: o.peerVerified ? 'yes' : 'no' } : {}) } : {}),
      ...(level >= 2 ? { sni: o.servername ?? 'none' } : {}),
    });
    return true;
  }

  /** The client started a second handshake (TLS 1.2 renegotiation): OpenSSL refused it; hang up and say so. */
  private onRenegotiation(): void {
    if (this.closed) return;
    this.stats.inc('smtp.tls.renegotiation');
    this.log.event('smtp', 'tls-renegotiation', { session: this.session.id, address: this.session.peer.address, result: 'refused' });
    this.socket.destroy();
    this.finish('protocol');
  }

  /** Greet the client (after rDNS and the optional greeting delay). */
  async start(rdns: Promise<string | undefined>): Promise<void> {
    this.armDeadline();
    if (this.session.peer.config.tls === 'smtps') {
      this.stats.inc('smtp.smtps');
      if (!(await this.upgrade())) return;
    }
    this.session.setRdns(await rdns);
    if (this.opts.greetingDelayMs > 0) await new Promise((r) => setTimeout(r, this.opts.greetingDelayMs));
    if (this.closed) return;
    this.log.event('smtp', 'connected', { session: this.session.id, address: this.session.peer.address, host: this.session.rdns ?? '<unknown>', listener: this.session.peer.listener });
    if (this.framer.buffered > 0 && this.opts.earlyTalker === 'reject') {
      this.stats.inc('smtp.errors.toofast');
      return this.refuse(reply(550, '5.7.1', 'Protocol error: talked before the greeting'), '(before greeting)');
    }
    const greeted = await this.session.greet();
    const greeting = greeted.reply;
    this.verdictDelay = greeted.delayMs ?? 0;
    await this.pace(greeting);
    if (this.closed) return;
    this.greeted = true;
    this.send(greeting, '(connect)');
    if (greeting.close) return this.closeAfterFlush('refused');
    this.deadline.start();
    this.flush();
    this.pump();
  }

  /** Graceful stop: finish the message in progress, then 421 at the next command. */
  shutdown(): void {
    this.shuttingDown = true;
    if (!this.pumping && this.framer.mode === 'line' && !this.session.inTransaction) {
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
    // Content earns time at the minimum data rate; command lines do not.
    if (this.framer.mode !== 'line') this.deadline.onBytes(chunk.length);
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
      const accepted = this.session.messages;
      switch (ev.type) {
        case 'line':
          r = this.pacer.beforeCommand(this.session.peer.hostname);
          if (r) this.lastCommand = '(too many errors)';
          else r = await this.onLine(ev.line);
          this.nextRequest();
          break;
        case 'line-too-long':
          this.stats.inc('smtp.errors.linetoolong');
          r = this.session.lineTooLong();
          this.lastCommand = '(line too long)';
          this.nextRequest();
          break;
        case 'data': {
          const p = this.session.content(ev.chunk);
          if (p) await p;
          break;
        }
        case 'data-end':
          this.nextRequest();
          this.armDeadline();
          this.session.report({ kind: 'client', line: '.' });
          r = await this.session.dataEnd(ev);
          this.lastCommand = 'DATA';
          break;
        case 'bytes': {
          const p = this.session.bdatChunk(ev.chunk);
          if (p) await p;
          break;
        }
        case 'bytes-end':
          this.nextRequest();
          r = await this.session.bdatEnd(this.bdatSize);
          break;
      }
      // An accepted message starts the error count again.
      if (this.session.messages > accepted) this.pacer.messageAccepted();
      this.lifetimes.transaction(this.session.txPhase !== undefined);
      if (r) {
        await this.pace(r);
        if (this.closed) return;
        this.send(r, this.lastCommand);
        if (r.close) return this.closeAfterFlush(r.code === 221 ? 'quit' : 'protocol');
      }
      if (this.shuttingDown && this.framer.mode === 'line' && !this.session.inTransaction) {
        this.send(closing(reply(421, '4.3.2', `${this.session.peer.hostname} Service shutting down, closing connection`)), '(shutdown)');
        return this.closeAfterFlush('shutdown');
      }
    }
    // Written at the end of the turn, with every other session's: one log write for all of them.
    if (this.inputEnded) return this.closeAfterFlush('disconnect');
    flushThisTurn(this);
    if (this.socket.isPaused()) this.socket.resume();
    this.armDeadline();
  }

  /** A request (command line, or DATA/BDAT content) is complete: the next one gets its own deadline. */
  private nextRequest(): void {
    this.deadline =
      this.framer.mode === 'line'
        ? new RequestDeadline({ timeoutMs: this.opts.commandTimeoutMs, minDataRate: 0 })
        : new RequestDeadline({ timeoutMs: this.opts.dataTimeoutMs, minDataRate: this.opts.minDataRate ?? LIMIT_DEFAULTS.minDataRate });
  }

  /**
   * Wait before a reply: the verdict's delay, or the tarpit / error slow-down,
   * whichever is longer. Replies already queued are written first.
   */
  private async pace(r: Reply): Promise<void> {
    const verdictDelayMs = this.verdictDelay;
    this.verdictDelay = 0;
    const pacingDelayMs = this.pacer.delayFor(r.code);
    this.lastPacing = { verdictDelayMs, pacingDelayMs };
    const wait = Math.max(verdictDelayMs, pacingDelayMs);
    if (wait <= 0) return;
    this.flush();
    await (this.opts.sleep ?? sleepFor)(wait);
  }

  private async onLine(raw: Buffer): Promise<Reply | undefined> {
    const s = this.session;
    if (this.authMode) {
      this.authMode = false;
      this.lastCommand = 'AUTH (response)';
      s.report({ kind: 'client', line: '********' });
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
    if (s.reported) s.report({ kind: 'client', line: maskAuth(line) });
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
    this.verdictDelay = res.delayMs ?? 0;
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
    } else if (res.then?.mode === 'bytes') {
      this.bdatSize = res.then.n;
      this.framer.startBytes(res.then.n);
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
      this.log.event('smtp', 'failed-command', { session: this.session.id, address: this.session.peer.address, command, result: `${r.code} ${r.enhanced ?? ''} ${r.lines[0] ?? ''}`.replace(/\s+/g, ' ') });
      this.stats.probe.refusal(/^\S*/.exec(command)?.[0] ?? '', r.code, r.enhanced);
    }
    // no-multiline-replies spares the EHLO list (ZMailer's rule).
    const fmt = !this.fmt.multiline && /^EHLO(\s|$)/i.test(command) ? { ...this.fmt, multiline: true } : this.fmt;
    const text = formatReply(r, fmt);
    if (this.session.reported) for (const line of text.split('\r\n')) if (line !== '') this.session.report({ kind: 'server', line });
    if (this.log.tracing('io')) this.log.trace('io', `session ${this.session.id}: >>> ${text.trimEnd()}`);
    this.out.push(text);
    if (this.opts.explain) {
      const info: ReplyInfo = { command, ...this.lastPacing, errors: this.pacer.errors.errors };
      this.lastPacing = { verdictDelayMs: 0, pacingDelayMs: 0 };
      for (const line of this.opts.explain(r, info)) this.out.push(`# ${line.replace(/[\r\n]+/g, ' ')}\r\n`);
    }
  }

  /** Write the replies gathered so far (the log's lines first). */
  flush(): void {
    if (this.out.length === 0 || this.closed) return;
    const text = this.out.length === 1 ? (this.out[0] as string) : this.out.join('');
    this.out = [];
    // What was logged about these replies reaches the log before the client reads them.
    this.log.flush();
    this.socket.write(text);
  }

  private refuse(r: Reply, command: string): void {
    this.send(closing(r), command);
    this.closeAfterFlush('refused');
  }

  private closeAfterFlush(reason: DisconnectReason): void {
    this.flush();
    const s = this.socket;
    s.end();
    // The listeners allow half-open sockets: a client that never closes its side must not keep this one.
    // The timer goes with the socket: one per closed connection left running for 10 s would hold every
    // closed socket that long (thousands at a connection-per-message rate).
    if (!s.destroyed) {
      const grace = setTimeout(() => s.destroy(), CLOSING_GRACE_MS).unref();
      s.once('close', () => clearTimeout(grace));
    }
    this.finish(reason);
  }

  /* ------------------------------------------------------------ timers */

  /** Arm the timer for the nearest deadline: this request's, the transaction's or the session's. */
  private armDeadline(): void {
    this.armTimer(Math.min(this.deadline.remainingMs(), this.lifetimes.remainingMs()));
  }

  /**
   * (Re)start the inactivity deadline: `ms` from now. One timer per
   * connection, created again only when the deadline moves earlier than it;
   * when it fires early (the deadline moved later), it re-arms for the rest.
   */
  private armTimer(ms: number): void {
    if (this.closed) return;
    const at = performance.now() + ms;
    this.timerDeadline = at;
    if (this.timer !== undefined && this.timerFiresAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.startTimer(ms, at);
  }

  private startTimer(ms: number, at: number): void {
    this.timerFiresAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      const left = this.timerDeadline - performance.now();
      if (left > 1) this.startTimer(left, this.timerDeadline);
      else this.onTimeout();
    }, ms);
    this.timer.unref();
  }

  private onTimeout(): void {
    if (this.closed) return;
    // The timer re-arms only when more than 1 ms is left, so it may fire that much early.
    const over = this.lifetimes.expired(2);
    if (over !== undefined) {
      // Never re-armed: not even a busy session (a slow disk, a content filter) outlives its lifetime.
      this.stats.inc(`smtp.session.${over}-lifetime`);
      this.log.event('smtp', 'lifetime-exceeded', { session: this.session.id, address: this.session.peer.address, limit: over });
      // In a TLS handshake no reply can be read: drop it (the handshake logs why it ended).
      if (this.handshaking) {
        this.socket.destroy();
        return this.finish('timeout');
      }
      const what = over === 'session' ? 'Session' : 'Transaction';
      this.send(closing(reply(421, '4.4.2', `${this.session.peer.hostname} ${what} time limit exceeded, closing connection`)), `(${over} lifetime)`);
      return this.closeAfterFlush('timeout');
    }
    if (this.pumping || this.handshaking) {
      // Busy on our side (a slow disk, a content filter, a tarpit), or in a TLS handshake that keeps
      // its own deadline: the client is not to blame for this request's time.
      this.nextRequest();
      this.armDeadline();
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
    this.session.end();
    this.log.event('smtp', 'disconnected', { session: this.session.id, address: this.session.peer.address, reason, messages: this.session.messages });
    this.stats.probe.sessionEnd(reason);
    this.onClose?.(reason);
  }
}

/** Never log credentials: AUTH arguments are replaced. */
function redact(line: string): string {
  return maskAuth(line.length > 200 ? `${line.slice(0, 200)}…` : line);
}

/** AUTH's initial response hidden ("AUTH PLAIN ********"): it carries a password. */
function maskAuth(line: string): string {
  return /^AUTH\s/i.test(line) ? line.replace(/^(AUTH\s+\S+).*$/i, '$1 ********') : line;
}
