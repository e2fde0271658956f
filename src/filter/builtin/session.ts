/*
 * filter/builtin/session.ts — OpenSMTPD's built-in filters (smtpd.conf(5),
 * `filter NAME phase PHASE match CONDITIONS DECISION`): at its phase, when
 * every condition holds (each may be negated with "!"), the decision is
 * taken; otherwise the session proceeds.
 *
 * Conditions read the session as it stands at that phase: rdns (a reverse
 * name, optionally in a table), fcrdns (the forward-confirmed reverse name
 * exists), src (client address in a table of networks), helo, mail-from,
 * rcpt-to (in a table of names or addresses), auth (authenticated,
 * optionally as a user in a table). `regex <t>`: the table's keys are
 * regular expressions matched against the value (its first 1,000
 * characters). A table that cannot be read is a temporary failure (451),
 * never a "no match", as for the rules.
 *
 * At phase commit, spf / dkim / dmarc / arc RESULT (or { R1, R2 }) test
 * `mailauth verify`'s results (one word per method: mailauth/verify/
 * verdict.ts authWords). A message that was not checked (an authenticated
 * or `local` sender, or no `mailauth verify`) has no results: such a
 * condition holds neither plain nor negated, so the decision is not taken.
 *
 * Decisions: bypass (proceed, and skip the rest of a chain at this phase),
 * junk (the message gets X-Spam: yes), reject / disconnect "CODE TEXT",
 * rewrite "VALUE" (helo, ehlo, mail-from), report "TEXT" (logged); at
 * phase commit also quarantine (the message is queued held) and
 * tag "Name: value" (that field is added at the top).
 */
import { closing, reply } from '../../mail/reply.js';
import type { SessionFacts } from '../../policy/policy.js';
import type { BuiltinCondition, BuiltinDecl } from '../../config/filter-options.js';
import type { Table, TableRegistry } from '../../table/table.js';
import { matchDomain, matchMailaddr, matchNetaddr } from '../../table/match.js';
import { PROCEED, type FilterLog, type FilterMessage, type FilterSession, type FilterVerdict, type MessageVerdict } from '../filter.js';
import { parseReplyText } from '../reply-text.js';

/** 'unknown': the condition cannot be decided (no authentication results): neither it nor its negation holds. */
type Match = boolean | 'unknown' | { readonly error: string };

interface Seen {
  readonly helo?: string;
  readonly sender?: string;
  readonly rcpt?: string;
  readonly auth?: FilterMessage['auth'];
}

/** The decisions only phase commit takes (the parser allows them nowhere else). */
type CommitOnly = { readonly kind: 'quarantine'; readonly reason: string } | { readonly kind: 'tag'; readonly name: string; readonly value: string };

export class BuiltinSession implements FilterSession {
  #helo?: string;
  #sender?: string;
  #junk = false;

  constructor(
    private readonly decl: BuiltinDecl,
    private readonly tables: Pick<TableRegistry, 'get'>,
    private readonly log: FilterLog,
  ) {}

  connect(s: SessionFacts): Promise<FilterVerdict> {
    return Promise.resolve(this.#at('connect', s, {}));
  }
  helo(s: SessionFacts, name: string, extended: boolean): Promise<FilterVerdict> {
    this.#helo = name;
    const phase = this.decl.phase;
    if (phase !== 'helo' && phase !== 'ehlo') return Promise.resolve(PROCEED);
    if ((phase === 'ehlo') !== extended) return Promise.resolve(PROCEED);
    return Promise.resolve(this.#at(phase, s, { helo: name }));
  }
  mail(s: SessionFacts, sender: string): Promise<FilterVerdict> {
    this.#sender = sender;
    this.#junk = false;
    return Promise.resolve(this.#at('mail-from', s, { sender }));
  }
  rcpt(s: SessionFacts, rcpt: string): Promise<FilterVerdict> {
    return Promise.resolve(this.#at('rcpt-to', s, { rcpt }));
  }
  data(s: SessionFacts): Promise<FilterVerdict> {
    return Promise.resolve(this.#at('data', s, {}));
  }

  message(s: SessionFacts, m: FilterMessage): Promise<MessageVerdict> {
    const v = this.decl.phase === 'commit' ? this.#decide(s, { sender: m.sender, ...(m.auth ? { auth: m.auth } : {}) }) : PROCEED;
    if (v.kind === 'reject') return Promise.resolve(v);
    const headers = [];
    if (this.#junk || v.kind === 'junk') headers.push({ op: 'insert' as const, index: 0, name: 'X-Spam', value: 'yes' });
    if (v.kind === 'tag') headers.push({ op: 'insert' as const, index: 0, name: v.name, value: v.value });
    if (v.kind === 'quarantine') this.log.event('filter', 'quarantine', { session: s.id, msgid: m.msgid, filter: this.decl.name });
    if (headers.length === 0 && v.kind !== 'quarantine') return Promise.resolve({ kind: 'accept' });
    return Promise.resolve({ kind: 'accept', edits: { headers, addRcpts: [], delRcpts: [], ...(v.kind === 'quarantine' ? { quarantine: v.reason } : {}) } });
  }

  abort(): void {
    this.#junk = false;
  }
  close(): void {}

  #at(phase: BuiltinDecl['phase'], s: SessionFacts, seen: Seen): FilterVerdict {
    if (this.decl.phase !== phase) return PROCEED;
    const v = this.#decide(s, seen);
    return v.kind === 'quarantine' || v.kind === 'tag' ? PROCEED : v;
  }

  #decide(s: SessionFacts, seen: Seen): FilterVerdict | CommitOnly {
    for (const c of this.decl.conditions) {
      const m = this.#condition(c, s, seen);
      if (m === 'unknown') return PROCEED;
      if (typeof m !== 'boolean') {
        this.log.event('filter', 'lookup-failed', { session: s.id, filter: this.decl.name, reason: m.error });
        return { kind: 'reject', reply: reply(451, '4.3.0', 'Temporary failure, try again later'), reason: `filter ${this.decl.name}: ${m.error}` };
      }
      if (m === c.negate) return PROCEED;
    }
    const d = this.decl.decision;
    const reason = `filter ${this.decl.name} (${this.decl.pos.file}:${this.decl.pos.line})`;
    switch (d.kind) {
      case 'bypass':
        return { kind: 'bypass' };
      case 'junk':
        this.#junk = true;
        return { kind: 'junk', reason };
      case 'quarantine':
        return { kind: 'quarantine', reason };
      case 'tag':
        return { kind: 'tag', name: d.name, value: d.value };
      case 'report':
        this.log.event('filter', 'report', { session: s.id, filter: this.decl.name, text: d.text });
        return PROCEED;
      case 'rewrite':
        return { kind: 'rewrite', value: d.value, reason };
      case 'reject':
      case 'disconnect': {
        const r = parseReplyText(d.text) ?? reply(550, '5.7.1', 'Rejected');
        const disconnect = d.kind === 'disconnect' || r.code === 421 || this.decl.phase === 'connect';
        return { kind: 'reject', reply: disconnect ? closing(r) : r, reason, ...(disconnect ? { disconnect: true } : {}) };
      }
    }
  }

  #condition(c: BuiltinCondition, s: SessionFacts, seen: Seen): Match {
    const helo = seen.helo ?? this.#helo ?? s.helo;
    const sender = seen.sender ?? this.#sender;
    switch (c.what) {
      case 'fcrdns':
        return s.rdns !== undefined;
      case 'rdns':
        if (s.rdns === undefined) return false;
        return c.table === undefined ? true : this.#table(c, s.rdns, matchDomain);
      case 'src':
        return s.fromSocket ? false : this.#table(c, s.clientAddress, matchNetaddr);
      case 'helo':
        return helo === undefined ? false : this.#table(c, helo, matchDomain);
      case 'mail-from':
        return sender === undefined ? false : this.#table(c, sender, matchMailaddr);
      case 'rcpt-to':
        return seen.rcpt === undefined ? false : this.#table(c, seen.rcpt, matchMailaddr);
      case 'auth':
        if (s.authUser === undefined) return false;
        return c.table === undefined ? true : this.#table(c, s.authUser, matchMailaddr);
      case 'spf':
      case 'dkim':
      case 'dmarc':
      case 'arc':
        return seen.auth === undefined ? 'unknown' : (c.results ?? []).includes(seen.auth[c.what]);
    }
  }

  #table(c: BuiltinCondition, value: string, plain: (t: Table, v: string) => Match): Match {
    const t = this.tables.get(c.table!);
    if (!t) return { error: `table "${c.table}" is not defined` };
    if (!c.regex) return plain(t, value);
    const keys = t.keys();
    if (!Array.isArray(keys)) return { error: (keys as { error: string }).error };
    const v = value.slice(0, 1000);
    for (const k of keys as readonly string[]) {
      try {
        if (new RegExp(k, 'i').test(v)) return true;
      } catch {
        return { error: `table "${c.table}": bad regular expression ${k}` };
      }
    }
    return false;
  }
}
