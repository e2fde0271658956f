/*
 * smtp/session.ts — the SMTP session state machine (RFC 5321, 1869, 2920,
 * 3030, 3461, 6152, 6531).
 *
 * Commands return replies as values; the connection (smtp/connection.ts)
 * writes them and owns the socket, timers and input framing. The command
 * table (smtp/commands.ts) says in which states a verb is valid; every
 * state change goes through enter(), which can trace "old -> new".
 *
 *   connect ──greet──> ready ──HELO/EHLO──> helo ──MAIL──> mail ──RCPT…──> mail
 *        mail ──DATA──> data ──"."──> helo        mail ──BDAT──> bdat ──LAST──> helo
 *
 * Nothing is acknowledged before the spool says it is on disk: the 250
 * after DATA/BDAT LAST is built only once MessageWriter.commit() resolved.
 *
 * The policy files (policy/build.ts) reach the session as a SessionRuntime:
 * the hdr220 greeting, EHLO and multi-line replies on or off, and ZMailer's
 * style flags (v: VRFY looks up, e: EXPN expands, S: sloppy syntax and MAIL
 * before HELO; without S, strict RFC 5321 paths). A verdict's delay comes
 * back as CommandResult.delayMs; the connection does the waiting.
 */
import type { Config, Listener } from '../config/model.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { FailRate } from '../auth/failrate.js';
import type { TableRegistry } from '../table/table.js';
import { randomBytes } from 'node:crypto';
import { cramMd5Matches } from '../auth/hash.js';
import type { MailLog } from '../log/maillog.js';
import type { Policy, SessionFacts, TxFacts } from '../policy/policy.js';
import type { FrontDoor } from '../queue/enqueue.js';
import type { Verdict } from '../policy/verdict.js';
import type { StyleFlag } from '../policy/zmailer/helo-patterns.js';
import type { Stats } from '../stats.js';
import { LineEndingNormalizer } from '../wire/line-endings.js';
import { parseMailFromArg, parseRcptToArg, formatMailbox } from '../mail/address.js';
import { parseMailParams, parseRcptParams, type ExtensionsOn } from '../mail/params.js';
import { reply, closing, type Reply } from '../mail/reply.js';
import { Transaction } from './transaction.js';
import { FromRewriter } from './masquerade.js';
import { receivedHeader, protocolName } from './received.js';
import { COMMANDS, type SessionState } from './commands.js';
import { SessionRuntime } from '../policy/runtime.js';
import { SchedulerSeam } from '../queue/seam.js';

export type { SessionState } from './commands.js';

export interface SessionEnv {
  readonly config: Config;
  readonly log: MailLog;
  /** The one way into the queue (queue/enqueue.ts). */
  readonly queue: FrontDoor;
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

/** An AUTH exchange in progress (RFC 4954): what the next client line answers. */
type AuthStep =
  | { readonly mech: 'PLAIN' }
  | { readonly mech: 'LOGIN'; readonly user?: string }
  | { readonly mech: 'CRAM-MD5'; readonly challenge: string };

/** What a command asks of the connection besides writing its reply. */
export interface CommandResult {
  readonly reply?: Reply;
  /** Switch the framer: DATA content follows, or a BDAT chunk of n bytes. */
  readonly then?:
    | { readonly mode: 'data'; readonly maxSize: number }
    | { readonly mode: 'bytes'; readonly n: number }
    /** Upgrade the connection to TLS after writing the reply; discard anything buffered. */
    | { readonly mode: 'starttls' }
    /** The next line is an AUTH response, not a command (never logged). */
    | { readonly mode: 'auth' };
  /** Wait this long before writing the reply (noto_delay, deny_delay). */
  readonly delayMs?: number;
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

export class Session {
  state: SessionState = 'connect';
  helo?: string;
  esmtp = false;
  rdns?: string;
  tls = false;
  tlsInfo?: TlsInfo;
  authUser?: string;
  private authStep?: AuthStep;
  tx?: Transaction;
  unknownCommands = 0;
  messages = 0;
  /** ZMailer style flags in force (from the HELO pattern, or the default); undefined without a ZMailer file. */
  style?: ReadonlySet<StyleFlag>;
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
    this.style = env.runtime?.style?.(undefined);
  }

  /** Strict RFC 5321 paths: `-s strict`, or a ZMailer style without S (sloppy). */
  private strictPaths(): boolean {
    return this.env.runtime?.strict === true || (this.style !== undefined && !this.style.has('S'));
  }

  /* ---------------------------------------------------------- plumbing */

  enter(next: SessionState): void {
    if (this.env.log.tracing('smtp')) this.env.log.trace('smtp', `session ${this.id}: ${this.state} -> ${next}`);
    this.state = next;
  }

  facts(): SessionFacts {
    return {
      id: this.id,
      clientAddress: this.peer.address,
      clientPort: this.peer.port,
      fromSocket: this.peer.fromSocket,
      rdns: this.rdns,
      helo: this.helo,
      esmtp: this.esmtp,
      tls: this.tls,
      authUser: this.authUser,
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
    if (tx) await tx.abort();
    if (this.state === 'mail' || this.state === 'data' || this.state === 'bdat') this.enter('helo');
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
    const sloppy = spec.sloppyStates?.includes(this.state) === true && this.style?.has('S') === true;
    if (!spec.states.includes(this.state) && !sloppy) return { reply: spec.sequenceError(this) };
    return spec.run(this, arg);
  }

  unknown(): Reply {
    this.unknownCommands++;
    if (this.unknownCommands >= this.env.config.smtp.maxUnknownCommands) {
      return closing(reply(421, '4.7.0', `${this.peer.hostname} Too many unrecognized commands, closing connection`));
    }
    return reply(500, '5.5.1', 'Command unrecognized');
  }

  lineTooLong(): Reply {
    this.unknownCommands++;
    if (this.unknownCommands >= this.env.config.smtp.maxUnknownCommands) {
      return closing(reply(421, '4.7.0', `${this.peer.hostname} Too many errors, closing connection`));
    }
    return reply(500, '5.5.2', 'Line too long');
  }

  timeout(): Reply {
    return closing(reply(421, '4.4.2', `${this.peer.hostname} Timeout exceeded, closing connection`));
  }

  async helloCommand(arg: string, extended: boolean): Promise<CommandResult> {
    const name = arg.trim();
    if (name === '') return { reply: reply(501, '5.5.4', `Syntax: ${extended ? 'EHLO' : 'HELO'} hostname`) };
    if (name.length > 255 || /[\s\x00-\x1f\x7f]/.test(name)) return { reply: reply(501, '5.5.2', 'Invalid domain name') };
    if (extended && this.env.runtime?.ehlo === false) return { reply: reply(502, '5.5.1', 'EHLO not available, use HELO') };
    await this.resetTransaction();
    const v = await this.env.policy.helo(this.facts(), name);
    if (v.kind === 'reject') return refused(v);
    this.helo = name;
    this.esmtp = extended;
    if (this.env.runtime?.style) this.style = this.env.runtime.style(name);
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
    return !this.tls && (t === 'starttls' || t === 'require');
  }

  /** AUTH is offered on listeners with auth, over TLS (or without it when `smtp auth-without-tls`). */
  private authOffered(): boolean {
    return this.peer.config.auth !== 'none' && this.authUser === undefined && (this.tls || this.env.config.smtp.authWithoutTls);
  }

  private authMechanisms(): string[] {
    const m = ['PLAIN', 'LOGIN'];
    if (this.env.auth.authenticator.cramAvailable(this.peer.config)) m.push('CRAM-MD5');
    return m;
  }

  /* ---------------------------------------------------------- STARTTLS */

  starttlsCommand(arg: string): CommandResult {
    if (arg.trim() !== '') return { reply: reply(501, '5.5.4', 'Syntax: STARTTLS (no parameters)') };
    const t = this.peer.config.tls;
    if (t !== 'starttls' && t !== 'require') return { reply: reply(502, '5.5.1', 'STARTTLS not available on this listener') };
    if (this.tls) return { reply: reply(503, '5.5.1', 'TLS already active') };
    if (this.tx) return { reply: reply(503, '5.5.1', 'STARTTLS not allowed during a mail transaction') };
    return { reply: reply(220, '2.0.0', 'Ready to start TLS'), then: { mode: 'starttls' } };
  }

  /** RFC 3207 §4.2: after the handshake the session starts over; nothing learned before TLS is kept. */
  tlsEstablished(info: TlsInfo): void {
    this.tls = true;
    this.tlsInfo = info;
    this.helo = undefined;
    this.esmtp = false;
    this.authUser = undefined;
    this.authStep = undefined;
    void this.resetTransaction();
    this.enter('ready');
  }

  /* -------------------------------------------------------------- AUTH */

  async authCommand(arg: string): Promise<CommandResult> {
    const listener = this.peer.config;
    if (listener.auth === 'none') return { reply: reply(503, '5.5.1', 'Authentication not enabled') };
    if (!this.esmtp) return { reply: reply(503, '5.5.1', 'Send EHLO first') };
    if (this.authUser !== undefined) return { reply: reply(503, '5.5.1', 'Already authenticated') };
    if (this.tx) return { reply: reply(503, '5.5.1', 'AUTH not allowed during a mail transaction') };
    if (!this.tls && !this.env.config.smtp.authWithoutTls) return { reply: reply(538, '5.7.11', 'Encryption required for requested authentication mechanism') };
    if (!this.env.auth.failrate.allowed(this.peer.address)) {
      this.env.log.event('smtp', 'authentication', { session: this.id, address: this.peer.address, result: 'throttled' });
      return { reply: reply(454, '4.7.0', 'Too many failed authentications from your address, try again later') };
    }
    const m = /^(\S+)(?:\s+(\S+))?\s*$/.exec(arg.trim());
    if (!m || m[1] === undefined) return { reply: reply(501, '5.5.4', 'Syntax: AUTH mechanism [initial-response]') };
    const mech = m[1].toUpperCase();
    const initial = m[2];
    if (!this.authMechanisms().includes(mech)) return { reply: reply(504, '5.5.4', 'Unrecognized authentication mechanism') };
    switch (mech) {
      case 'PLAIN':
        this.authStep = { mech: 'PLAIN' };
        if (initial !== undefined) return this.authContinue(initial);
        return { reply: reply(334, undefined, ''), then: { mode: 'auth' } };
      case 'LOGIN':
        this.authStep = { mech: 'LOGIN' };
        if (initial !== undefined) return this.authContinue(initial);
        return this.prompt(this.env.config.smtp.authUsernamePrompt);
      default: {
        const challenge = `<${randomBytes(8).toString('hex')}.${Date.now()}@${this.peer.hostname}>`;
        this.authStep = { mech: 'CRAM-MD5', challenge };
        if (initial !== undefined) return this.authFailed('initial response not allowed with CRAM-MD5', reply(501, '5.5.4', 'CRAM-MD5 takes no initial response'));
        return this.prompt(challenge);
      }
    }
  }

  private prompt(text: string): CommandResult {
    return { reply: reply(334, undefined, Buffer.from(text, 'utf8').toString('base64')), then: { mode: 'auth' } };
  }

  /** A client line during AUTH. */
  async authContinue(line: string): Promise<CommandResult> {
    const step = this.authStep;
    if (!step) return { reply: reply(503, '5.5.1', 'No authentication in progress') };
    if (line === '*') {
      this.authStep = undefined;
      return { reply: reply(501, '5.7.0', 'Authentication cancelled') };
    }
    const data = decodeBase64(line);
    if (data === undefined) {
      this.authStep = undefined;
      return { reply: reply(501, '5.5.2', 'Invalid base64 data') };
    }
    switch (step.mech) {
      case 'PLAIN': {
        const parts = data.toString('utf8').split('\0');
        if (parts.length !== 3) return this.authFailed('malformed PLAIN response', reply(501, '5.5.2', 'Malformed PLAIN response'));
        const [authzid, user, password] = parts as [string, string, string];
        if (authzid !== '' && authzid !== user) return this.authFailed(`proxy authorization to ${authzid} refused`, undefined, user);
        return this.authVerify(user, password);
      }
      case 'LOGIN':
        if (step.user === undefined) {
          this.authStep = { mech: 'LOGIN', user: data.toString('utf8') };
          return this.prompt(this.env.config.smtp.authPasswordPrompt);
        }
        return this.authVerify(step.user, data.toString('utf8'));
      case 'CRAM-MD5': {
        const m = /^(\S+) ([0-9a-fA-F]{32})$/.exec(data.toString('utf8'));
        if (!m || m[1] === undefined || m[2] === undefined) return this.authFailed('malformed CRAM-MD5 response', reply(501, '5.5.2', 'Malformed CRAM-MD5 response'));
        const secret = this.env.auth.authenticator.cramSecret(this.peer.config, m[1]);
        if (typeof secret === 'object') return this.authError(secret.error, m[1]);
        if (secret === undefined || !cramMd5Matches(secret, step.challenge, m[2])) return this.authFailed('wrong credentials', undefined, m[1]);
        return this.authSucceeded(m[1], 'CRAM-MD5');
      }
    }
  }

  private async authVerify(user: string, password: string): Promise<CommandResult> {
    const mech = this.authStep?.mech ?? 'PLAIN';
    const r = await this.env.auth.authenticator.check(this.peer.config, user, password);
    if (r.kind === 'ok') return this.authSucceeded(user, mech);
    if (r.kind === 'error') return this.authError(r.reason, user);
    return this.authFailed('wrong credentials', undefined, user);
  }

  private authSucceeded(user: string, mech: string): CommandResult {
    this.authStep = undefined;
    this.authUser = user;
    this.env.stats.inc('smtp.auth.ok');
    this.env.log.event('smtp', 'authentication', { session: this.id, user, mechanism: mech, result: 'ok' });
    return { reply: reply(235, '2.7.0', 'Authentication successful') };
  }

  private authError(reason: string, user: string): CommandResult {
    this.authStep = undefined;
    this.env.log.event('smtp', 'authentication', { session: this.id, user, result: 'tempfail', reason });
    return { reply: reply(454, '4.7.0', 'Temporary authentication failure') };
  }

  /** Refuse, count the failure against the client address, and answer after a small delay. */
  private async authFailed(reason: string, override?: Reply, user?: string): Promise<CommandResult> {
    this.authStep = undefined;
    const n = this.env.auth.failrate.fail(this.peer.address);
    this.env.stats.inc('smtp.auth.fail');
    this.env.log.event('smtp', 'authentication', { session: this.id, address: this.peer.address, user, result: 'permfail', reason, failures: n });
    const delay = this.env.config.smtp.authFailDelayMs;
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    return { reply: override ?? reply(535, '5.7.8', 'Authentication credentials invalid') };
  }

  async mailCommand(arg: string): Promise<CommandResult> {
    const listener = this.peer.config;
    if (listener.tls === 'require' && !this.tls) return { reply: reply(530, '5.7.0', 'Must issue a STARTTLS command first') };
    if (this.authUser === undefined && (listener.auth === 'required' || (this.env.runtime?.msaTrusted !== undefined && !this.env.runtime.msaTrusted(this.peer.address)))) {
      return { reply: reply(530, '5.7.0', 'Authentication required') };
    }
    const smtputf8 = this.ext.smtputf8 && /(^|\s)SMTPUTF8(\s|$)/i.test(arg);
    const path = parseMailFromArg(arg, { smtputf8, strict: this.strictPaths() });
    if (!path.ok) return { reply: path.reply };
    const params = parseMailParams(path.params, this.ext);
    if (!params.ok) return { reply: params.reply };
    if (this.messages >= this.env.config.smtp.maxMails) {
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
    const tx = new Transaction(path.mailbox, senderAddress, params.value, this.env.now());
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
    if (!senders || this.authUser === undefined) return true;
    const r = this.env.tables.lookup(senders.table, this.authUser);
    if (r.kind === 'error') return reply(451, '4.3.0', 'Temporary lookup failure, please try again later');
    if (r.kind === 'found' && sender !== '') {
      const allowed = r.value.split(/[\s,]+/).filter((x) => x !== '');
      const s = sender.toLowerCase();
      const domain = s.slice(s.lastIndexOf('@') + 1);
      if (allowed.some((a) => a.toLowerCase() === s || a.toLowerCase() === `@${domain}`)) return true;
    }
    this.env.log.event('smtp', 'rejected', { session: this.id, user: this.authUser, from: `<${sender}>`, reason: 'sender not owned by the authenticated user' });
    return reply(553, '5.7.1', 'Sender address not allowed for this authenticated user');
  }

  async rcptCommand(arg: string): Promise<CommandResult> {
    const tx = this.tx;
    if (!tx) return { reply: reply(503, '5.5.1', 'Need MAIL before RCPT') };
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
    tx.addRcpt({ mailbox: path.mailbox, address, params: params.value, targets: d.targets });
    return { reply: reply(250, '2.1.5', 'Recipient ok') };
  }

  /** VRFY, when enabled (`smtp vrfy`, ZMailer's VRFYcmd): would RCPT TO this address be accepted? */
  async vrfyCommand(arg: string): Promise<CommandResult> {
    const text = arg.trim();
    const path = parseRcptToArg(`TO:${text.startsWith('<') ? text : `<${text}>`}`, { smtputf8: this.ext.smtputf8, strict: false });
    if (!path.ok || !path.mailbox) return { reply: reply(501, '5.1.3', 'Bad address syntax') };
    const d = await this.env.policy.rcpt(this.facts(), { sender: null, params: { smtputf8: false }, rcptCount: 0 }, path.mailbox);
    if (d.kind === 'reject') return { reply: d.verdict.reply };
    return { reply: reply(250, '2.1.5', `<${formatMailbox(path.mailbox)}>`) };
  }

  /** EXPN, when enabled and the style has "e": where mail to this address goes (aliases expanded). */
  async expnCommand(arg: string): Promise<CommandResult> {
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
    if (!tx) return { reply: reply(503, '5.5.1', 'Need MAIL command') };
    if (tx.rcpts.length === 0) {
      return { reply: tx.attempted > 0 ? reply(554, '5.5.1', 'No valid recipients') : reply(503, '5.5.1', 'Need RCPT command') };
    }
    const opened = await this.openMessage(tx);
    if (opened !== undefined) return refused(opened);
    this.enter('data');
    return { reply: reply(354, undefined, 'End data with <CR><LF>.<CR><LF>'), then: { mode: 'data', maxSize: this.env.config.smtp.maxMessageSize } };
  }

  /** Decoded DATA content or normalized BDAT content: scan headers, store. */
  content(chunk: Buffer): Promise<void> | void {
    const tx = this.tx;
    const message = tx?.message;
    if (!tx || !message || message.failed || tx.overflow) return;
    tx.contentBytes += chunk.length;
    if (tx.contentBytes > this.env.config.smtp.maxMessageSize) {
      tx.overflow = true;
      return;
    }
    if (tx.fromRewriter) for (const b of tx.fromRewriter.push(chunk)) message.write(b);
    else message.write(chunk);
    return message.drain();
  }

  async dataEnd(info: DataEndInfo): Promise<Reply> {
    const tx = this.tx;
    if (!tx) return reply(451, '4.3.0', 'Transaction lost');
    const smtp = this.env.config.smtp;
    let refusal: Reply | undefined;
    if (info.overflow || tx.overflow) refusal = reply(552, '5.3.4', 'Message size exceeds fixed maximum message size');
    else if (info.nul) refusal = reply(550, '5.6.0', 'Message contains NUL characters');
    else if ((info.bareLf || info.bareCr) && smtp.bareNewline === 'reject') refusal = reply(550, '5.5.2', 'Message contains bare CR or LF characters');
    return this.finishMessage(tx, refusal);
  }

  /* --------------------------------------------------------------- BDAT */

  async bdatCommand(arg: string): Promise<CommandResult> {
    const m = /^(\d{1,15})(?:\s+(LAST))?\s*$/i.exec(arg.trim());
    if (!m || m[1] === undefined) {
      // Without a size we cannot tell where the chunk ends: the rest of the stream is unusable.
      return { reply: closing(reply(501, '5.5.4', 'Syntax: BDAT size [LAST]; closing connection')) };
    }
    const n = Number(m[1]);
    const last = m[2] !== undefined;
    const tx = this.tx;
    let failure: Reply | undefined;
    if (!tx) failure = reply(503, '5.5.1', 'Need MAIL command');
    else if (tx.rcpts.length === 0) failure = tx.attempted > 0 ? reply(554, '5.5.1', 'No valid recipients') : reply(503, '5.5.1', 'Need RCPT command');
    else if (tx.bdat?.failure) failure = tx.bdat.failure;
    if (tx && !failure && !tx.message) {
      failure = (await this.openMessage(tx))?.reply;
      if (!failure) tx.bdat = { last, normalizer: new LineEndingNormalizer(this.env.config.smtp.bareNewline) };
    }
    if (tx && tx.bdat) tx.bdat.last = last;
    if (failure) {
      // RFC 3030 §4.1: the chunk is read (and discarded) whatever the reply.
      this.pendingBdatFailure = { reply: failure, last };
      if (tx && tx.bdat) tx.bdat.failure = failure;
      return { then: { mode: 'bytes', n } };
    }
    this.enter('bdat');
    return { then: { mode: 'bytes', n } };
  }

  /** The reply owed for the BDAT chunk being read when it is refused; LAST ends the transaction. */
  private pendingBdatFailure?: { readonly reply: Reply; readonly last: boolean };

  bdatChunk(chunk: Buffer): Promise<void> | void {
    const tx = this.tx;
    if (this.pendingBdatFailure || !tx?.bdat?.normalizer) return;
    const out: Buffer[] = [];
    tx.bdat.normalizer.push(chunk, out);
    let p: Promise<void> | void = undefined;
    for (const b of out) p = this.content(b);
    return p;
  }

  async bdatEnd(n: number): Promise<Reply> {
    const failure = this.pendingBdatFailure;
    this.pendingBdatFailure = undefined;
    const tx = this.tx;
    if (failure) {
      if (failure.last) await this.resetTransaction();
      return failure.reply;
    }
    if (!tx || !tx.bdat || !tx.bdat.normalizer) return reply(503, '5.5.1', 'No BDAT transaction');
    if (!tx.bdat.last) return reply(250, '2.0.0', `${n} octets received`);
    const out: Buffer[] = [];
    const norm = tx.bdat.normalizer;
    norm.end(out);
    for (const b of out) await this.content(b);
    let refusal: Reply | undefined;
    if (tx.overflow) refusal = reply(552, '5.3.4', 'Message size exceeds fixed maximum message size');
    else if (norm.nul) refusal = reply(550, '5.6.0', 'Message contains NUL characters');
    else if ((norm.bareLf || norm.bareCr) && this.env.config.smtp.bareNewline === 'reject') refusal = reply(550, '5.5.2', 'Message contains bare CR or LF characters');
    return this.finishMessage(tx, refusal);
  }

  /* ----------------------------------------------------- message commit */

  /** Through the front door (the data phase, then the spool); write our Received: header. Returns a refusal, if any. */
  private async openMessage(tx: Transaction): Promise<(Verdict & { kind: 'reject' }) | undefined> {
    const opened = await this.env.queue.open({ kind: 'smtp', session: this.id }, this.facts(), this.txFacts(tx));
    if (opened.kind === 'reject') return opened;
    tx.message = opened;
    if (this.peer.config.senders?.masquerade && this.authUser !== undefined && tx.senderAddress !== '') tx.fromRewriter = new FromRewriter(tx.senderAddress);
    const single = tx.rcpts.length === 1 ? tx.rcpts[0]?.address : undefined;
    opened.writeOwnHeader(
      receivedHeader({
        helo: this.helo,
        rdns: this.rdns,
        ip: this.peer.address,
        hostname: this.peer.hostname,
        proto: this.proto(tx),
        msgid: opened.msgid,
        rcpt: single,
        tls: this.receivedTls(),
        date: new Date(this.env.now()),
        maskSource: this.peer.config.maskSrc,
      }),
    );
    return undefined;
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

  /** The end of the message: the front door checks, commits, logs and tells the scheduler; the reply is its answer. */
  private async finishMessage(tx: Transaction, refusal: Reply | undefined): Promise<Reply> {
    const message = tx.message;
    if (!message) {
      await this.resetTransaction();
      return refusal ?? reply(451, '4.3.0', 'Transaction lost');
    }
    // From here on the message belongs to this commit: a disconnect cannot abort it half-way.
    tx.message = undefined;
    if (tx.fromRewriter && !tx.overflow && !message.failed && refusal === undefined) {
      await message.drain();
      for (const b of tx.fromRewriter.end()) message.write(b);
    }
    const outcome = await message.commit(
      {
        sender: tx.senderAddress,
        recipients: tx.rcpts,
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
      },
      refusal,
    );
    if (this.tx === tx) this.tx = undefined;
    if (outcome.kind === 'queued') this.messages++;
    if (this.state !== 'closed') this.enter('helo');
    return outcome.reply;
  }
}

/** Strict base64 (RFC 4954 §4): returns undefined for anything else. "=" alone is an empty response. */
function decodeBase64(s: string): Buffer | undefined {
  if (s === '=') return Buffer.alloc(0);
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  return Buffer.from(s, 'base64');
}
