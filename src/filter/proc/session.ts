/*
 * filter/proc/session.ts — one SMTP session as a filter process sees it
 * (smtpd-filters(7)): the report events it registered for, and a filter
 * request at each phase it registered for, answered by filter-result
 * (proceed, junk, reject, disconnect, rewrite, report). At the end of the
 * message, the stored message goes out as data lines and what comes back
 * is the message (so a filter may add, change or drop lines: DKIM
 * signatures, spam headers), then the commit request.
 *
 * A failed process (filter/proc/process.ts) gives the session a temporary
 * failure: 421 at connect (the session closes), 451 4.7.0 at every later
 * command, as long as the session lasts.
 */
import { randomBytes } from 'node:crypto';
import { reply, closing } from '../../mail/reply.js';
import type { SessionFacts } from '../../policy/policy.js';
import { PROCEED, type FilterLog, type FilterMessage, type FilterSession, type FilterVerdict, type MessageVerdict } from '../filter.js';
import { parseReplyText } from '../reply-text.js';
import type { FilterProcess, ProcAnswer } from './process.js';
import { dataLines, joinDataLines, type ProcPhase } from './protocol.js';

const TEMPFAIL = reply(451, '4.7.0', 'Temporary failure in a mail filter, try again later');

export class ProcSession implements FilterSession {
  readonly #id = randomBytes(8).toString('hex');
  #tx?: string;
  #failed?: string;
  #junk = false;

  constructor(
    private readonly proc: FilterProcess,
    private readonly hostname: string,
    private readonly log: FilterLog,
  ) {}

  async connect(s: SessionFacts): Promise<FilterVerdict> {
    const why = await this.proc.ensure();
    if (why !== undefined) return this.#fail(s, why, 'connect');
    const src = s.fromSocket ? 'unix:socket' : `${s.clientAddress}:${s.clientPort}`;
    const params = [s.rdns ?? '', s.rdns !== undefined ? 'pass' : 'fail', src, s.listener];
    this.proc.report('link-connect', this.#id, params);
    this.proc.report('link-greeting', this.#id, [this.hostname]);
    return this.#ask(s, 'connect', params);
  }

  async helo(s: SessionFacts, name: string, extended: boolean): Promise<FilterVerdict> {
    const v = await this.#ask(s, extended ? 'ehlo' : 'helo', [name]);
    if (v.kind !== 'reject') this.proc.report('link-identify', this.#id, [extended ? 'EHLO' : 'HELO', v.kind === 'rewrite' ? v.value : name]);
    return v;
  }

  async mail(s: SessionFacts, sender: string): Promise<FilterVerdict> {
    if (this.#tx !== undefined) this.abort();
    this.#tx = randomBytes(4).toString('hex');
    this.#junk = false;
    this.proc.report('tx-begin', this.#id, [this.#tx]);
    const v = await this.#ask(s, 'mail-from', [sender]);
    this.proc.report('tx-mail', this.#id, [this.#tx, v.kind === 'rewrite' ? v.value : sender, v.kind === 'reject' ? (v.reply.code >= 500 ? 'permfail' : 'tempfail') : 'ok']);
    return v;
  }

  async rcpt(s: SessionFacts, rcpt: string): Promise<FilterVerdict> {
    const v = await this.#ask(s, 'rcpt-to', [rcpt]);
    this.proc.report('tx-rcpt', this.#id, [this.#tx ?? '', v.kind === 'rewrite' ? v.value : rcpt, v.kind === 'reject' ? (v.reply.code >= 500 ? 'permfail' : 'tempfail') : 'ok']);
    return v;
  }

  async data(s: SessionFacts): Promise<FilterVerdict> {
    const v = await this.#ask(s, 'data', []);
    this.proc.report('tx-data', this.#id, [this.#tx ?? '', v.kind === 'reject' ? (v.reply.code >= 500 ? 'permfail' : 'tempfail') : 'ok']);
    return v;
  }

  async message(s: SessionFacts, m: FilterMessage): Promise<MessageVerdict> {
    if (this.#failed !== undefined) return { kind: 'reject', reply: TEMPFAIL, reason: `filter ${this.proc.decl.name}: ${this.#failed}` };
    let out: Buffer | undefined;
    if (this.proc.wants('filter', 'data-line')) {
      const a = await this.proc.request('data-line', this.#id, undefined, dataLines(m.bytes));
      if (a.kind !== 'lines') return this.#messageFailure(s, a.kind === 'failed' ? a.why : 'unexpected answer to data-line');
      out = joinDataLines(a.lines);
    }
    const v = await this.#ask(s, 'commit', []);
    const tx = this.#tx ?? '';
    this.#tx = undefined;
    if (v.kind === 'reject') {
      this.proc.report('tx-rollback', this.#id, [tx]);
      return v;
    }
    this.proc.report('tx-commit', this.#id, [tx, String((out ?? m.bytes).length)]);
    const junk = this.#junk || v.kind === 'junk';
    if (out === undefined && !junk) return { kind: 'accept' };
    return { kind: 'accept', edits: { headers: junk ? [{ op: 'insert', index: 0, name: 'X-Spam', value: 'yes' }] : [], ...(out !== undefined && !out.equals(m.bytes) ? { message: out } : {}), addRcpts: [], delRcpts: [] } };
  }

  abort(): void {
    if (this.#tx !== undefined) this.proc.report('tx-rollback', this.#id, [this.#tx]);
    this.proc.report('tx-reset', this.#id, this.#tx !== undefined ? [this.#tx] : []);
    this.#tx = undefined;
  }

  close(): void {
    this.proc.report('link-disconnect', this.#id);
  }

  /** Ask at `phase` if the process registered for it; the decision as a verdict. */
  async #ask(s: SessionFacts, phase: ProcPhase, params: readonly string[]): Promise<FilterVerdict> {
    if (this.#failed !== undefined) return phase === 'connect' || phase === 'helo' || phase === 'ehlo' ? PROCEED : { kind: 'reject', reply: TEMPFAIL, reason: `filter ${this.proc.decl.name}: ${this.#failed}` };
    if (!this.proc.wants('filter', phase)) return PROCEED;
    const a: ProcAnswer = await this.proc.request(phase, this.#id, params);
    if (a.kind === 'failed') return this.#fail(s, a.why, phase);
    if (a.kind !== 'result') return this.#fail(s, 'unexpected answer', phase);
    const name = `filter ${this.proc.decl.name}`;
    switch (a.decision) {
      case 'proceed':
        return PROCEED;
      case 'junk':
        this.#junk = true;
        return { kind: 'junk', reason: `${name}: junk` };
      case 'report':
        this.log.event('filter', 'report', { session: s.id, filter: this.proc.decl.name, text: a.param ?? '' });
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

function sameProcess(a: FilterProcess['decl'], b: FilterProcess['decl']): boolean {
  return a.command === b.command && a.user === b.user && a.group === b.group && a.timeoutMs === b.timeoutMs;
}
