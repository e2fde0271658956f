/*
 * smtp/session-core.ts — what a session is between commands: its state
 * (changed only through enter(), which traces "old -> new"), what it learnt
 * (HELO name, TLS, the authenticated user, the ZMailer style), the open
 * transaction, and the counters behind its limits (unknown and junk
 * commands). Other modules read all of it through getters; only the
 * session's own layers (smtp/session-commands.ts, smtp/session.ts) change it.
 *
 * NOOP, RSET, VRFY, HELP and unknown commands count towards
 * `smtp limit max-junk-commands` (Postfix's smtpd_junk_command_limit);
 * past it the session answers 421 4.7.0 and ends. As in Postfix, an
 * accepted message starts the count again.
 */
import type { SessionFacts, TxFacts } from '../policy/policy.js';
import type { StyleFlag } from '../policy/zmailer/helo-patterns.js';
import type { ExtensionsOn } from '../mail/params.js';
import { reply, closing, type Reply } from '../mail/reply.js';
import { abortTransaction, type Transaction } from './transaction.js';
import type { CommandResult, SessionState } from './commands.js';
import type { SessionEnv, PeerInfo, TlsInfo } from './session-env.js';
import type { SaslExchange } from './sasl.js';
import { PROCEED, type FilterSession, type FilterVerdict, type SessionReport } from '../filter/filter.js';

export abstract class SessionCore {
  #state: SessionState = 'connect';
  #helo?: string;
  #esmtp = false;
  #rdns?: string;
  #tls = false;
  #tlsInfo?: TlsInfo;
  #authUser?: string;
  /** The AUTH exchange in progress (smtp/sasl.ts). */
  protected sasl?: SaslExchange;
  protected tx?: Transaction;
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
  protected set helo(v: string | undefined) {
    this.#helo = v;
  }
  get esmtp(): boolean {
    return this.#esmtp;
  }
  protected set esmtp(v: boolean) {
    this.#esmtp = v;
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
  protected set authUser(v: string | undefined) {
    this.#authUser = v;
  }
  /** Messages accepted in this session. */
  get messages(): number {
    return this.#messages;
  }
  protected set messages(n: number) {
    this.#messages = n;
  }
  get style(): ReadonlySet<StyleFlag> | undefined {
    return this.#style;
  }
  protected set style(v: ReadonlySet<StyleFlag> | undefined) {
    this.#style = v;
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

  #filter?: FilterSession;

  /** Ask the listener's filters (filter/) at a phase, after the policy passed; a refusal is logged here, applied by the caller. */
  protected async filterAt(command: string, ask: (f: FilterSession) => Promise<FilterVerdict>): Promise<FilterVerdict> {
    const f = this.#filter;
    if (!f) return PROCEED;
    const v = await ask(f);
    if (v.kind === 'reject') this.env.log.event('smtp', 'failed-command', { session: this.id, address: this.peer.address, command, result: `${v.reply.code} ${v.reply.lines[0] ?? ''}`, reason: v.reason });
    return v;
  }

  /** Tell the filters what happened (filter processes' report stream); nothing without filters. */
  report(e: SessionReport): void {
    this.#filter?.report?.(e);
  }

  /** Whether anything follows the session's events (the connection then reports each command and reply line). */
  get reported(): boolean {
    return this.#filter?.report !== undefined;
  }

  /** The filters, for the front door (they see the message before its commit). */
  protected get filter(): FilterSession | undefined {
    return this.#filter;
  }

  protected enter(next: SessionState): void {
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
    this.#filter?.close();
    this.enter('closed');
  }

  /** Strict RFC 5321 paths: `-s strict`, or a ZMailer style without S (sloppy). */
  protected strictPaths(): boolean {
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
      ...(this.peer.whoson ? { whoson: this.peer.whoson } : {}),
    };
  }

  protected txFacts(tx: Transaction): TxFacts {
    return { sender: tx.sender, params: tx.params, rcptCount: tx.rcpts.length };
  }

  extensionOn(name: string): boolean {
    return !this.disabled.has(name);
  }

  /** Drop the transaction (RSET, EHLO, end of message, disconnect). */
  async resetTransaction(): Promise<void> {
    const tx = this.tx;
    this.tx = undefined;
    if (tx) {
      this.#filter?.abort();
      await abortTransaction(tx);
    }
    if (this.#state === 'mail' || this.#state === 'data' || this.#state === 'bdat') this.enter('helo');
  }

  /* ---------------------------------------------------------- greeting */

  async greet(): Promise<CommandResult & { readonly reply: Reply }> {
    const v = await this.env.policy.connect(this.facts());
    if (v.kind === 'reject') {
      this.env.log.event('smtp', 'failed-command', { session: this.id, address: this.peer.address, command: '(connect)', result: `${v.reply.code} ${v.reply.lines[0] ?? ''}`, reason: v.reason });
      return { reply: closing(v.reply), ...(v.delayMs ? { delayMs: v.delayMs } : {}) };
    }
    this.#filter = this.env.filters?.open(this.peer.config.filter, this.peer.hostname);
    const fv = await this.filterAt('(connect)', (f) => f.connect(this.facts()));
    if (fv.kind === 'reject') return { reply: closing(fv.reply) };
    this.enter('ready');
    const greeting = this.env.runtime?.greeting;
    if (greeting) {
      const lines = greeting({ hostname: this.peer.hostname, clientAddress: this.peer.address, localPort: this.peer.localPort ?? 0 });
      return { reply: reply(220, undefined, ...lines) };
    }
    const banner = this.env.config.smtp.banner ?? 'ESMTP Postern';
    return { reply: reply(220, undefined, `${this.peer.hostname} ${banner}`) };
  }

  protected unknown(): Reply {
    this.#unknownCommands++;
    if (this.#unknownCommands >= this.env.config.smtp.maxUnknownCommands) {
      return closing(reply(421, '4.7.0', `${this.peer.hostname} Too many unrecognized commands, closing connection`));
    }
    return this.junk() ?? reply(500, '5.5.1', 'Command unrecognized');
  }

  /** Count a junk command; past `smtp limit max-junk-commands` (0: no limit), the 421 that ends the session. */
  protected junk(): Reply | undefined {
    this.#junkCommands++;
    const limit = this.env.config.smtp.maxJunkCommands;
    if (limit > 0 && this.#junkCommands > limit) return closing(reply(421, '4.7.0', `${this.peer.hostname} Too many junk commands, closing connection`));
    return undefined;
  }

  /** An accepted message starts the junk-command count again (as Postfix's does). */
  protected junkReset(): void {
    this.#junkCommands = 0;
  }

  lineTooLong(): Reply {
    this.#unknownCommands++;
    if (this.#unknownCommands >= this.env.config.smtp.maxUnknownCommands) {
      return closing(reply(421, '4.7.0', `${this.peer.hostname} Too many errors, closing connection`));
    }
    return reply(500, '5.5.2', 'Line too long');
  }

  timeout(): Reply {
    this.report({ kind: 'timeout' });
    return closing(reply(421, '4.4.2', `${this.peer.hostname} Timeout exceeded, closing connection`));
  }

  /** RFC 3207 §4.2: after the handshake the session starts over; nothing learned before TLS is kept. */
  tlsEstablished(info: TlsInfo): void {
    this.report({ kind: 'tls', version: info.version, cipher: info.cipher });
    this.#tls = true;
    this.#tlsInfo = info;
    this.#helo = undefined;
    this.#esmtp = false;
    this.#authUser = undefined;
    this.sasl = undefined;
    void this.resetTransaction();
    this.enter('ready');
  }
}
