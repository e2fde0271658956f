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
import { expandRecipient, type ExpandEnv } from '../expand/expand.js';
import type { Destination } from '../spool/envelope.js';
import type { Config } from '../config/model.js';
import type { TableRegistry } from '../table/table.js';
import type { UserBase } from '../delivery/users.js';
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

/** One final destination of an accepted recipient (after aliases, virtual tables, userbase). */
export interface RcptTarget {
  readonly address: string;
  readonly action: string;
  readonly rule: string;
  readonly dest: Destination;
}

export type RcptDecision =
  | { readonly kind: 'accept'; readonly targets: readonly RcptTarget[]; readonly action: string; readonly rule: string }
  | { readonly kind: 'reject'; readonly verdict: Verdict & { kind: 'reject' } };

/** What recipient expansion needs besides the rules. */
export interface ExpansionDeps {
  readonly config: Config;
  readonly tables: TableRegistry;
  readonly users: UserBase;
}

export class Policy {
  constructor(
    private readonly phases: readonly PolicyPhase[],
    private readonly rules: RuleEngine,
    private readonly expansion: ExpansionDeps,
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
    const ctx = {
      clientAddress: s.clientAddress,
      fromSocket: s.fromSocket,
      rdns: s.rdns,
      helo: s.helo,
      authUser: s.authUser,
      tls: s.tls,
      tag: s.tag,
      sender: tx.sender ? formatMailbox(tx.sender) : '',
    };
    const d = this.rules.decide({ ...ctx, rcpt: formatMailbox(rcpt), rcptDomain: rcpt.domain });
    if (d.kind === 'reject') return { kind: 'reject', verdict: { kind: 'reject', reply: d.reply, reason: d.reason } };
    // A relay rule that matches one of our own domains would send the mail back to us, forever.
    if (d.action.kind === 'relay' && d.action.relay?.host === undefined && this.local.isLocalDomain(rcpt.domain)) {
      return {
        kind: 'reject',
        verdict: { kind: 'reject', reply: reply(550, '5.4.6', 'Routing loop: this domain is handled here but was routed to relaying'), reason: `rule ${d.rule.pos.file}:${d.rule.pos.line} relays mail for local domain ${rcpt.domain}` },
      };
    }
    // Expansion (aliases, virtual, userbase) happens now, as OpenSMTPD's lka does: each final
    // destination gets its own envelope. Addresses it produces are routed as mail from this host.
    const env: ExpandEnv = {
      ...this.expansion,
      local: this.local,
      route: (address: string) => {
        const at = address.lastIndexOf('@');
        return this.rules.decide({ ...ctx, clientAddress: '127.0.0.1', fromSocket: true, rcpt: address, rcptDomain: at < 0 ? '' : address.slice(at + 1).toLowerCase() });
      },
    };
    const x = expandRecipient(rcpt, { rule: d.rule, action: d.action }, env);
    if (x.kind === 'reject') return { kind: 'reject', verdict: { kind: 'reject', reply: x.reply, reason: x.reason } };
    const targets = x.targets.map((t): RcptTarget => ({
      address: t.address,
      action: t.action.name,
      rule: t.rule,
      dest: t.dest.kind === 'user' && t.extension !== undefined ? { ...t.dest, extension: t.extension } : t.dest,
    }));
    return { kind: 'accept', targets, action: d.action.name, rule: `${d.rule.pos.file}:${d.rule.pos.line}` };
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
