/*
 * smtp/session.ts — the SMTP session state machine (RFC 5321, 1869, 2920,
 * 3030, 3461, 6152, 6531).
 *
 * Long (over 400 lines) for now: it still holds openMessage, finishMessage,
 * recordHeld, logAccepted and envelopeRecipients, which move to the queue's
 * front door (queue/enqueue.ts) in a change of their own.
 *
 * Commands return replies as values; the connection (smtp/connection.ts)
 * writes them and owns the socket, timers and input framing. The command
 * table (smtp/commands.ts) says in which states a verb is valid and names
 * its handler, a method of this class; the SASL exchange of AUTH is
 * smtp/sasl.ts; the transaction (smtp/transaction.ts) is a union by phase.
 * The session's state is private and changes only through enter(), which
 * can trace "old -> new"; other modules read it through getters.
 *
 *   connect ──greet──> ready ──HELO/EHLO──> helo ──MAIL──> mail ──RCPT…──> mail
 *        mail ──DATA──> data ──"."──> helo        mail ──BDAT──> bdat ──LAST──> helo
 *   any ──connection ends──> closed
 *
 * Nothing is acknowledged before the spool says it is on disk: the 250
 * after DATA/BDAT LAST is built only once MessageWriter.commit() resolved.
 *
 * The policy files (policy/build.ts) reach the session as a SessionRuntime:
 * the hdr220 greeting, EHLO and multi-line replies on or off, and ZMailer's
 * style flags (v: VRFY looks up, e: EXPN expands, S: sloppy syntax and MAIL
 * before HELO; without S, strict RFC 5321 paths). Every wait — a verdict's
 * delay, a failed AUTH — comes back as CommandResult.delayMs; the
 * connection does the waiting, nothing here sleeps.
 *
 * NOOP, RSET, VRFY, HELP and unknown commands count towards
 * `smtp limit max-junk-commands` (Postfix's smtpd_junk_command_limit);
 * past it the session answers 421 4.7.0 and ends. As in Postfix, an
 * accepted message starts the count again.
 */
import type { Config, Listener } from '../config/model.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { FailRate } from '../auth/failrate.js';
import type { TableRegistry } from '../table/table.js';
import { randomBytes } from 'node:crypto';
import type { MailLog } from '../log/maillog.js';
import type { MessageWriter, Spool } from '../spool/spool.js';
import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import { newEvpid } from '../spool/fs/fs-spool.js';
import type { CommitDecision, Policy, SessionFacts, TxFacts } from '../policy/policy.js';
import type { Verdict } from '../policy/verdict.js';
import type { StyleFlag } from '../policy/zmailer/helo-patterns.js';
import type { Stats } from '../stats.js';
import { HeaderScanner } from '../wire/header-scan.js';
import { LineEndingNormalizer } from '../wire/line-endings.js';
import { parseMailFromArg, parseRcptToArg, formatMailbox } from '../mail/address.js';
import { parseMailParams, parseRcptParams, type ExtensionsOn } from '../mail/params.js';
import { reply, closing, type Reply } from '../mail/reply.js';
import { abortTransaction, addRcpt, envelopeOf, newTransaction, type ContentTx, type EnvelopeTx, type MessageContent, type Transaction } from './transaction.js';
import { FromRewriter } from './masquerade.js';
import { receivedHeader, protocolName } from './received.js';
import { commandTable, type CommandHandlers, type CommandResult, type SessionState } from './commands.js';
import { saslContinue, saslMechanisms, saslStart, type SaslContext, type SaslExchange, type SaslMechanism, type SaslStep } from './sasl.js';
import { SessionRuntime } from '../policy/runtime.js';
import { SchedulerSeam } from '../queue/seam.js';

export type { SessionState, CommandResult } from './commands.js';

export interface SessionEnv {
  readonly config: Config;
  readonly log: MailLog;
  readonly spool: Spool;
  readonly policy: Policy;
  readonly stats: Stats;
  readonly scheduler: SchedulerSeam;
  /** Free bytes in the spool (cached by the caller). */
  readonly freeSpace: () => Promise<number>;
  readonly now: () => number;
  readonly tables: TableRegistry;
  readonly auth: { readonly authenticator: Authenticator; readonly failrate: FailRate };
  readonly runtime?: SessionRuntime;
}

export interface PeerInfo {
  readonly address: string;
  readonly port: number;
  readonly fromSocket: boolean;
  /** "addr:port" of the listener. */
  readonly listener: string;
  /** Our port (hdr220's %p). */
  readonly localPort?: number;
  readonly hostname: string;
  readonly tag?: string;
  readonly noDsn: boolean;
  /** The listener's configuration (TLS and AUTH modes, senders table). */
  readonly config: Listener;
}

export interface TlsInfo {
  readonly version: string;
  readonly cipher: string;
  /** Subject of a client certificate, when one was presented. */
  readonly peer?: string;
}

/** A refusal verdict as a command result: the reply (closing when the verdict says so) and its delay. */
function refused(v: Verdict & { kind: 'reject' }): CommandResult {
  return { reply: v.disconnect ? closing(v.reply) : v.reply, ...(v.delayMs ? { delayMs: v.delayMs } : {}) };
}

export interface DataEndInfo {
  readonly size: number;
  readonly overflow: boolean;
  readonly bareCr: boolean;
  readonly bareLf: boolean;
  readonly nul: boolean;
}

/**
 * The largest BDAT chunk read (and thrown away) when it cannot be stored: a
 * larger declaration is refused and the session closed, since reading it
 * would hold the connection for nothing (issue 14). Never below the message
 * size limit.
 */
const BDAT_DISCARD_MAX = 64 * 1024 * 1024;

/** What happens to the BDAT chunk being read: stored, or read and thrown away (and the reply owed after it, if any). */
type ChunkFate = { readonly store: true } | { readonly store: false; readonly reply?: Reply; readonly last: boolean };

const tooBig = (): Reply => reply(552, '5.3.4', 'Message size exceeds fixed maximum message size');

/** Why a BDAT chunk cannot be stored, given the transaction (or its absence). */
function bdatFailure(tx: Transaction | undefined): Reply {
  if (!tx) return reply(503, '5.5.1', 'Need MAIL command');
  if (tx.phase === 'bdat-refused') return tx.failure;
  if (tx.rcpts.length === 0) return tx.attempted > 0 ? reply(554, '5.5.1', 'No valid recipients') : reply(503, '5.5.1', 'Need RCPT command');
  return reply(503, '5.5.1', 'Bad sequence of commands');
}

export class Session implements CommandHandlers {
  #state: SessionState = 'connect';
  #helo?: string;
  #esmtp = false;
  #rdns?: string;
  #tls = false;
  #tlsInfo?: TlsInfo;
  #authUser?: string;
  #sasl?: SaslExchange;
  private tx?: Transaction;
  #chunk?: ChunkFate;
  #unknownCommands = 0;
  #junkCommands = 0;
  #messages = 0;
  /** ZMailer style flags in force (from the HELO pattern, or the default); undefined without a ZMailer file. */
  #style?: ReadonlySet<StyleFlag>;
  readonly ext: ExtensionsOn;
  private readonly disabled: ReadonlySet<string>;

  constructor(
    readonly id: string,
    readonly env: SessionEnv,
    readonly peer: PeerInfo,
  ) {
    const c = env.config.smtp;
    this.disabled = c.disabledExtensions;
    this.ext = {
      size: !this.disabled.has('SIZE'),
      maxSize: c.maxMessageSize,
      eightBitMime: !this.disabled.has('8BITMIME'),
      smtputf8: !this.disabled.has('SMTPUTF8'),
      dsn: !this.disabled.has('DSN') && !peer.noDsn,
      chunking: !this.disabled.has('CHUNKING'),
      auth: false,
    };
    this.#style = env.runtime?.style?.(undefined);
  }

  /* ---------------------------------------------------------- readings */

  get state(): SessionState {
    return this.#state;
  }
  get helo(): string | undefined {
    return this.#helo;
  }
  get esmtp(): boolean {
    return this.#esmtp;
  }
  get rdns(): string | undefined {
    return this.#rdns;
  }
  get tls(): boolean {
    return this.#tls;
  }
  get tlsInfo(): TlsInfo | undefined {
    return this.#tlsInfo;
  }
  get authUser(): string | undefined {
    return this.#authUser;
  }
  /** Messages accepted in this session. */
  get messages(): number {
    return this.#messages;
  }
  private set messages(n: number) {
    this.#messages = n;
  }
  get style(): ReadonlySet<StyleFlag> | undefined {
    return this.#style;
  }
  /** A transaction is open (MAIL given, not yet ended). */
  get inTransaction(): boolean {
    return this.tx !== undefined;
  }
  /** The transaction's phase, if one is open. */
  get txPhase(): Transaction['phase'] | undefined {
    return this.tx?.phase;
  }

  /* ---------------------------------------------------------- plumbing */

  private enter(next: SessionState): void {
    if (this.env.log.tracing('smtp')) this.env.log.trace('smtp', `session ${this.id}: ${this.#state} -> ${next}`);
    this.#state = next;
  }

  /** The client's forward-confirmed reverse name, learnt before the greeting. */
  setRdns(name: string | undefined): void {
    this.#rdns = name;
  }

  /** The connection is gone: drop the transaction (nothing unacknowledged is kept). */
  end(): void {
    void this.resetTransaction();
    this.enter('closed');
  }

  /** Strict RFC 5321 paths: `-s strict`, or a ZMailer style without S (sloppy). */
  private strictPaths(): boolean {
    return this.env.runtime?.strict === true || (this.#style !== undefined && !this.#style.has('S'));
  }

  facts(): SessionFacts {
    return {
      id: this.id,
      clientAddress: this.peer.address,
      clientPort: this.peer.port,
      fromSocket: this.peer.fromSocket,
      rdns: this.#rdns,
      helo: this.#helo,
      esmtp: this.#esmtp,
      tls: this.#tls,
      authUser: this.#authUser,
      tag: this.peer.tag,
      listener: this.peer.listener,
    };
  }

  private txFacts(tx: Transaction): TxFacts {
    return { sender: tx.sender, params: tx.params, rcptCount: tx.rcpts.length };
  }

  extensionOn(name: string): boolean {
    return !this.disabled.has(name);
  }

  /** Drop the transaction (RSET, EHLO, end of message, disconnect). */
  async resetTransaction(): Promise<void> {
    const tx = this.tx;
    this.tx = undefined;
    if (tx) await abortTransaction(tx);
    if (this.#state === 'mail' || this.#state === 'data' || this.#state === 'bdat') this.enter('helo');
  }

  /* ---------------------------------------------------------- greeting */

  async greet(): Promise<CommandResult & { readonly reply: Reply }> {
    const v = await this.env.policy.connect(this.facts());
    if (v.kind === 'reject') {
      this.env.log.event('smtp', 'failed-command', { session: this.id, command: '(connect)', result: `${v.reply.code} ${v.reply.lines[0] ?? ''}`, reason: v.reason });
      return { reply: closing(v.reply), ...(v.delayMs ? { delayMs: v.delayMs } : {}) };
    }
    this.enter('ready');
    const greeting = this.env.runtime?.greeting;
    if (greeting) {
      const lines = greeting({ hostname: this.peer.hostname, clientAddress: this.peer.address, localPort: this.peer.localPort ?? 0 });
      return { reply: reply(220, undefined, ...lines) };
    }
    const banner = this.env.config.smtp.banner ?? 'ESMTP Postern';
    return { reply: reply(220, undefined, `${this.peer.hostname} ${banner}`) };
  }

  /* ---------------------------------------------------------- commands */

  /** Run one command line. */
  async command(line: string): Promise<CommandResult> {
    const sp = line.indexOf(' ');
    const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const arg = sp < 0 ? '' : line.slice(sp + 1);
    const spec = COMMANDS.get(verb);
    if (!spec || (spec.extension !== undefined && !this.extensionOn(spec.extension))) return { reply: this.unknown() };
    if (spec.junk) {
      const r = this.junk();
      if (r) return { reply: r };
    }
    const sloppy = spec.sloppyStates?.includes(this.#state) === true && this.#style?.has('S') === true;
    if (!spec.states.includes(this.#state) && !sloppy) return { reply: spec.sequenceError(this.#state) };
    return spec.handler.call(this, arg);
  }

  private unknown(): Reply {
    this.#unknownCommands++;
    if (this.#unknownCommands >= this.env.config.smtp.maxUnknownCommands) {
      return closing(reply(421, '4.7.0', `${this.peer.hostname} Too many unrecognized commands, closing connection`));
    }
    return this.junk() ?? reply(500, '5.5.1', 'Command unrecognized');
  }

  /** Count a junk command; past `smtp limit max-junk-commands` (0: no limit), the 421 that ends the session. */
  private junk(): Reply | undefined {
    this.#junkCommands++;
    const limit = this.env.config.smtp.maxJunkCommands;
    if (limit > 0 && this.#junkCommands > limit) return closing(reply(421, '4.7.0', `${this.peer.hostname} Too many junk commands, closing connection`));
    return undefined;
  }

  lineTooLong(): Reply {
    this.#unknownCommands++;
    if (this.#unknownCommands >= this.env.config.smtp.maxUnknownCommands) {
      return closing(reply(421, '4.7.0', `${this.peer.hostname} Too many errors, closing connection`));
    }
    return reply(500, '5.5.2', 'Line too long');
  }

  timeout(): Reply {
    return closing(reply(421, '4.4.2', `${this.peer.hostname} Timeout exceeded, closing connection`));
  }

  ehloCommand(arg: string): Promise<CommandResult> {
    return this.hello(arg, true);
  }

  heloCommand(arg: string): Promise<CommandResult> {
    return this.hello(arg, false);
  }

  private async hello(arg: string, extended: boolean): Promise<CommandResult> {
    const name = arg.trim();
    if (name === '') return { reply: reply(501, '5.5.4', `Syntax: ${extended ? 'EHLO' : 'HELO'} hostname`) };
    if (name.length > 255 || /[\s\x00-\x1f\x7f]/.test(name)) return { reply: reply(501, '5.5.2', 'Invalid domain name') };
    if (extended && this.env.runtime?.ehlo === false) return { reply: reply(502, '5.5.1', 'EHLO not available, use HELO') };
    await this.resetTransaction();
    const v = await this.env.policy.helo(this.facts(), name);
    if (v.kind === 'reject') return refused(v);
    this.#helo = name;
    this.#esmtp = extended;
    if (this.env.runtime?.style) this.#style = this.env.runtime.style(name);
    this.enter('helo');
    const greeting = `${this.peer.hostname} Hello ${name} [${this.peer.address}], pleased to meet you`;
    if (!extended) return { reply: reply(250, undefined, greeting) };
    return { reply: reply(250, undefined, greeting, ...this.extensions()) };
  }

  extensions(): string[] {
    const out: string[] = [];
    const on = (n: string): boolean => this.extensionOn(n);
    if (on('PIPELINING')) out.push('PIPELINING');
    if (this.ext.size) out.push(`SIZE ${this.env.config.smtp.maxMessageSize}`);
    if (this.ext.eightBitMime) out.push('8BITMIME');
    if (this.ext.smtputf8) out.push('SMTPUTF8');
    if (this.ext.dsn) out.push('DSN');
    if (on('ENHANCEDSTATUSCODES')) out.push('ENHANCEDSTATUSCODES');
    if (this.ext.chunking) out.push('CHUNKING');
    if (on('ETRN')) out.push('ETRN');
    if (this.starttlsOffered()) out.push('STARTTLS');
    if (this.authOffered()) out.push(`AUTH ${this.authMechanisms().join(' ')}`);
    out.push('HELP');
    return out;
  }

  private starttlsOffered(): boolean {
    const t = this.peer.config.tls;
    return !this.#tls && (t === 'starttls' || t === 'require');
  }

  /** AUTH is offered on listeners with auth, over TLS (or without it when `smtp auth-without-tls`). */
  private authOffered(): boolean {
    return this.peer.config.auth !== 'none' && this.#authUser === undefined && (this.#tls || this.env.config.smtp.authWithoutTls);
  }

  private authMechanisms(): SaslMechanism[] {
    return saslMechanisms(this.env.auth.authenticator.cramAvailable(this.peer.config));
  }

  /* ------------------------------------------------- RSET, NOOP, QUIT … */

  async rsetCommand(arg: string): Promise<CommandResult> {
    if (arg.trim() !== '') return { reply: reply(501, '5.5.4', 'Syntax: RSET (no parameters)') };
    await this.resetTransaction();
    return { reply: reply(250, '2.0.0', 'Reset state') };
  }

  noopCommand(): CommandResult {
    return { reply: reply(250, '2.0.0', 'Ok') };
  }

  async quitCommand(): Promise<CommandResult> {
    await this.resetTransaction();
    return { reply: closing(reply(221, '2.0.0', `${this.peer.hostname} Bye`)) };
  }

  helpCommand(): CommandResult {
    const lines = this.env.config.smtp.help;
    return { reply: reply(214, '2.0.0', ...(lines.length > 0 ? lines : ['This is Postern. Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY EXPN ETRN', 'End of HELP info'])) };
  }

  async etrnCommand(arg: string): Promise<CommandResult> {
    // RFC 1985: "@domain" includes subdomains, "#name" is a queue name; the scheduler reads both.
    const node = arg.trim();
    if (node.replace(/^[@#]/, '') === '' || /[\s\x00-\x1f\x7f]/.test(node)) return { reply: reply(501, '5.5.4', 'Syntax: ETRN domain') };
    return { reply: await this.env.scheduler.etrn(node.toLowerCase()) };
  }

  /* ---------------------------------------------------------- STARTTLS */

  starttlsCommand(arg: string): CommandResult {
    if (arg.trim() !== '') return { reply: reply(501, '5.5.4', 'Syntax: STARTTLS (no parameters)') };
    const t = this.peer.config.tls;
    if (t !== 'starttls' && t !== 'require') return { reply: reply(502, '5.5.1', 'STARTTLS not available on this listener') };
    if (this.#tls) return { reply: reply(503, '5.5.1', 'TLS already active') };
    if (this.tx) return { reply: reply(503, '5.5.1', 'STARTTLS not allowed during a mail transaction') };
    return { reply: reply(220, '2.0.0', 'Ready to start TLS'), then: { mode: 'starttls' } };
  }

  /** RFC 3207 §4.2: after the handshake the session starts over; nothing learned before TLS is kept. */
  tlsEstablished(info: TlsInfo): void {
    this.#tls = true;
    this.#tlsInfo = info;
    this.#helo = undefined;
    this.#esmtp = false;
    this.#authUser = undefined;
    this.#sasl = undefined;
    void this.resetTransaction();
    this.enter('ready');
  }

  /* -------------------------------------------------------------- AUTH */

  async authCommand(arg: string): Promise<CommandResult> {
    const listener = this.peer.config;
    if (listener.auth === 'none') return { reply: reply(503, '5.5.1', 'Authentication not enabled') };
    if (!this.#esmtp) return { reply: reply(503, '5.5.1', 'Send EHLO first') };
    if (this.#authUser !== undefined) return { reply: reply(503, '5.5.1', 'Already authenticated') };
    if (this.tx) return { reply: reply(503, '5.5.1', 'AUTH not allowed during a mail transaction') };
    if (!this.#tls && !this.env.config.smtp.authWithoutTls) return { reply: reply(538, '5.7.11', 'Encryption required for requested authentication mechanism') };
    if (!this.env.auth.failrate.allowed(this.peer.address)) {
      this.env.log.event('smtp', 'authentication', { session: this.id, address: this.peer.address, result: 'throttled' });
      return { reply: reply(454, '4.7.0', 'Too many failed authentications from your address, try again later') };
    }
    const m = /^(\S+)(?:\s+(\S+))?\s*$/.exec(arg.trim());
    if (!m || m[1] === undefined) return { reply: reply(501, '5.5.4', 'Syntax: AUTH mechanism [initial-response]') };
    const mech = this.authMechanisms().find((x) => x === m[1]?.toUpperCase());
    if (mech === undefined) return { reply: reply(504, '5.5.4', 'Unrecognized authentication mechanism') };
    return this.authApply(await saslStart(mech, m[2], this.saslContext()));
  }

  /** A client line during AUTH. */
  async authContinue(line: string): Promise<CommandResult> {
    const ex = this.#sasl;
    if (!ex) return { reply: reply(503, '5.5.1', 'No authentication in progress') };
    return this.authApply(await saslContinue(ex, line, this.saslContext()));
  }

  private saslContext(): SaslContext {
    const listener = this.peer.config;
    const a = this.env.auth.authenticator;
    const smtp = this.env.config.smtp;
    return {
      credentials: { check: (user, password) => a.check(listener, user, password), cramSecret: (user) => a.cramSecret(listener, user) },
      usernamePrompt: smtp.authUsernamePrompt,
      passwordPrompt: smtp.authPasswordPrompt,
      challenge: () => `<${randomBytes(8).toString('hex')}.${Date.now()}@${this.peer.hostname}>`,
    };
  }

  /** Apply one step of the SASL exchange: keep its state, log, count failures; a failure's reply waits `smtp auth-fail-delay`. */
  private authApply(step: SaslStep): CommandResult {
    this.#sasl = step.kind === 'challenge' ? step.exchange : undefined;
    switch (step.kind) {
      case 'challenge':
        return { reply: step.reply, then: { mode: 'auth' } };
      case 'abandoned':
        return { reply: step.reply };
      case 'success':
        this.#authUser = step.user;
        this.env.stats.inc('smtp.auth.ok');
        this.env.log.event('smtp', 'authentication', { session: this.id, user: step.user, mechanism: step.mech, result: 'ok' });
        return { reply: reply(235, '2.7.0', 'Authentication successful') };
      case 'tempfail':
        this.env.log.event('smtp', 'authentication', { session: this.id, user: step.user, result: 'tempfail', reason: step.reason });
        return { reply: reply(454, '4.7.0', 'Temporary authentication failure') };
      case 'failure': {
        const n = this.env.auth.failrate.fail(this.peer.address);
        this.env.stats.inc('smtp.auth.fail');
        this.env.log.event('smtp', 'authentication', { session: this.id, address: this.peer.address, user: step.user, result: 'permfail', reason: step.reason, failures: n });
        const delay = this.env.config.smtp.authFailDelayMs;
        return { reply: step.reply ?? reply(535, '5.7.8', 'Authentication credentials invalid'), ...(delay > 0 ? { delayMs: delay } : {}) };
      }
    }
  }

  /* ------------------------------------------------------- MAIL, RCPT */

  async mailCommand(arg: string): Promise<CommandResult> {
    const listener = this.peer.config;
    if (listener.tls === 'require' && !this.#tls) return { reply: reply(530, '5.7.0', 'Must issue a STARTTLS command first') };
    if (this.#authUser === undefined && (listener.auth === 'required' || (this.env.runtime?.msaTrusted !== undefined && !this.env.runtime.msaTrusted(this.peer.address)))) {
      return { reply: reply(530, '5.7.0', 'Authentication required') };
    }
    const smtputf8 = this.ext.smtputf8 && /(^|\s)SMTPUTF8(\s|$)/i.test(arg);
    const path = parseMailFromArg(arg, { smtputf8, strict: this.strictPaths() });
    if (!path.ok) return { reply: path.reply };
    const params = parseMailParams(path.params, this.ext);
    if (!params.ok) return { reply: params.reply };
    if (this.#messages >= this.env.config.smtp.maxMails) {
      return { reply: reply(452, '4.5.3', 'Too many messages in this session, try again later') };
    }
    const free = await this.env.freeSpace();
    if (free < this.env.config.queue.minFreeSpace) {
      this.env.log.warn(`spool: ${free} bytes free, below the minimum of ${this.env.config.queue.minFreeSpace}: refusing mail`);
      return { reply: reply(452, '4.3.1', 'Insufficient system storage') };
    }
    const size = params.value.size;
    if (size !== undefined && size > free - this.env.config.queue.minFreeSpace) {
      return { reply: reply(452, '4.3.1', 'Insufficient system storage for a message of that size') };
    }
    const senderAddress = path.mailbox ? formatMailbox(path.mailbox) : '';
    const owned = this.senderOwned(senderAddress);
    if (owned !== true) return { reply: owned };
    const tx = newTransaction(path.mailbox, senderAddress, params.value, this.env.now());
    const v = await this.env.policy.mail(this.facts(), this.txFacts(tx));
    if (v.kind === 'reject') return refused(v);
    this.tx = tx;
    this.enter('mail');
    return { reply: reply(250, '2.1.0', 'Ok') };
  }

  /**
   * `listen … senders <table> [masquerade]`: an authenticated user may send only as the
   * addresses the table gives it (`user addr1, addr2, @domain`).
   */
  private senderOwned(sender: string): true | Reply {
    const senders = this.peer.config.senders;
    const user = this.#authUser;
    if (!senders || user === undefined) return true;
    const r = this.env.tables.lookup(senders.table, user);
    if (r.kind === 'error') return reply(451, '4.3.0', 'Temporary lookup failure, please try again later');
    if (r.kind === 'found' && sender !== '') {
      const allowed = r.value.split(/[\s,]+/).filter((x) => x !== '');
      const s = sender.toLowerCase();
      const domain = s.slice(s.lastIndexOf('@') + 1);
      if (allowed.some((a) => a.toLowerCase() === s || a.toLowerCase() === `@${domain}`)) return true;
    }
    this.env.log.event('smtp', 'rejected', { session: this.id, user, from: `<${sender}>`, reason: 'sender not owned by the authenticated user' });
    return reply(553, '5.7.1', 'Sender address not allowed for this authenticated user');
  }

  async rcptCommand(arg: string): Promise<CommandResult> {
    const tx = this.tx;
    if (!tx || tx.phase !== 'envelope') return { reply: reply(503, '5.5.1', 'Need MAIL before RCPT') };
    tx.attempted++;
    const path = parseRcptToArg(arg, { smtputf8: tx.params.smtputf8, strict: this.strictPaths() });
    if (!path.ok) return { reply: path.reply };
    if (!path.mailbox) return { reply: reply(553, '5.1.3', 'Null recipient not allowed') };
    const params = parseRcptParams(path.params, this.ext);
    if (!params.ok) return { reply: params.reply };
    if (tx.rcpts.length >= this.env.config.smtp.maxRcpt) return { reply: reply(452, '4.5.3', 'Too many recipients') };
    const d = await this.env.policy.rcpt(this.facts(), this.txFacts(tx), path.mailbox);
    if (this.tx !== tx) return { reply: reply(503, '5.5.1', 'Transaction ended') };
    if (d.kind === 'reject') {
      this.env.log.event('smtp', 'rejected', { session: this.id, to: `<${formatMailbox(path.mailbox)}>`, reason: d.verdict.reason });
      return refused(d.verdict);
    }
    const address = formatMailbox(path.mailbox);
    addRcpt(tx, { mailbox: path.mailbox, address, params: params.value, targets: d.targets });
    return { reply: reply(250, '2.1.5', 'Recipient ok') };
  }

  /** VRFY (VRFYcmd turns it on; with a ZMailer style it looks the address up only under flag "v"): would RCPT TO this address be accepted? */
  async vrfyCommand(arg: string): Promise<CommandResult> {
    if (arg.trim() === '') return { reply: reply(501, '5.5.4', 'Syntax: VRFY address') };
    if (!this.env.config.smtp.vrfy || (this.#style !== undefined && !this.#style.has('v'))) return { reply: reply(252, '2.1.5', 'Cannot VRFY user, but will accept message and attempt delivery') };
    const text = arg.trim();
    const path = parseRcptToArg(`TO:${text.startsWith('<') ? text : `<${text}>`}`, { smtputf8: this.ext.smtputf8, strict: false });
    if (!path.ok || !path.mailbox) return { reply: reply(501, '5.1.3', 'Bad address syntax') };
    const d = await this.env.policy.rcpt(this.facts(), { sender: null, params: { smtputf8: false }, rcptCount: 0 }, path.mailbox);
    if (d.kind === 'reject') return { reply: d.verdict.reply };
    return { reply: reply(250, '2.1.5', `<${formatMailbox(path.mailbox)}>`) };
  }

  /** EXPN (EXPNcmd turns it on; it expands only under a ZMailer style with flag "e"): where mail to this address goes. */
  async expnCommand(arg: string): Promise<CommandResult> {
    if (!this.env.config.smtp.expn) return { reply: reply(502, '5.5.1', 'EXPN command not available') };
    if (arg.trim() === '') return { reply: reply(501, '5.5.4', 'Syntax: EXPN list') };
    if (this.#style?.has('e') !== true) return { reply: reply(252, '2.1.5', 'Cannot EXPN, but will accept message and attempt delivery') };
    const text = arg.trim();
    const path = parseRcptToArg(`TO:${text.startsWith('<') ? text : `<${text}>`}`, { smtputf8: this.ext.smtputf8, strict: false });
    if (!path.ok || !path.mailbox) return { reply: reply(501, '5.1.3', 'Bad address syntax') };
    const d = await this.env.policy.rcpt(this.facts(), { sender: null, params: { smtputf8: false }, rcptCount: 0 }, path.mailbox);
    if (d.kind === 'reject') return { reply: d.verdict.reply };
    const lines = d.targets.slice(0, 100).map((t) => `<${t.address}>`);
    return { reply: reply(250, '2.1.5', ...(lines.length > 0 ? lines : [`<${formatMailbox(path.mailbox)}>`])) };
  }

  /* --------------------------------------------------------------- DATA */

  async dataCommand(arg: string): Promise<CommandResult> {
    if (arg.trim() !== '') return { reply: reply(501, '5.5.4', 'Syntax: DATA (no parameters)') };
    const tx = this.tx;
    if (!tx || tx.phase !== 'envelope') return { reply: reply(503, '5.5.1', 'Need MAIL command') };
    if (tx.rcpts.length === 0) {
      return { reply: tx.attempted > 0 ? reply(554, '5.5.1', 'No valid recipients') : reply(503, '5.5.1', 'Need RCPT command') };
    }
    const v = await this.env.policy.data(this.facts(), this.txFacts(tx));
    if (v.kind === 'reject') return refused(v);
    const content = await this.openContent(tx);
    if (!('writer' in content)) return { reply: content };
    this.tx = { ...envelopeOf(tx), phase: 'data', ...content };
    this.enter('data');
    return { reply: reply(354, undefined, 'End data with <CR><LF>.<CR><LF>'), then: { mode: 'data', maxSize: this.env.config.smtp.maxMessageSize } };
  }

  /** openMessage for a transaction that may end while the spool creates the file (a disconnect): then the file goes again. */
  private async openContent(tx: EnvelopeTx): Promise<MessageContent | Reply> {
    const content = await this.openMessage(tx);
    if ('writer' in content && this.tx !== tx) {
      await content.writer.abort().catch(() => undefined);
      return reply(503, '5.5.1', 'Transaction ended');
    }
    return content;
  }

  /** Decoded DATA content or normalized BDAT content: scan headers, store. */
  content(chunk: Buffer): Promise<void> | void {
    const tx = this.tx;
    if (!tx || (tx.phase !== 'data' && tx.phase !== 'bdat') || tx.storeError || tx.overflow) return;
    tx.headers.push(chunk);
    tx.contentBytes += chunk.length;
    if (tx.contentBytes > this.env.config.smtp.maxMessageSize) {
      tx.overflow = true;
      return;
    }
    try {
      if (tx.fromRewriter) for (const b of tx.fromRewriter.push(chunk)) tx.writer.write(b);
      else tx.writer.write(chunk);
    } catch (e) {
      tx.storeError = (e as Error).message;
      return;
    }
    return tx.writer.drain().catch((e: Error) => {
      tx.storeError = e.message;
    });
  }

  async dataEnd(info: DataEndInfo): Promise<Reply> {
    const tx = this.tx;
    if (!tx || tx.phase !== 'data') return reply(451, '4.3.0', 'Transaction lost');
    const smtp = this.env.config.smtp;
    let refusal: Reply | undefined;
    if (info.overflow || tx.overflow) refusal = tooBig();
    else if (info.nul) refusal = reply(550, '5.6.0', 'Message contains NUL characters');
    else if ((info.bareLf || info.bareCr) && smtp.bareNewline === 'reject') refusal = reply(550, '5.5.2', 'Message contains bare CR or LF characters');
    return this.endMessage(tx, refusal);
  }

  /** finishMessage, and an accepted message starts the junk-command count again (as Postfix's does). */
  private async endMessage(tx: ContentTx, refusal: Reply | undefined): Promise<Reply> {
    const accepted = this.#messages;
    const r = await this.finishMessage(tx, refusal);
    if (this.#messages > accepted) this.#junkCommands = 0;
    return r;
  }

  /* --------------------------------------------------------------- BDAT */

  /**
   * BDAT n [LAST] (RFC 3030). The chunk is always read, whatever the reply
   * (§4.1), and answered once read — except a chunk that would take the
   * message past the size limit: 552 at once, then its bytes are read and
   * thrown away; one too large to read (BDAT_DISCARD_MAX) ends the session.
   */
  async bdatCommand(arg: string): Promise<CommandResult> {
    const m = /^(\d{1,15})(?:\s+(LAST))?\s*$/i.exec(arg.trim());
    if (!m || m[1] === undefined) {
      // Without a size we cannot tell where the chunk ends: the rest of the stream is unusable.
      return { reply: closing(reply(501, '5.5.4', 'Syntax: BDAT size [LAST]; closing connection')) };
    }
    const n = Number(m[1]);
    const last = m[2] !== undefined;
    const max = this.env.config.smtp.maxMessageSize;
    if (n > Math.max(max, BDAT_DISCARD_MAX)) {
      await this.resetTransaction();
      return { reply: closing(tooBig()) };
    }
    const tx = this.tx;
    if (!tx || tx.phase === 'bdat-refused' || tx.phase === 'data' || tx.rcpts.length === 0) {
      // RFC 3030 §4.1: the chunk is read (and discarded) whatever the reply.
      this.#chunk = { store: false, reply: bdatFailure(tx), last };
      return { then: { mode: 'bytes', n } };
    }
    if ((tx.phase === 'bdat' ? tx.contentBytes : 0) + n > max) {
      // Refused before it is read; every further chunk up to LAST gets the same reply.
      await abortTransaction(tx);
      this.tx = { ...envelopeOf(tx), phase: 'bdat-refused', failure: tooBig() };
      this.#chunk = { store: false, last };
      if (this.#state !== 'bdat') this.enter('bdat');
      return { reply: tooBig(), then: { mode: 'bytes', n } };
    }
    if (tx.phase === 'bdat') {
      tx.last = last;
    } else {
      const v = await this.env.policy.data(this.facts(), this.txFacts(tx));
      const content = v.kind === 'reject' ? v.reply : await this.openContent(tx);
      if (!('writer' in content)) {
        this.#chunk = { store: false, reply: content, last };
        return { then: { mode: 'bytes', n } };
      }
      this.tx = { ...envelopeOf(tx), phase: 'bdat', ...content, normalizer: new LineEndingNormalizer(this.env.config.smtp.bareNewline), last };
    }
    this.#chunk = { store: true };
    this.enter('bdat');
    return { then: { mode: 'bytes', n } };
  }

  bdatChunk(chunk: Buffer): Promise<void> | void {
    const tx = this.tx;
    if (!this.#chunk?.store || tx?.phase !== 'bdat') return;
    const out: Buffer[] = [];
    tx.normalizer.push(chunk, out);
    let p: Promise<void> | void = undefined;
    for (const b of out) p = this.content(b);
    return p;
  }

  /** The chunk is read: its reply (none when it was answered before it was read). */
  async bdatEnd(n: number): Promise<Reply | undefined> {
    const fate = this.#chunk;
    this.#chunk = undefined;
    if (fate && !fate.store) {
      if (fate.last) await this.resetTransaction();
      return fate.reply;
    }
    const tx = this.tx;
    if (!tx || tx.phase !== 'bdat') return reply(503, '5.5.1', 'No BDAT transaction');
    if (!tx.last) return reply(250, '2.0.0', `${n} octets received`);
    const out: Buffer[] = [];
    const norm = tx.normalizer;
    norm.end(out);
    for (const b of out) await this.content(b);
    let refusal: Reply | undefined;
    if (tx.overflow) refusal = tooBig();
    else if (norm.nul) refusal = reply(550, '5.6.0', 'Message contains NUL characters');
    else if ((norm.bareLf || norm.bareCr) && this.env.config.smtp.bareNewline === 'reject') refusal = reply(550, '5.5.2', 'Message contains bare CR or LF characters');
    return this.endMessage(tx, refusal);
  }

  /* ----------------------------------------------------- message commit */

  /** Allocate the spool file and write our Received: header. Returns the content part of the transaction, or a failure reply. */
  private async openMessage(tx: EnvelopeTx): Promise<MessageContent | Reply> {
    let writer: MessageWriter;
    try {
      writer = await this.env.spool.createMessage();
    } catch (e) {
      this.env.log.error(`spool: cannot create a message: ${(e as Error).message}`);
      return reply(451, '4.3.0', 'Temporary failure in the queue, try again later');
    }
    const headers = new HeaderScanner();
    const fromRewriter = this.peer.config.senders?.masquerade && this.authUser !== undefined && tx.senderAddress !== '' ? new FromRewriter(tx.senderAddress) : undefined;
    const single = tx.rcpts.length === 1 ? tx.rcpts[0]?.address : undefined;
    const h = receivedHeader({
      helo: this.helo,
      rdns: this.rdns,
      ip: this.peer.address,
      hostname: this.peer.hostname,
      proto: this.proto(tx),
      msgid: writer.msgid,
      rcpt: single,
      tls: this.receivedTls(),
      date: new Date(this.env.now()),
      maskSource: this.peer.config.maskSrc,
    });
    writer.write(Buffer.from(h, 'utf8'));
    return { writer, headers, ...(fromRewriter ? { fromRewriter } : {}), contentBytes: 0, overflow: false };
  }

  /** The TLS part of our Received: header (ZMailer's rcvd-tls-mode / rcvd-tls-peer decide with a ZMailer file). */
  private receivedTls(): string | undefined {
    const t = this.tlsInfo;
    const show = this.env.runtime?.received ?? { tlsMode: true, tlsPeer: true };
    if (!t || !show.tlsMode) return undefined;
    return `using ${t.version} with cipher ${t.cipher}${t.peer && show.tlsPeer ? `, client certificate ${t.peer}` : ''}`;
  }

  private proto(tx: Transaction): string {
    return protocolName({ esmtp: this.esmtp, tls: this.tls, auth: this.authUser !== undefined, utf8: tx.params.smtputf8 });
  }

  private async finishMessage(tx: ContentTx, refusal: Reply | undefined): Promise<Reply> {
    const smtp = this.env.config.smtp;
    // Everything written reaches the incoming/ file first (the content filter reads it there).
    if (!refusal && tx.writer && !tx.storeError) {
      await tx.writer.drain().catch((e: Error) => {
        tx.storeError = e.message;
      });
    }
    if (tx.fromRewriter && tx.writer && !tx.overflow && !tx.storeError) {
      for (const b of tx.fromRewriter.end()) tx.writer.write(b);
    }
    if (!refusal && tx.storeError) {
      this.env.log.error(`spool: write failed: ${tx.storeError}`);
      refusal = reply(451, '4.3.0', 'Temporary failure in the queue, try again later');
    }
    if (!refusal && (tx.headers?.receivedCount ?? 0) > smtp.maxReceivedHeaders) {
      refusal = reply(554, '5.4.6', 'Too many Received: headers: mail loop detected');
    }
    let decision: CommitDecision | undefined;
    if (!refusal) {
      decision = await this.env.policy.commit(this.facts(), this.txFacts(tx), { size: tx.writer?.size ?? 0, receivedHeaders: tx.headers?.receivedCount ?? 0, msgid: tx.writer?.msgid });
      if (decision.kind === 'reject') {
        refusal = decision.verdict.reply;
        this.env.log.event('smtp', 'rejected', { session: this.id, msgid: tx.writer?.msgid, reason: decision.verdict.reason });
      } else if (decision.kind === 'discard') {
        this.env.log.event('smtp', 'discarded', { session: this.id, msgid: tx.writer?.msgid, from: `<${tx.senderAddress}>`, reason: decision.reason });
        await this.resetTransaction();
        return decision.reply;
      }
    }
    if (refusal || !tx.writer) {
      await this.resetTransaction();
      return refusal ?? reply(451, '4.3.0', 'Transaction lost');
    }
    // From here on the message belongs to this commit: a disconnect cannot abort it half-way.
    const writer = tx.writer;
    this.tx = undefined;
    const evpids = new Set<string>();
    const evpid = (): string => {
      const id = newEvpid(writer.msgid, evpids);
      evpids.add(id);
      return id;
    };
    let env: Envelope;
    try {
      env = await writer.commit({
        sender: tx.senderAddress,
        recipients: envelopeRecipients(tx, evpid),
        ret: tx.params.ret,
        envid: tx.params.envid,
        body: tx.params.body ?? '7BIT',
        smtputf8: tx.params.smtputf8,
        mailAuth: tx.params.auth,
        arrival: tx.startedAt,
        client: {
          address: this.peer.address,
          port: this.peer.port,
          hostname: this.rdns,
          helo: this.helo,
          proto: this.proto(tx),
          authUser: this.authUser,
          tag: this.peer.tag,
          listener: this.peer.listener,
          ...(this.tlsInfo ? { tls: this.tlsInfo } : {}),
        },
      });
    } catch (e) {
      this.env.log.error(`spool: commit of ${writer.msgid} failed: ${(e as Error).message}`);
      await writer.abort().catch(() => undefined);
      await this.resetTransaction();
      return reply(451, '4.3.0', 'Temporary failure in the queue, try again later');
    }
    if (this.tx === tx) this.tx = undefined;
    const hold = decision?.kind === 'accept' ? decision.hold : undefined;
    if (hold !== undefined && !(await this.recordHeld(env, hold))) {
      if (this.state !== 'closed') this.enter('helo');
      return reply(451, '4.3.0', 'Temporary failure in the queue, try again later');
    }
    this.messages++;
    if (this.state !== 'closed') this.enter('helo');
    this.logAccepted(env);
    this.env.scheduler.enqueued(env, hold !== undefined ? { held: true } : undefined);
    if (decision?.kind === 'accept' && decision.reply) return decision.reply;
    return reply(250, '2.0.0', `${env.msgid} Message accepted for delivery`);
  }

  /**
   * A frozen message (content filter): record "held" for every recipient
   * before anyone can try it. If that fails the message is removed again
   * and the client told to retry. (A crash between the commit and these
   * records leaves the message unheld at the next start: the envelope has
   * no field for it.)
   */
  private async recordHeld(env: Envelope, reason: string): Promise<boolean> {
    const at = this.env.now();
    try {
      for (const r of env.recipients) await this.env.spool.appendOutcome(r.evpid, { kind: 'held', at });
    } catch (e) {
      this.env.log.error(`spool: cannot hold ${env.msgid}: ${(e as Error).message}; message removed`);
      await this.env.spool.remove(env.msgid).catch(() => undefined);
      return false;
    }
    this.env.log.event('smtp', 'held', { session: this.id, msgid: env.msgid, reason });
    return true;
  }

  private logAccepted(env: Envelope): void {
    const log = this.env.log;
    const stats = this.env.stats;
    stats.inc('smtp.message');
    stats.inc('smtp.message.bytes', env.size);
    log.event('smtp', 'message', { session: this.id, msgid: env.msgid, from: `<${env.sender}>`, size: env.size, nrcpt: env.recipients.length, proto: env.client.proto });
    for (const r of env.recipients) {
      log.event('smtp', 'envelope', { session: this.id, msgid: env.msgid, evpid: r.evpid, from: `<${env.sender}>`, to: `<${r.address}>`, action: r.action });
    }
  }
}

/** The command table, its handlers the methods of Session (smtp/commands.ts). */
const COMMANDS = commandTable(Session.prototype);

/** One envelope per final destination; copies of one destination reached twice are kept once. */
function envelopeRecipients(tx: Transaction, evpid: () => string): EnvelopeRecipient[] {
  const out: EnvelopeRecipient[] = [];
  const seen = new Set<string>();
  const single = tx.rcpts.length === 1 && tx.rcpts[0]?.targets.length === 1;
  for (const r of tx.rcpts) {
    for (const t of r.targets) {
      if (!single) {
        const key = `${t.action}|${JSON.stringify(t.dest)}|${t.dest.kind === 'remote' ? t.address.toLowerCase() : ''}`;
        if (seen.has(key)) continue;
        seen.add(key);
      }
      out.push({
        evpid: evpid(),
        address: t.address,
        ...(t.address.toLowerCase() !== r.address.toLowerCase() ? { original: r.address } : {}),
        orcpt: r.params.orcpt,
        notify: r.params.notify,
        action: t.action,
        rule: t.rule,
        dest: t.dest,
      });
    }
  }
  return out;
}
