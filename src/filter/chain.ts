/*
 * filter/chain.ts — several filters as one (OpenSMTPD's `filter NAME chain
 * { a, b }`, or a listener's list): asked in order; the first verdict other
 * than proceed wins and later filters are not asked for that command (a
 * junk verdict is kept and the chain goes on; a rewrite is passed on as the
 * value the next filter sees). At the end of the message each filter sees
 * the message as the filters before it left it, and the edits add up.
 * Only the first filter can read the message as it arrives (content()):
 * the others must see what the ones before them made of it, at its end.
 * Every filter gets the session's reports.
 */
import type { SessionFacts } from '../policy/policy.js';
import { PROCEED, type FilterMessage, type FilterSession, type FilterVerdict, type MessageEdits, type MessageVerdict, type SessionReport } from './filter.js';
import { applyEdits } from './message-parts.js';

export class FilterChain implements FilterSession {
  constructor(private readonly members: readonly FilterSession[]) {}

  connect(s: SessionFacts): Promise<FilterVerdict> {
    return this.#run((f) => f.connect(s));
  }
  helo(s: SessionFacts, name: string, extended: boolean): Promise<FilterVerdict> {
    return this.#run((f, v) => f.helo(s, v ?? name, extended), name);
  }
  starttls(s: SessionFacts): Promise<FilterVerdict> {
    return this.#run((f) => f.starttls?.(s) ?? Promise.resolve(PROCEED));
  }
  auth(s: SessionFacts, mechanism: string): Promise<FilterVerdict> {
    return this.#run((f) => f.auth?.(s, mechanism) ?? Promise.resolve(PROCEED));
  }
  mail(s: SessionFacts, sender: string, args: readonly string[]): Promise<FilterVerdict> {
    return this.#run((f, v) => f.mail(s, v ?? sender, args), sender);
  }
  rcpt(s: SessionFacts, rcpt: string, args: readonly string[]): Promise<FilterVerdict> {
    return this.#run((f, v) => f.rcpt(s, v ?? rcpt, args), rcpt);
  }
  data(s: SessionFacts): Promise<FilterVerdict> {
    return this.#run((f) => f.data(s));
  }

  async message(s: SessionFacts, m: FilterMessage): Promise<MessageVerdict> {
    let bytes = m.bytes;
    let sender = m.sender;
    let recipients = [...m.recipients];
    const add: string[] = [];
    const del: string[] = [];
    let quarantine: string | undefined;
    let changed = false;
    for (const f of this.members) {
      const v = await f.message(s, { ...m, bytes, sender, recipients });
      if (v.kind !== 'accept') return v;
      const e = v.edits;
      if (!e) continue;
      if (e.headers.length > 0 || e.body !== undefined || e.message !== undefined) {
        bytes = applyEdits(bytes, e);
        changed = true;
      }
      if (e.sender !== undefined) sender = e.sender;
      for (const r of e.delRcpts) {
        del.push(r);
        recipients = recipients.filter((x) => x.toLowerCase() !== r.toLowerCase());
      }
      for (const r of e.addRcpts) {
        add.push(r);
        recipients.push(r);
      }
      quarantine ??= e.quarantine;
    }
    const edits: MessageEdits = {
      headers: [],
      ...(changed ? { message: bytes } : {}),
      ...(sender !== m.sender ? { sender } : {}),
      addRcpts: add,
      delRcpts: del,
      ...(quarantine !== undefined ? { quarantine } : {}),
    };
    return { kind: 'accept', edits };
  }

  content(chunk: Buffer): void {
    this.members[0]?.content?.(chunk);
  }
  report(e: SessionReport): void {
    for (const f of this.members) f.report?.(e);
  }

  abort(): void {
    for (const f of this.members) f.abort();
  }
  close(): void {
    for (const f of this.members) f.close();
  }

  async #run(ask: (f: FilterSession, value: string | undefined) => Promise<FilterVerdict>, value?: string): Promise<FilterVerdict> {
    let current = value;
    let junk: FilterVerdict | undefined;
    for (const f of this.members) {
      const v = await ask(f, current);
      if (v.kind === 'proceed') continue;
      if (v.kind === 'bypass') break;
      if (v.kind === 'junk') {
        junk ??= v;
        continue;
      }
      if (v.kind === 'rewrite') {
        current = v.value;
        continue;
      }
      return v;
    }
    if (current !== value && current !== undefined) return { kind: 'rewrite', value: current, reason: 'filter rewrite' };
    return junk ?? PROCEED;
  }
}
