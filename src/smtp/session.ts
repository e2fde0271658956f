/*
 * smtp/session.ts — the SMTP session state machine (RFC 5321, 1869, 2920,
 * 3030, 3461, 6152, 6531): command dispatch, DATA and BDAT, the commit.
 *
 * A Session is three layers: smtp/session-core.ts (the state, changed only
 * through enter(), which traces "old -> new", and read by other modules
 * through getters; the limits), smtp/session-commands.ts (HELO/EHLO,
 * STARTTLS, AUTH, MAIL, RCPT, RSET, NOOP, QUIT, queries) and this file.
 * The command table (smtp/commands.ts) names each verb's handler, a method
 * of Session, and is built once from Session.prototype. Commands return
 * replies as values; the connection (smtp/connection.ts) writes them and
 * owns the socket, timers and input framing. Every wait — a verdict's
 * delay, a failed AUTH — comes back as CommandResult.delayMs; nothing here
 * sleeps. The transaction (smtp/transaction.ts) is a union by phase.
 *
 *   connect ──greet──> ready ──HELO/EHLO──> helo ──MAIL──> mail ──RCPT…──> mail
 *        mail ──DATA──> data ──"."──> helo        mail ──BDAT──> bdat ──LAST──> helo
 *   any ──connection ends──> closed
 *
 * The message itself goes through the queue's front door (queue/enqueue.ts),
 * the one way into the queue: it runs the data and commit policy phases,
 * the loop check, the durable commit, the log and the scheduler, and its
 * answer is the reply. Nothing is acknowledged before the spool says it is
 * on disk.
 *
 * The policy files (policy/build.ts) reach the session as a SessionRuntime:
 * the hdr220 greeting, EHLO and multi-line replies on or off, and ZMailer's
 * style flags (v: VRFY looks up, e: EXPN expands, S: sloppy syntax and MAIL
 * before HELO; without S, strict RFC 5321 paths).
 */
import type { RejectVerdict } from '../queue/enqueue.js';
import { LineEndingNormalizer } from '../wire/line-endings.js';
import { reply, closing, type Reply } from '../mail/reply.js';
import { abortTransaction, envelopeOf, type ContentTx, type EnvelopeTx, type MessageContent, type Transaction } from './transaction.js';
import { FromRewriter } from './masquerade.js';
import { receivedHeader, protocolName } from './received.js';
import { commandTable, refused, type CommandHandlers, type CommandResult } from './commands.js';
import type { DataEndInfo } from './session-env.js';
import { bdatFailure, bdatReadLimit, parseBdat, tooBig, type ChunkFate } from './bdat.js';
import { SessionCommands } from './session-commands.js';

export type { SessionState, CommandResult } from './commands.js';
export type { SessionEnv, PeerInfo, TlsInfo, DataEndInfo } from './session-env.js';

export class Session extends SessionCommands implements CommandHandlers {
  /** What happens to the BDAT chunk being read. */
  #chunk?: ChunkFate;

  /** Run one command line: find the verb in the table, check the state, count junk, run the handler. */
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
    const sloppy = spec.sloppyStates?.includes(this.state) === true && this.style?.has('S') === true;
    if (!spec.states.includes(this.state) && !sloppy) return { reply: spec.sequenceError(this.state) };
    return spec.handler.call(this, arg);
  }

  /* --------------------------------------------------------------- DATA */

  async dataCommand(arg: string): Promise<CommandResult> {
    if (arg.trim() !== '') return { reply: reply(501, '5.5.4', 'Syntax: DATA (no parameters)') };
    const tx = this.tx;
    if (!tx || tx.phase !== 'envelope') return { reply: reply(503, '5.5.1', 'Need MAIL command') };
    if (tx.rcpts.length === 0) {
      return { reply: tx.attempted > 0 ? reply(554, '5.5.1', 'No valid recipients') : reply(503, '5.5.1', 'Need RCPT command') };
    }
    const fv = await this.filterAt('DATA', (f) => f.data(this.facts()));
    if (fv.kind === 'reject') return refused(fv);
    const content = await this.openContent(tx);
    if (!('message' in content)) return refused(content);
    this.tx = { ...envelopeOf(tx), phase: 'data', ...content };
    this.enter('data');
    return { reply: reply(354, undefined, 'End data with <CR><LF>.<CR><LF>'), then: { mode: 'data', maxSize: this.env.config.smtp.maxMessageSize } };
  }

  /** openMessage for a transaction that may end while the spool creates the file (a disconnect): then the file goes again. */
  private async openContent(tx: EnvelopeTx): Promise<MessageContent | RejectVerdict> {
    const content = await this.openMessage(tx);
    if ('message' in content && this.tx !== tx) {
      await content.message.abort();
      return { kind: 'reject', reply: reply(503, '5.5.1', 'Transaction ended'), reason: 'transaction ended while the message was opened' };
    }
    return content;
  }

  /** Decoded DATA content or normalized BDAT content, on its way through the front door. */
  content(chunk: Buffer): Promise<void> | void {
    const tx = this.tx;
    if (!tx || (tx.phase !== 'data' && tx.phase !== 'bdat') || tx.message.failed || tx.overflow) return;
    tx.contentBytes += chunk.length;
    if (tx.contentBytes > this.env.config.smtp.maxMessageSize) {
      tx.overflow = true;
      return;
    }
    if (tx.fromRewriter) for (const b of tx.fromRewriter.push(chunk)) tx.message.write(b);
    else tx.message.write(chunk);
    return tx.message.drain();
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
    const accepted = this.messages;
    const r = await this.finishMessage(tx, refusal);
    if (this.messages > accepted) this.junkReset();
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
    const cmd = parseBdat(arg);
    if (!cmd) {
      // Without a size we cannot tell where the chunk ends: the rest of the stream is unusable.
      return { reply: closing(reply(501, '5.5.4', 'Syntax: BDAT size [LAST]; closing connection')) };
    }
    const { n, last } = cmd;
    const max = this.env.config.smtp.maxMessageSize;
    if (n > bdatReadLimit(max)) {
      await this.resetTransaction();
      return { reply: closing(tooBig()) };
    }
    const tx = this.tx;
    const failure = bdatFailure(tx);
    if (failure || !tx || tx.phase === 'bdat-refused' || tx.phase === 'data') {
      this.#chunk = { store: false, reply: failure, last };
      return { then: { mode: 'bytes', n } };
    }
    if ((tx.phase === 'bdat' ? tx.contentBytes : 0) + n > max) {
      // Refused before it is read; every further chunk up to LAST gets the same reply.
      await abortTransaction(tx);
      this.tx = { ...envelopeOf(tx), phase: 'bdat-refused', failure: tooBig() };
      this.#chunk = { store: false, last };
      if (this.state !== 'bdat') this.enter('bdat');
      return { reply: tooBig(), then: { mode: 'bytes', n } };
    }
    if (tx.phase === 'bdat') {
      tx.last = last;
    } else {
      const fv = await this.filterAt('BDAT', (f) => f.data(this.facts()));
      if (fv.kind === 'reject') {
        this.#chunk = { store: false, reply: fv.reply, last };
        return { then: { mode: 'bytes', n } };
      }
      const content = await this.openContent(tx);
      if (!('message' in content)) {
        this.#chunk = { store: false, reply: content.reply, last };
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

  /** Through the front door (the data phase, then the spool); our Received: header first. Returns the content part of the transaction, or the refusal. */
  private async openMessage(tx: EnvelopeTx): Promise<MessageContent | RejectVerdict> {
    const message = await this.env.queue.open({ kind: 'smtp', session: this.id, address: this.peer.address }, this.facts(), this.txFacts(tx), this.filter);
    if (message.kind === 'reject') return message;
    const fromRewriter = this.peer.config.senders?.masquerade && this.authUser !== undefined && tx.senderAddress !== '' ? new FromRewriter(tx.senderAddress) : undefined;
    const single = tx.rcpts.length === 1 ? tx.rcpts[0]?.address : undefined;
    const show = this.env.runtime?.received;
    const ident = show?.ident && this.peer.ident ? await this.peer.ident : undefined;
    const whoson = show?.whoson && this.peer.whoson ? await this.peer.whoson : undefined;
    message.writeOwnHeader(
      receivedHeader({
        helo: this.helo,
        rdns: this.rdns,
        ip: this.peer.address,
        hostname: this.peer.hostname,
        proto: this.proto(tx),
        msgid: message.msgid,
        rcpt: single,
        tls: this.receivedTls(),
        date: new Date(this.env.now()),
        maskSource: this.peer.config.maskSrc,
        ...(ident !== undefined ? { ident } : {}),
        ...(whoson !== undefined ? { whoson } : {}),
        ...(show?.authUser && this.authUser !== undefined ? { authUser: this.authUser } : {}),
      }),
    );
    return { message, ...(fromRewriter ? { fromRewriter } : {}), contentBytes: 0, overflow: false };
  }

  /** The TLS part of our Received: header (ZMailer's rcvd-tls-mode / rcvd-tls-peer decide with a ZMailer file). */
  private receivedTls(): string | undefined {
    const t = this.tlsInfo;
    const show = this.env.runtime?.received ?? { tlsMode: true, tlsPeer: true };
    if (!t || !show.tlsMode) return undefined;
    const verified = t.peerVerified === undefined ? '' : t.peerVerified ? ' verified' : ' not verified';
    return `using ${t.version} with cipher ${t.cipher}${t.peer && show.tlsPeer ? `, client certificate ${t.peer}${verified}` : ''}`;
  }

  private proto(tx: Transaction): string {
    return protocolName({ esmtp: this.esmtp, tls: this.tls, auth: this.authUser !== undefined, utf8: tx.params.smtputf8 });
  }

  /** The end of the message: the front door checks, commits, logs and tells the scheduler; its answer is the reply. */
  private async finishMessage(tx: ContentTx, refusal: Reply | undefined): Promise<Reply> {
    // From here on the message belongs to this commit: a disconnect cannot abort it half-way.
    if (this.tx === tx) this.tx = undefined;
    const message = tx.message;
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
    if (outcome.kind === 'queued') {
      this.messages++;
      this.report({ kind: 'queued', evpids: outcome.envelope.recipients.map((r) => r.evpid), size: outcome.envelope.size });
    }
    if (this.state !== 'closed') this.enter('helo');
    return outcome.reply;
  }
}

/** The command table, its handlers the methods of Session (smtp/commands.ts). */
const COMMANDS = commandTable(Session.prototype);
