/*
 * filter/proc/session.ts — one SMTP session as a filter process sees it
 * (smtpd-filters(7), protocol 0.7 as OpenSMTPD 7 speaks it).
 *
 * The report stream carries the events the process registered for, made
 * as OpenSMTPD makes them: link-connect and link-greeting at connect,
 * link-identify after HELO/EHLO, link-tls after the handshake, link-auth
 * after each AUTH attempt, protocol-client and protocol-server for every
 * command and reply line, tx-begin, tx-mail, tx-rcpt and tx-data from the
 * replies to MAIL, RCPT and DATA, tx-envelope, tx-commit and tx-reset when
 * the message is queued, tx-rollback and tx-reset when it is not or the
 * transaction is dropped, filter-response and filter-report for its own
 * answers, timeout, link-disconnect. OpenSMTPD sends tx-envelope at each
 * RCPT; Postern gives recipients their ids when the message is queued, so
 * they come then, before tx-commit.
 *
 * The filter stream asks at each phase the process registered for
 * (connect, helo, ehlo, starttls, auth, mail-from, rcpt-to, data,
 * data-line, commit), and
 * reads filter-result (proceed, junk, reject, disconnect, rewrite,
 * report). The message goes to the process as data lines while it
 * arrives (content()); what comes back, after its ".", is the message (so
 * a filter may add, change or drop lines: DKIM signatures, spam headers);
 * then the commit request.
 *
 * A failed process (filter/proc/process.ts) gives the session a temporary
 * failure: 421 at connect (the session closes), 451 4.7.0 at every later
 * command, as long as the session lasts.
 */
import { randomBytes } from 'node:crypto';
import { reply, closing } from '../../mail/reply.js';
import type { SessionFacts } from '../../policy/policy.js';
import { PROCEED, type FilterLog, type FilterMessage, type FilterSession, type FilterVerdict, type MessageVerdict, type SessionReport } from '../filter.js';
import { parseReplyText } from '../reply-text.js';
import type { DataLineStream, FilterProcess, ProcAnswer } from './process.js';
import { DataLineSplitter, joinDataLines, type ProcPhase } from './protocol.js';

const TEMPFAIL = reply(451, '4.7.0', 'Temporary failure in a mail filter, try again later');

/** The command a reply answers, as far as the tx-* events care. */
type Answered = 'MAIL' | 'RCPT' | 'DATA' | 'END' | 'OTHER';

export class ProcSession implements FilterSession {
  readonly #id = randomBytes(8).toString('hex');
  #tx?: string;
  #failed?: string;
  #junk = false;
  /** The last command and its address (MAIL, RCPT), for the tx-* events its reply makes. */
  #answered: Answered = 'OTHER';
  #address = '';
  #size = 0;
  #stream?: { readonly lines: DataLineStream; readonly split: DataLineSplitter };

  constructor(
    private readonly proc: FilterProcess,
    private readonly hostname: string,
    private readonly log: FilterLog,
  ) {}

  async connect(s: SessionFacts): Promise<FilterVerdict> {
    const why = await this.proc.ensure();
    if (why !== undefined) return this.#fail(s, why, 'connect');
    const src = s.fromSocket ? 'unix:socket' : `${s.clientAddress}:${s.clientPort}`;
    this.#report('link-connect', [s.rdns ?? '', s.rdns !== undefined ? 'pass' : 'fail', src, s.fromSocket ? src : s.listener]);
    this.#report('link-greeting', [this.hostname]);
    return this.#ask(s, 'connect', [s.rdns ?? '', s.fromSocket ? 'local' : s.clientAddress.includes(':') ? `[${s.clientAddress}]` : s.clientAddress]);
  }

  async helo(s: SessionFacts, name: string, extended: boolean): Promise<FilterVerdict> {
    const v = await this.#ask(s, extended ? 'ehlo' : 'helo', [name]);
    if (v.kind !== 'reject') this.#report('link-identify', [extended ? 'EHLO' : 'HELO', v.kind === 'rewrite' ? v.value : name]);
    return v;
  }

  /** STARTTLS: no TLS yet, so no parameter (OpenSMTPD's request carries none either). */
  starttls(s: SessionFacts): Promise<FilterVerdict> {
    return this.#ask(s, 'starttls', []);
  }

  /** AUTH: the mechanism only (OpenSMTPD passes the whole argument, initial response and password included). */
  auth(s: SessionFacts, mechanism: string): Promise<FilterVerdict> {
    return this.#ask(s, 'auth', [mechanism]);
  }

  async mail(s: SessionFacts, sender: string): Promise<FilterVerdict> {
    this.#tx = randomBytes(4).toString('hex');
    this.#junk = false;
    const v = await this.#ask(s, 'mail-from', [sender]);
    // As OpenSMTPD: a MAIL a filter refuses opens no transaction (nothing to report).
    if (v.kind === 'reject') this.#tx = undefined;
    return v;
  }

  rcpt(s: SessionFacts, rcpt: string): Promise<FilterVerdict> {
    return this.#ask(s, 'rcpt-to', [rcpt]);
  }

  data(s: SessionFacts): Promise<FilterVerdict> {
    return this.#ask(s, 'data', []);
  }

  content(chunk: Buffer): void {
    if (this.#failed !== undefined || !this.proc.wants('filter', 'data-line')) return;
    this.#stream ??= { lines: this.proc.dataLines(this.#id), split: new DataLineSplitter() };
    this.#stream.lines.write(this.#stream.split.push(chunk));
  }

  async message(s: SessionFacts, m: FilterMessage): Promise<MessageVerdict> {
    if (this.#failed !== undefined) return { kind: 'reject', reply: TEMPFAIL, reason: `filter ${this.proc.decl.name}: ${this.#failed}` };
    let out: Buffer | undefined;
    if (this.proc.wants('filter', 'data-line')) {
      // Not streamed (a filter after another in a chain): the whole message now.
      if (this.#stream === undefined) this.content(m.bytes);
      const a = await this.#endData();
      if (a?.kind !== 'lines') return this.#messageFailure(s, a?.kind === 'failed' ? a.why : 'unexpected answer to data-line');
      out = joinDataLines(a.lines);
    }
    const v = await this.#ask(s, 'commit', []);
    if (v.kind === 'reject') return v;
    const junk = this.#junk || v.kind === 'junk';
    if (out === undefined && !junk) return { kind: 'accept' };
    return { kind: 'accept', edits: { headers: junk ? [{ op: 'insert', index: 0, name: 'X-Spam', value: 'yes' }] : [], ...(out !== undefined && !out.equals(m.bytes) ? { message: out } : {}), addRcpts: [], delRcpts: [] } };
  }

  report(e: SessionReport): void {
    switch (e.kind) {
      case 'client':
        this.#report('protocol-client', [e.line]);
        this.#heard(e.line);
        return;
      case 'server':
        this.#report('protocol-server', [e.line]);
        if (e.line.charAt(3) !== '-') this.#replied(e.line);
        return;
      case 'tls':
        this.#report('link-tls', [`${e.version}:${e.cipher}:${e.bits ?? cipherBits(e.cipher)}`]);
        return;
      case 'auth':
        this.#report('link-auth', [e.result, e.user]);
        return;
      case 'queued':
        this.#size = e.size;
        for (const evpid of e.evpids) this.#report('tx-envelope', [this.#tx ?? '', evpid]);
        return;
      case 'timeout':
        this.#report('timeout');
        return;
    }
  }

  abort(): void {
    void this.#endData();
    // The end of a message is reported when its reply goes out (tx-commit or tx-rollback).
    if (this.#answered === 'END' || this.#tx === undefined) return;
    this.#report('tx-rollback', [this.#tx]);
    this.#report('tx-reset', [this.#tx]);
    this.#tx = undefined;
  }

  close(): void {
    void this.#endData();
    this.#report('link-disconnect');
  }

  #report(event: string, params: readonly string[] = []): void {
    this.proc.report(event, this.#id, params);
  }

  /** The data lines' end: the rest of the message and ".", then the filter's lines (undefined: none were sent). */
  #endData(): Promise<ProcAnswer> | undefined {
    const st = this.#stream;
    if (st === undefined) return undefined;
    this.#stream = undefined;
    st.lines.write(st.split.end().slice(0, -1));
    return st.lines.end();
  }

  /** A command line: which reply to watch for. */
  #heard(line: string): void {
    const verb = /^\S*/.exec(line)![0].toUpperCase();
    if (line === '.' || (verb === 'BDAT' && /\sLAST\s*$/i.test(line))) this.#answered = 'END';
    else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'DATA') this.#answered = verb;
    else this.#answered = 'OTHER';
    if (verb === 'MAIL' || verb === 'RCPT') this.#address = /<([^>]*)>/.exec(line)?.[1] ?? line.slice(line.indexOf(':') + 1).trim().split(/\s/)[0] ?? '';
  }

  /** The last line of a reply: the tx-* events it makes (OpenSMTPD's smtp_reply()). */
  #replied(line: string): void {
    const tx = this.#tx;
    const answered = this.#answered;
    this.#answered = 'OTHER';
    // A message refused before the filters were asked: its data lines end here.
    if (answered === 'END') void this.#endData();
    if (tx === undefined) return;
    const ok = line.startsWith('2') || (answered === 'DATA' && line.startsWith('3'));
    const result = ok ? 'ok' : line.startsWith('4') ? 'tempfail' : 'permfail';
    switch (answered) {
      case 'MAIL':
        if (ok) this.#report('tx-begin', [tx]);
        this.#report('tx-mail', [tx, result, this.#address]);
        if (!ok) this.#tx = undefined;
        return;
      case 'RCPT':
        this.#report('tx-rcpt', [tx, result, this.#address]);
        return;
      case 'DATA':
        this.#report('tx-data', [tx, result]);
        return;
      case 'END':
        if (ok) this.#report('tx-commit', [tx, String(this.#size)]);
        else this.#report('tx-rollback', [tx]);
        this.#report('tx-reset', [tx]);
        this.#tx = undefined;
        this.#size = 0;
        return;
      case 'OTHER':
        return;
    }
  }

  /** Ask at `phase` if the process registered for it; the decision as a verdict. */
  async #ask(s: SessionFacts, phase: ProcPhase, params: readonly string[]): Promise<FilterVerdict> {
    if (this.#failed !== undefined) return phase === 'connect' || phase === 'helo' || phase === 'ehlo' ? PROCEED : { kind: 'reject', reply: TEMPFAIL, reason: `filter ${this.proc.decl.name}: ${this.#failed}` };
    if (!this.proc.wants('filter', phase)) return PROCEED;
    const a: ProcAnswer = await this.proc.request(phase, this.#id, params);
    if (a.kind === 'failed') return this.#fail(s, a.why, phase);
    if (a.kind !== 'result') return this.#fail(s, 'unexpected answer', phase);
    this.#report('filter-response', [PHASE_NAMES[phase] ?? phase, a.decision, ...(a.param !== undefined ? [a.param] : [])]);
    const name = `filter ${this.proc.decl.name}`;
    switch (a.decision) {
      case 'proceed':
        return PROCEED;
      case 'junk':
        this.#junk = true;
        return { kind: 'junk', reason: `${name}: junk` };
      case 'report':
        this.log.event('filter', 'report', { session: s.id, filter: this.proc.decl.name, text: a.param ?? '' });
        this.#report('filter-report', ['proc', this.proc.decl.name, a.param ?? '']);
        return PROCEED;
      case 'rewrite':
        if (a.param === undefined || a.param === '') return this.#fail(s, 'rewrite without a value', phase);
        return { kind: 'rewrite', value: a.param, reason: `${name}: rewrite` };
      case 'reject':
      case 'disconnect': {
        const r = parseReplyText(a.param ?? '');
        if (r === undefined) return this.#fail(s, `${a.decision} with a malformed reply "${(a.param ?? '').slice(0, 80)}"`, phase);
        const disconnect = a.decision === 'disconnect' || r.code === 421 || phase === 'connect';
        return { kind: 'reject', reply: disconnect ? closing(r) : r, reason: `${name}: ${a.decision} ${r.code} ${r.lines.join(' ')}`, ...(disconnect ? { disconnect: true } : {}) };
      }
      default:
        return this.#fail(s, `unknown decision "${a.decision.slice(0, 40)}"`, phase);
    }
  }

  #fail(s: SessionFacts, why: string, phase: string): FilterVerdict {
    this.#failed ??= why;
    this.log.event('filter', 'proc-session-failed', { session: s.id, filter: this.proc.decl.name, phase, reason: why });
    if (phase === 'connect') return { kind: 'reject', reply: closing(reply(421, '4.7.0', 'Temporary failure in a mail filter, closing connection')), reason: `filter ${this.proc.decl.name}: ${why}`, disconnect: true };
    return { kind: 'reject', reply: TEMPFAIL, reason: `filter ${this.proc.decl.name}: ${why}` };
  }

  #messageFailure(s: SessionFacts, why: string): MessageVerdict {
    const v = this.#fail(s, why, 'data-line');
    return v.kind === 'reject' ? v : { kind: 'reject', reply: TEMPFAIL, reason: why };
  }
}

/** The processes of one generation, one per `proc-exec` filter, shared by its sessions. */
export class ProcRegistry {
  readonly #procs = new Map<string, FilterProcess>();
  constructor(
    private readonly log: FilterLog,
    private readonly make: (decl: FilterProcess['decl']) => FilterProcess,
  ) {}

  /** A session of filter `decl`'s process; a process started for a different declaration of that name (a reload changed it) is stopped and replaced. */
  session(decl: FilterProcess['decl'], hostname: string): ProcSession {
    let p = this.#procs.get(decl.name);
    if (p && !sameProcess(p.decl, decl)) {
      p.stop();
      p = undefined;
    }
    if (!p) {
      p = this.make(decl);
      this.#procs.set(decl.name, p);
    }
    return new ProcSession(p, hostname, this.log);
  }

  stop(): void {
    for (const p of this.#procs.values()) p.stop();
    this.#procs.clear();
  }
}

/** The phase names of filter-response (OpenSMTPD's: "connected" and "tls" differ from the request's). */
const PHASE_NAMES: Partial<Record<ProcPhase, string>> = { connect: 'connected', starttls: 'tls' };

/** The cipher's strength in bits, from its name (OpenSSL's names carry it: AES256, AES_128, CHACHA20). */
export function cipherBits(cipher: string): number {
  const m = /(?:AES|CAMELLIA|ARIA)[_-]?(128|256)/i.exec(cipher);
  if (m) return Number(m[1]);
  return /CHACHA20/i.test(cipher) ? 256 : 0;
}

function sameProcess(a: FilterProcess['decl'], b: FilterProcess['decl']): boolean {
  return a.command === b.command && a.user === b.user && a.group === b.group && a.timeoutMs === b.timeoutMs;
}
