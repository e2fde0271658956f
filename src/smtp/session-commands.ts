/*
 * smtp/session-commands.ts — the session's commands up to the message:
 * HELO/EHLO, STARTTLS (RFC 3207), AUTH (RFC 4954, the exchange itself in
 * smtp/sasl.ts), MAIL, RCPT, RSET, NOOP, QUIT, and the queries
 * (smtp/queries.ts). Each is a method named in the command table
 * (smtp/commands.ts) and returns a CommandResult; a failed AUTH's wait is
 * its delayMs, carried out by the connection.
 */
import { randomBytes } from 'node:crypto';
import { parseMailFromArg, parseRcptToArg, formatMailbox } from '../mail/address.js';
import { parseMailParams, parseRcptParams } from '../mail/params.js';
import { reply, closing, type Reply } from '../mail/reply.js';
import { addRcpt, newTransaction } from './transaction.js';
import { refused, type CommandResult } from './commands.js';
import { ehloKeywords, etrn, expn, help, vrfy } from './queries.js';
import { senderOwned } from './senders.js';
import { saslContinue, saslMechanisms, saslStart, type SaslContext, type SaslMechanism, type SaslStep } from './sasl.js';
import { SessionCore } from './session-core.js';
import { PROCEED } from '../filter/filter.js';

export abstract class SessionCommands extends SessionCore {
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
    const fv = await this.filterAt(extended ? 'EHLO' : 'HELO', (f) => f.helo(this.facts(), name, extended));
    if (fv.kind === 'reject') return refused(fv);
    this.helo = fv.kind === 'rewrite' ? fv.value : name;
    this.esmtp = extended;
    if (this.env.runtime?.style) this.style = this.env.runtime.style(name);
    this.enter('helo');
    const greeting = `${this.peer.hostname} Hello ${name} [${this.peer.address}], pleased to meet you`;
    if (!extended) return { reply: reply(250, undefined, greeting) };
    return { reply: reply(250, undefined, greeting, ...this.extensions()) };
  }

  extensions(): string[] {
    return ehloKeywords(this, (n) => this.extensionOn(n), { starttls: this.starttlsOffered(), ...(this.authOffered() ? { auth: this.authMechanisms() } : {}) });
  }

  private starttlsOffered(): boolean {
    const t = this.peer.config.tls;
    return !this.tls && (t === 'starttls' || t === 'require');
  }

  /** AUTH is offered on listeners with auth, over TLS (or without it when `smtp auth-without-tls`). */
  private authOffered(): boolean {
    return this.peer.config.auth !== 'none' && this.authUser === undefined && (this.tls || this.env.config.smtp.authWithoutTls);
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
    return help(this);
  }

  etrnCommand(arg: string): Promise<CommandResult> {
    return etrn(this, arg);
  }

  vrfyCommand(arg: string): Promise<CommandResult> {
    return vrfy(this, arg);
  }

  expnCommand(arg: string): Promise<CommandResult> {
    return expn(this, arg);
  }

  /* ---------------------------------------------------------- STARTTLS */

  async starttlsCommand(arg: string): Promise<CommandResult> {
    if (arg.trim() !== '') return { reply: reply(501, '5.5.4', 'Syntax: STARTTLS (no parameters)') };
    const t = this.peer.config.tls;
    if (t !== 'starttls' && t !== 'require') return { reply: reply(502, '5.5.1', 'STARTTLS not available on this listener') };
    if (this.tls) return { reply: reply(503, '5.5.1', 'TLS already active') };
    if (this.tx) return { reply: reply(503, '5.5.1', 'STARTTLS not allowed during a mail transaction') };
    const fv = await this.filterAt('STARTTLS', (f) => f.starttls?.(this.facts()) ?? Promise.resolve(PROCEED));
    if (fv.kind === 'reject') return refused(fv);
    return { reply: reply(220, '2.0.0', 'Ready to start TLS'), then: { mode: 'starttls' } };
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
    const mech = this.authMechanisms().find((x) => x === m[1]?.toUpperCase());
    if (mech === undefined) return { reply: reply(504, '5.5.4', 'Unrecognized authentication mechanism') };
    // Filters are told the mechanism, never the initial response (it carries the password).
    const fv = await this.filterAt('AUTH', (f) => f.auth?.(this.facts(), mech) ?? Promise.resolve(PROCEED));
    if (fv.kind === 'reject') return refused(fv);
    return this.authApply(await saslStart(mech, m[2], this.saslContext()), mech);
  }

  /** A client line during AUTH. */
  async authContinue(line: string): Promise<CommandResult> {
    const ex = this.sasl;
    if (!ex) return { reply: reply(503, '5.5.1', 'No authentication in progress') };
    return this.authApply(await saslContinue(ex, line, this.saslContext()), ex.mech);
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
  private authApply(step: SaslStep, mech: string): CommandResult {
    this.sasl = step.kind === 'challenge' ? step.exchange : undefined;
    switch (step.kind) {
      case 'challenge':
        return { reply: step.reply, then: { mode: 'auth' } };
      case 'abandoned':
        return { reply: step.reply };
      case 'success':
        this.authUser = step.user;
        this.report({ kind: 'auth', user: step.user, result: 'pass' });
        this.env.stats.inc('smtp.auth.ok');
        this.env.stats.probe?.auth(mech, true);
        this.env.log.event('smtp', 'authentication', { session: this.id, address: this.peer.address, user: step.user, mechanism: step.mech, result: 'ok' });
        return { reply: reply(235, '2.7.0', 'Authentication successful') };
      case 'tempfail':
        this.report({ kind: 'auth', user: step.user ?? '', result: 'error' });
        this.env.log.event('smtp', 'authentication', { session: this.id, address: this.peer.address, user: step.user, result: 'tempfail', reason: step.reason });
        return { reply: reply(454, '4.7.0', 'Temporary authentication failure') };
      case 'failure': {
        this.report({ kind: 'auth', user: step.user ?? '', result: 'fail' });
        const n = this.env.auth.failrate.fail(this.peer.address);
        this.env.stats.inc('smtp.auth.fail');
        this.env.stats.probe?.auth(mech, false);
        this.env.log.event('smtp', 'authentication', { session: this.id, address: this.peer.address, user: step.user, result: 'permfail', reason: step.reason, failures: n });
        const delay = this.env.config.smtp.authFailDelayMs;
        return { reply: step.reply ?? reply(535, '5.7.8', 'Authentication credentials invalid'), ...(delay > 0 ? { delayMs: delay } : {}) };
      }
    }
  }

  /* ------------------------------------------------------- MAIL, RCPT */

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
    let tx = newTransaction(path.mailbox, senderAddress, params.value, this.env.now());
    const v = await this.env.policy.mail(this.facts(), this.txFacts(tx));
    if (v.kind === 'reject') return refused(v);
    const fv = await this.filterAt('MAIL', (f) => f.mail(this.facts(), senderAddress, splitParams(path.params)));
    if (fv.kind === 'reject') return refused(fv);
    if (fv.kind === 'rewrite') {
      const re = parseMailFromArg(`FROM:<${fv.value}>`, { smtputf8, strict: false });
      if (re.ok) tx = newTransaction(re.mailbox, re.mailbox ? formatMailbox(re.mailbox) : '', params.value, tx.startedAt);
    }
    this.tx = tx;
    this.enter('mail');
    return { reply: reply(250, '2.1.0', 'Ok') };
  }

  /** `listen … senders <table>`: may the authenticated user send as this address? */
  private senderOwned(sender: string): true | Reply {
    const r = senderOwned(this.env.tables, this.peer.config, this.authUser, sender);
    if (r === true) return true;
    if (r.log) this.env.log.event('smtp', 'rejected', { session: this.id, address: this.peer.address, user: this.authUser, from: `<${sender}>`, reason: 'sender not owned by the authenticated user' });
    return r.reply;
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
      this.env.log.event('smtp', 'rejected', { session: this.id, address: this.peer.address, to: `<${formatMailbox(path.mailbox)}>`, reason: d.verdict.reason });
      return refused(d.verdict);
    }
    const fv = await this.filterAt('RCPT', (f) => f.rcpt(this.facts(), formatMailbox(path.mailbox!), splitParams(path.params)));
    if (fv.kind === 'reject') return refused(fv);
    if (this.tx !== tx) return { reply: reply(503, '5.5.1', 'Transaction ended') };
    const address = formatMailbox(path.mailbox);
    let rcptParams = params.value;
    if (path.sourceRouteStripped && this.env.runtime?.keepSourceRoute === true) {
      // allowsourceroute: the route is kept as the original recipient (DSNs, the log); delivery goes to the mailbox.
      const route = /<([^>]*)>/.exec(arg)?.[1] ?? address;
      this.env.log.event('smtp', 'source-route', { session: this.id, address: this.peer.address, route, to: `<${address}>` });
      if (rcptParams.orcpt === undefined) rcptParams = { ...rcptParams, orcpt: `rfc822;${route}` };
    }
    addRcpt(tx, { mailbox: path.mailbox, address, params: rcptParams, targets: d.targets });
    return { reply: reply(250, '2.1.5', 'Recipient ok') };
  }
}

/** ESMTP parameters as the words a filter is given. */
function splitParams(params: string): string[] {
  return params.split(' ').filter((p) => p !== '');
}
