/*
 * policy/policy.ts — the policy phases of a session.
 *
 * connect → helo → mail → rcpt → data → commit. Each phase of each policy
 * module returns a Verdict; the first rejection wins. Modules are added in
 * order (rules file, ZMailer parameters, DNSBL … arrive with later work);
 * the smtpd.conf rule set always has the last word at RCPT, where it also
 * chooses the action (route) of the recipient.
 */
import type { Mailbox } from '../smtp/address.js';
import type { MailParams } from '../smtp/params.js';
import { PASS, type Verdict } from './verdict.js';
import type { RuleEngine } from './rules.js';
import type { RecipientCheck } from './recipients.js';
import { formatMailbox } from '../smtp/address.js';
import { reply } from '../smtp/reply.js';
import type { LocalNames } from './localnames.js';

/** What policy sees of a session (read-only). */
export interface SessionFacts {
  readonly id: string;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly fromSocket: boolean;
  readonly rdns?: string;
  readonly helo?: string;
  readonly esmtp: boolean;
  readonly tls: boolean;
  readonly authUser?: string;
  readonly tag?: string;
  readonly listener: string;
}

/** What policy sees of the transaction in progress. */
export interface TxFacts {
  readonly sender: Mailbox | null;
  readonly params: MailParams;
  readonly rcptCount: number;
}

export interface CommitFacts {
  readonly size: number;
  readonly receivedHeaders: number;
}

export interface PolicyPhase {
  readonly name: string;
  connect?(s: SessionFacts): Verdict | Promise<Verdict>;
  helo?(s: SessionFacts, helo: string): Verdict | Promise<Verdict>;
  mail?(s: SessionFacts, tx: TxFacts): Verdict | Promise<Verdict>;
  rcpt?(s: SessionFacts, tx: TxFacts, rcpt: Mailbox): Verdict | Promise<Verdict>;
  data?(s: SessionFacts, tx: TxFacts): Verdict | Promise<Verdict>;
  commit?(s: SessionFacts, tx: TxFacts, c: CommitFacts): Verdict | Promise<Verdict>;
}

export type RcptDecision =
  | { readonly kind: 'accept'; readonly action: string; readonly rule: string }
  | { readonly kind: 'reject'; readonly verdict: Verdict & { kind: 'reject' } };

export class Policy {
  constructor(
    private readonly phases: readonly PolicyPhase[],
    private readonly rules: RuleEngine,
    private readonly recipients: RecipientCheck,
    private readonly local: LocalNames,
  ) {}

  async connect(s: SessionFacts): Promise<Verdict> {
    return this.run((p) => p.connect?.(s));
  }

  async helo(s: SessionFacts, helo: string): Promise<Verdict> {
    return this.run((p) => p.helo?.(s, helo));
  }

  async mail(s: SessionFacts, tx: TxFacts): Promise<Verdict> {
    return this.run((p) => p.mail?.(s, tx));
  }

  async rcpt(s: SessionFacts, tx: TxFacts, rcpt: Mailbox): Promise<RcptDecision> {
    const v = await this.run((p) => p.rcpt?.(s, tx, rcpt));
    if (v.kind === 'reject') return { kind: 'reject', verdict: v };
    const d = this.rules.decide({
      clientAddress: s.clientAddress,
      fromSocket: s.fromSocket,
      rdns: s.rdns,
      helo: s.helo,
      authUser: s.authUser,
      tls: s.tls,
      tag: s.tag,
      sender: tx.sender ? formatMailbox(tx.sender) : '',
      rcpt: formatMailbox(rcpt),
      rcptDomain: rcpt.domain,
    });
    if (d.kind === 'reject') return { kind: 'reject', verdict: { kind: 'reject', reply: d.reply, reason: d.reason } };
    // A relay rule that matches one of our own domains would send the mail back to us, forever.
    if (d.action.kind === 'relay' && d.action.relay?.host === undefined && this.local.isLocalDomain(rcpt.domain)) {
      return {
        kind: 'reject',
        verdict: { kind: 'reject', reply: reply(550, '5.4.6', 'Routing loop: this domain is handled here but was routed to relaying'), reason: `rule ${d.rule.pos.file}:${d.rule.pos.line} relays mail for local domain ${rcpt.domain}` },
      };
    }
    const r = this.recipients.check(d.action, rcpt.local, rcpt.domain);
    if (r.kind === 'refuse') return { kind: 'reject', verdict: { kind: 'reject', reply: r.reply, reason: r.reason } };
    return { kind: 'accept', action: d.action.name, rule: `${d.rule.pos.file}:${d.rule.pos.line}` };
  }

  async data(s: SessionFacts, tx: TxFacts): Promise<Verdict> {
    return this.run((p) => p.data?.(s, tx));
  }

  async commit(s: SessionFacts, tx: TxFacts, c: CommitFacts): Promise<Verdict> {
    return this.run((p) => p.commit?.(s, tx, c));
  }

  private async run(f: (p: PolicyPhase) => Verdict | Promise<Verdict> | undefined): Promise<Verdict> {
    for (const p of this.phases) {
      const v = await f(p);
      if (v !== undefined && v.kind === 'reject') return v;
    }
    return PASS;
  }
}
