/*
 * filter/milter/session.ts — one milter, one SMTP session (the MTA side of
 * libmilter's protocol, version 6).
 *
 * Open: connect, negotiate options; then per phase the command (with the
 * macros of its stage) and the answer. The message is sent at its end, from
 * the stored file (as Postfix's cleanup does): header fields, end of
 * header, body in 64 KiB chunks, end of message; then the modifications
 * until a final answer.
 *
 * Answers: continue → proceed; accept → no more calls for the message (at
 * connect or HELO: for the session); reject → 5xx (554 at connect, then
 * the session closes); tempfail → 451 4.7.1; a reply code → that reply;
 * discard → the message is dropped with a 250; skip → no more body.
 *
 * Failure (cannot connect, a timeout, a closed socket, a malformed or
 * unexpected answer): logged, the milter is dropped for the session, and
 * the listener's default action applies (Postfix's milter_default_action):
 * tempfail → 451 4.7.1 to MAIL, RCPT, DATA and the message from then on;
 * reject → 550 5.7.1 likewise; accept → as if there were no milter. A
 * failure before MAIL waits for MAIL to answer, as Postfix does.
 */
import { reply, closing, type Reply } from '../../mail/reply.js';
import type { SessionFacts } from '../../policy/policy.js';
import type { MilterDecl } from '../../config/filter-options.js';
import { PROCEED, type FilterLog, type FilterMessage, type FilterSession, type FilterVerdict, type HeaderEdit, type MessageVerdict } from '../filter.js';
import { splitMessage } from '../message-parts.js';
import { parseReplyText } from '../reply-text.js';
import * as C from './codec.js';
import { MilterConnection, MilterError, parseMilterAddress } from './connection.js';
import { stageMacros, wanted, type MacroSource } from './macros.js';

const TEMPFAIL = reply(451, '4.7.1', 'Service unavailable - try again later');
const REJECT = reply(550, '5.7.1', 'Command rejected');

type Stage = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'message';

export class MilterSession implements FilterSession {
  #conn?: MilterConnection;
  #neg?: C.Negotiated;
  /** accepted: no more calls this session; failed: the default action answers. */
  #mode: 'new' | 'active' | 'accepted' | 'failed' = 'new';
  /** The milter accepted (or discarded) this transaction: no more calls until the next MAIL. */
  #tx: 'none' | 'open' | 'accepted' | 'discard' = 'none';
  #sender?: string;

  constructor(
    private readonly decl: MilterDecl,
    private readonly hostname: string,
    private readonly log: FilterLog,
  ) {}

  async connect(s: SessionFacts): Promise<FilterVerdict> {
    const address = parseMilterAddress(this.decl.socket);
    if (!address) return this.failed(s, `bad milter address ${this.decl.socket}`, 'connect');
    try {
      this.#conn = await MilterConnection.open(address, this.decl.connectTimeoutMs);
      this.#conn.send(C.optneg(C.ALL_ACTIONS, C.OFFERED_PROTOCOL));
      const r = await this.#conn.next(this.decl.commandTimeoutMs);
      if (r.kind !== 'optneg') throw new MilterError(`option negotiation answered with ${r.kind}`);
      if (r.negotiated.version < 2) throw new MilterError(`protocol version ${r.negotiated.version}`);
      this.#neg = r.negotiated;
      this.#mode = 'active';
    } catch (e) {
      return this.failed(s, (e as Error).message, 'connect');
    }
    if (this.#skips(C.PROTO.NOCONNECT)) return PROCEED;
    const family = s.fromSocket ? 'U' : s.clientAddress.includes(':') ? '6' : '4';
    return this.#step(s, 'connect', 'C', {}, C.connect(s.rdns ?? `[${s.clientAddress}]`, family, s.clientPort, s.fromSocket ? 'localhost' : s.clientAddress), C.PROTO.NR_CONN);
  }

  helo(s: SessionFacts, name: string, _extended: boolean): Promise<FilterVerdict> {
    if (this.#skips(C.PROTO.NOHELO)) return Promise.resolve(this.#idle(s, 'helo'));
    return this.#step(s, 'helo', 'H', {}, C.helo(name), C.PROTO.NR_HELO);
  }

  mail(s: SessionFacts, sender: string, args: readonly string[]): Promise<FilterVerdict> {
    if (this.#tx === 'open') this.abort();
    this.#sender = sender;
    this.#tx = this.#mode === 'active' ? 'open' : 'none';
    if (this.#skips(C.PROTO.NOMAIL)) return Promise.resolve(this.#idle(s, 'mail'));
    return this.#step(s, 'mail', 'M', { sender }, C.mail([`<${sender}>`, ...args]), C.PROTO.NR_MAIL);
  }

  rcpt(s: SessionFacts, rcpt: string, args: readonly string[]): Promise<FilterVerdict> {
    if (this.#skips(C.PROTO.NORCPT)) return Promise.resolve(this.#idle(s, 'rcpt'));
    return this.#step(s, 'rcpt', 'R', { sender: this.#sender, rcpt }, C.rcpt([`<${rcpt}>`, ...args]), C.PROTO.NR_RCPT);
  }

  data(s: SessionFacts): Promise<FilterVerdict> {
    if (this.#neg !== undefined && this.#neg.version < 4) return Promise.resolve(this.#idle(s, 'data'));
    if (this.#skips(C.PROTO.NODATA)) return Promise.resolve(this.#idle(s, 'data'));
    return this.#step(s, 'data', 'T', { sender: this.#sender }, C.data(), C.PROTO.NR_DATA);
  }

  async message(s: SessionFacts, m: FilterMessage): Promise<MessageVerdict> {
    const pre = this.#idle(s, 'message');
    if (pre.kind === 'reject') return pre;
    if (this.#tx === 'discard') return this.#endTx({ kind: 'discard', reason: `milter ${this.decl.name}: discard` });
    if (this.#mode !== 'active' || this.#tx !== 'open' || !this.#conn || !this.#neg) return this.#endTx({ kind: 'accept' });
    const conn = this.#conn;
    const neg = this.#neg;
    const timeout = this.decl.contentTimeoutMs;
    const src: MacroSource = { facts: s, hostname: this.hostname, msgid: m.msgid, sender: m.sender };
    try {
      const parts = splitMessage(m.bytes);
      const leadspc = (neg.protocol & C.PROTO.HDR_LEADSPC) !== 0;
      const answer = async (flag: number): Promise<C.Response | undefined> => ((neg.protocol & flag) !== 0 ? undefined : conn.next(timeout));
      const early = (r: C.Response | undefined): MessageVerdict | 'skip' | undefined => {
        if (r === undefined || r.kind === 'continue') return undefined;
        if (r.kind === 'skip') return 'skip';
        const v = this.#final(r, 'message');
        return v.kind === 'proceed' ? undefined : v;
      };
      if (!this.#skips(C.PROTO.NOHDRS)) {
        for (const f of parts.fields) {
          const value = (leadspc ? f.value : f.value.replace(/^ /, '')).replace(/\r\n/g, '\n');
          conn.send(C.header(f.name, value));
          const v = early(await answer(C.PROTO.NR_HDR));
          if (v === 'skip') break;
          if (v) return this.#endTx(v);
        }
      }
      if (!this.#skips(C.PROTO.NOEOH)) {
        this.#sendMacros('N', src);
        conn.send(C.eoh());
        const v = early(await answer(C.PROTO.NR_EOH));
        if (v && v !== 'skip') return this.#endTx(v);
      }
      if (!this.#skips(C.PROTO.NOBODY)) {
        for (let off = 0; off < parts.body.length; off += C.CHUNK_SIZE) {
          conn.send(C.body(parts.body.subarray(off, off + C.CHUNK_SIZE)));
          const v = early(await answer(C.PROTO.NR_BODY));
          if (v === 'skip') break;
          if (v) return this.#endTx(v);
        }
      }
      this.#sendMacros('E', src);
      conn.send(C.eom());
      return this.#endTx(await this.#collect(conn, neg, timeout));
    } catch (e) {
      this.#tx = 'none';
      return this.#messageFailure(s, (e as Error).message);
    }
  }

  abort(): void {
    if (this.#tx === 'open' && this.#mode === 'active') this.#conn?.send(C.abort());
    this.#tx = 'none';
  }

  close(): void {
    if (this.#mode === 'active') this.#conn?.send(C.quit());
    this.#conn?.close();
    this.#mode = 'accepted';
  }

  /* ------------------------------------------------------------ plumbing */

  #skips(flag: number): boolean {
    return this.#mode !== 'active' || this.#neg === undefined || (this.#neg.protocol & flag) !== 0 || this.#tx === 'accepted' || this.#tx === 'discard';
  }

  /** The answer when the milter is not asked: the default after a failure, else proceed. */
  #idle(s: SessionFacts, stage: Stage): FilterVerdict & { kind: 'proceed' | 'reject' } {
    if (this.#mode !== 'failed' || stage === 'connect' || stage === 'helo') return PROCEED as FilterVerdict & { kind: 'proceed' };
    const d = this.decl.defaultAction;
    if (d === 'accept') return PROCEED as FilterVerdict & { kind: 'proceed' };
    return { kind: 'reject', reply: d === 'tempfail' ? TEMPFAIL : REJECT, reason: `milter ${this.decl.name} unavailable (default action ${d})` };
  }

  #sendMacros(stage: C.Stage, src: MacroSource): void {
    const m = wanted(stageMacros(stage, src), this.#neg?.macros.get(stage));
    if (m.size > 0) this.#conn?.send(C.macros(stage, m));
  }

  async #step(s: SessionFacts, stage: Stage, cmd: C.Stage, src: Partial<MacroSource>, pkt: Buffer, noReply: number): Promise<FilterVerdict> {
    if (this.#mode !== 'active' || !this.#conn || !this.#neg) return this.#idle(s, stage);
    this.#sendMacros(cmd, { facts: s, hostname: this.hostname, ...src });
    this.#conn.send(pkt);
    if ((this.#neg.protocol & noReply) !== 0) return PROCEED;
    try {
      const r = await this.#conn.next(this.decl.commandTimeoutMs);
      const v = this.#final(r, stage);
      if (v.kind === 'discard') {
        this.#tx = 'discard';
        return PROCEED;
      }
      if (v.kind === 'accept') return PROCEED;
      return v;
    } catch (e) {
      return this.failed(s, (e as Error).message, stage);
    }
  }

  /** A final answer as a verdict; at connect and HELO "accept" means the whole session. */
  #final(r: C.Response, stage: Stage): (FilterVerdict & { kind: 'proceed' | 'reject' }) | { kind: 'accept' } | { kind: 'discard'; reason: string } {
    const name = `milter ${this.decl.name}`;
    switch (r.kind) {
      case 'continue':
      case 'skip':
        return PROCEED as FilterVerdict & { kind: 'proceed' };
      case 'accept':
        if (stage === 'connect' || stage === 'helo') this.close();
        else this.#tx = 'accepted';
        return { kind: 'accept' };
      case 'discard':
        if (stage === 'connect' || stage === 'helo') throw new MilterError(`discard at ${stage}`);
        return { kind: 'discard', reason: `${name}: discard` };
      case 'reject':
        return { kind: 'reject', reply: stage === 'connect' ? closing(reply(554, '5.7.1', 'Service unavailable')) : REJECT, reason: `${name}: reject`, ...(stage === 'connect' ? { disconnect: true } : {}) };
      case 'tempfail':
        return { kind: 'reject', reply: stage === 'connect' ? closing(reply(421, '4.7.1', 'Service unavailable - try again later')) : TEMPFAIL, reason: `${name}: tempfail`, ...(stage === 'connect' ? { disconnect: true } : {}) };
      case 'shutdown':
      case 'conn-fail':
        this.#conn?.close();
        this.#mode = 'failed';
        return { kind: 'reject', reply: closing(reply(421, '4.7.0', 'Service unavailable - try again later')), reason: `${name}: ${r.kind}`, disconnect: true };
      case 'replycode': {
        const rp: Reply | undefined = parseReplyText(r.text);
        if (rp === undefined) throw new MilterError(`malformed reply code "${r.text.slice(0, 80)}"`);
        return { kind: 'reject', reply: stage === 'connect' ? closing(rp) : rp, reason: `${name}: ${rp.code} ${rp.lines.join(' ')}`, ...(stage === 'connect' ? { disconnect: true } : {}) };
      }
      case 'malformed':
        throw new MilterError(`malformed answer (${r.why})`);
      default:
        throw new MilterError(`unexpected answer "${r.kind}" at ${stage}`);
    }
  }

  /** After end of message: modifications until a final answer. */
  async #collect(conn: MilterConnection, neg: C.Negotiated, timeout: number): Promise<MessageVerdict> {
    const headers: HeaderEdit[] = [];
    const body: Buffer[] = [];
    let sender: string | undefined;
    const addRcpts: string[] = [];
    const delRcpts: string[] = [];
    let quarantine: string | undefined;
    const allowed = (flag: number, what: string): void => {
      if ((neg.actions & flag) === 0) throw new MilterError(`${what} without negotiating it`);
    };
    for (;;) {
      const r = await conn.next(timeout);
      switch (r.kind) {
        case 'addheader':
          allowed(C.ACT.ADDHDRS, 'add header');
          headers.push({ op: 'add', name: r.name, value: r.value });
          continue;
        case 'insheader':
          allowed(C.ACT.ADDHDRS, 'insert header');
          headers.push({ op: 'insert', index: r.index, name: r.name, value: r.value });
          continue;
        case 'chgheader':
          allowed(C.ACT.CHGHDRS, 'change header');
          headers.push({ op: 'change', index: r.index, name: r.name, value: r.value });
          continue;
        case 'replbody':
          allowed(C.ACT.CHGBODY, 'replace body');
          body.push(r.chunk);
          continue;
        case 'chgfrom':
          allowed(C.ACT.CHGFROM, 'change sender');
          sender = unbracket(r.sender);
          continue;
        case 'addrcpt':
          allowed(r.args !== undefined ? C.ACT.ADDRCPT_PAR : C.ACT.ADDRCPT, 'add recipient');
          addRcpts.push(unbracket(r.rcpt));
          continue;
        case 'delrcpt':
          allowed(C.ACT.DELRCPT, 'delete recipient');
          delRcpts.push(unbracket(r.rcpt));
          continue;
        case 'quarantine':
          allowed(C.ACT.QUARANTINE, 'quarantine');
          quarantine = r.reason || `milter ${this.decl.name}`;
          continue;
        default: {
          const v = this.#final(r, 'message');
          if (v.kind === 'proceed' || v.kind === 'accept') {
            const edits = { headers, ...(body.length > 0 ? { body: Buffer.concat(body) } : {}), ...(sender !== undefined ? { sender } : {}), addRcpts, delRcpts, ...(quarantine !== undefined ? { quarantine } : {}) };
            return { kind: 'accept', edits };
          }
          return v;
        }
      }
    }
  }

  #endTx(v: MessageVerdict): MessageVerdict {
    this.#tx = 'none';
    return v;
  }

  #messageFailure(s: SessionFacts, why: string): MessageVerdict {
    const v = this.failed(s, why, 'message');
    return v.kind === 'reject' ? v : { kind: 'accept' };
  }

  /** Log the failure, drop the milter for the session, answer by the default action. */
  failed(s: SessionFacts, why: string, stage: Stage): FilterVerdict & { kind: 'proceed' | 'reject' } {
    this.log.event('filter', 'milter-failed', { session: s.id, filter: this.decl.name, stage, reason: why, action: this.decl.defaultAction });
    this.#conn?.close();
    this.#mode = 'failed';
    return this.#idle(s, stage);
  }
}

function unbracket(a: string): string {
  const t = a.trim();
  return t.startsWith('<') && t.endsWith('>') ? t.slice(1, -1) : t;
}
