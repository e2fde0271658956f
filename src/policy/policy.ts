/*
 * policy/policy.ts — the policy phases of a session.
 *
 * connect → helo → mail → rcpt → data → commit. Each phase of each policy
 * module returns a Verdict; the first rejection wins. The phases are built
 * from the configuration in policy/build.ts, in this order: load average,
 * ZMailer's smtpserver.conf (HELO patterns, max-error-recipients), the
 * Obtuse rules file (RCPT), the content filter (commit). The smtpd.conf
 * rule set always has the last word at RCPT, where it also chooses the
 * action (route) of the recipient.
 *
 * At commit a phase may answer more than pass/reject (CommitVerdict): hold
 * the message (content filter "freeze"), discard it while telling the
 * client 250, or accept it with a reply of its own.
 *
 * An observer (the dry run, smtpd -b) hears why each phase decided as it
 * did; without one nothing is recorded.
 */
import type { Probe } from '../metrics/probe.js';
import type { Mailbox } from '../mail/address.js';
import type { MailParams } from '../mail/params.js';
import { PASS, type Verdict } from './verdict.js';
import type { RuleEngine } from '../rules/rules.js';
import { expandRecipientAsync, type ExpandEnv } from '../expand/expand.js';
import type { Destination } from '../mail/envelope.js';
import type { Config } from '../config/model.js';
import type { TableRegistry } from '../table/table.js';
import type { UserBase } from '../users/system-users.js';
import { formatMailbox } from '../mail/address.js';
import { reply, type Reply } from '../mail/reply.js';
import type { LocalNames } from '../rules/localnames.js';
import type { BodyFile } from '../spool/spool.js';

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
  /** The whoson user of the client's address, when smtpserver -w asked at accept. */
  readonly whoson?: Promise<string | undefined>;
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
  /** The spool's id of the message. */
  readonly msgid?: string;
  /** The whole message as received, as a file for an outside program (the spool's writer makes it on demand). */
  readonly body?: { file(): Promise<BodyFile> };
}

/** What a commit phase may answer besides pass/reject. */
export type CommitVerdict =
  | Verdict
  /** Keep the message but never deliver it until released (content filter "freeze"). `reply` replaces the usual 250. */
  | { readonly kind: 'hold'; readonly reason: string; readonly reply?: Reply }
  /** Tell the client `reply` (2xx) and throw the message away. */
  | { readonly kind: 'discard'; readonly reason: string; readonly reply: Reply }
  /** Accept (a phase that wants the dry run to hear why); `reply` replaces the usual 250. */
  | { readonly kind: 'accept'; readonly reason: string; readonly reply?: Reply };

export type CommitDecision =
  | { readonly kind: 'accept'; readonly reply?: Reply; readonly hold?: string }
  | { readonly kind: 'discard'; readonly reply: Reply; readonly reason: string }
  | { readonly kind: 'reject'; readonly verdict: Verdict & { kind: 'reject' } };

export type PhaseName = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'commit';

/** Why a phase decided as it did (for the dry run). */
export interface PolicyNote {
  readonly phase: PhaseName;
  /** The module: "zmailer", "obtuse-rules", "smtpd.conf", "content-filter" … */
  readonly source: string;
  readonly why: string;
}

export type PolicyObserver = (note: PolicyNote) => void;

export interface PolicyPhase {
  readonly name: string;
  /** The phase tells the observer itself why it decided (so Policy does not note its rejections again). */
  readonly explains?: boolean;
  connect?(s: SessionFacts): Verdict | Promise<Verdict>;
  helo?(s: SessionFacts, helo: string): Verdict | Promise<Verdict>;
  mail?(s: SessionFacts, tx: TxFacts): Verdict | Promise<Verdict>;
  rcpt?(s: SessionFacts, tx: TxFacts, rcpt: Mailbox): Verdict | Promise<Verdict>;
  data?(s: SessionFacts, tx: TxFacts): Verdict | Promise<Verdict>;
  commit?(s: SessionFacts, tx: TxFacts, c: CommitFacts): CommitVerdict | Promise<CommitVerdict>;
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
    private readonly observer?: PolicyObserver,
    /** Counts decisions by check for /metrics (metrics/probe.ts). */
    private readonly probe?: Pick<Probe, 'policy'>,
  ) {}

  /** The phases in the order they run (for the dry run's listing). */
  get phaseNames(): readonly string[] {
    return this.phases.map((p) => p.name);
  }

  async connect(s: SessionFacts): Promise<Verdict> {
    return this.run('connect', (p) => p.connect?.(s));
  }

  async helo(s: SessionFacts, helo: string): Promise<Verdict> {
    return this.run('helo', (p) => p.helo?.(s, helo));
  }

  async mail(s: SessionFacts, tx: TxFacts): Promise<Verdict> {
    return this.run('mail', (p) => p.mail?.(s, tx));
  }

  async rcpt(s: SessionFacts, tx: TxFacts, rcpt: Mailbox): Promise<RcptDecision> {
    let grant: RelayGrant | undefined;
    let trusted: string | undefined;
    const v = await this.run(
      'rcpt',
      async (p) => {
        const r = await p.rcpt?.(s, tx, rcpt);
        if (r?.kind === 'pass' && r.trusted !== undefined) trusted ??= `${p.name}: ${r.trusted}`;
        return r ?? PASS;
      },
      (pass) => (grant ??= pass.grant),
    );
    if (v.kind === 'reject') return { kind: 'reject', verdict: v };
    if (trusted !== undefined) this.note('rcpt', 'trusted', trusted);
    const d = await this.route(trusted !== undefined ? { ...s, clientAddress: '127.0.0.1', fromSocket: true } : s, tx, rcpt, grant);
    this.probe?.policy('smtpd.conf', 'rcpt', d.kind);
    if (this.observer) {
      if (d.kind === 'reject') this.note('rcpt', 'smtpd.conf', d.verdict.reason);
      else {
        const same = d.targets.length === 1 && d.targets[0]?.address.toLowerCase() === formatMailbox(rcpt).toLowerCase();
        this.note('rcpt', 'smtpd.conf', `rule ${d.rule} matches: action "${d.action}"${same ? '' : ` → ${d.targets.map((t) => t.address).join(', ')}`}`);
      }
    }
    return d;
  }

  /** The smtpd.conf rules and recipient expansion: where the recipient goes, or why not. */
  private async route(s: SessionFacts, tx: TxFacts, rcpt: Mailbox, grant?: RelayGrant): Promise<RcptDecision> {
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
    // RFC 5321 §4.5.1: <postmaster> without a domain must be accepted. As OpenSMTPD does, it is
    // postmaster@HOSTNAME; if the client's rules do not take it, it goes where mail from this host would.
    const bare = rcpt.domain === '';
    if (bare) rcpt = { ...rcpt, domain: this.local.hostname };
    const address = formatMailbox(rcpt);
    let d = this.rules.decide({ ...ctx, rcpt: address, rcptDomain: rcpt.domain });
    if (d.kind === 'reject' && bare) d = this.rules.decide({ ...ctx, clientAddress: '127.0.0.1', fromSocket: true, rcpt: address, rcptDomain: rcpt.domain });
    // The rules file allowed it and no smtpd.conf rule matched (an explicit reject still wins): relay it.
    if (d.kind === 'reject' && d.rule === undefined && grant !== undefined && !bare && !this.local.isLocalDomain(rcpt.domain)) {
      const relay = relayAction(this.expansion.config);
      if (relay !== undefined) {
        return { kind: 'accept', targets: [{ address, action: relay.name, rule: grant.rule, dest: { kind: 'remote' } }], action: relay.name, rule: grant.rule };
      }
    }
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
    const x = await expandRecipientAsync(rcpt, { rule: d.rule, action: d.action }, env);
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
    return this.run('data', (p) => p.data?.(s, tx));
  }

  /**
   * The commit phases, in order: the first reject or discard ends the check;
   * a hold is kept while later phases still run; the last accept reply wins.
   */
  async commit(s: SessionFacts, tx: TxFacts, c: CommitFacts): Promise<CommitDecision> {
    let hold: string | undefined;
    let replyOverride: Reply | undefined;
    for (const p of this.phases) {
      const v = await p.commit?.(s, tx, c);
      if (v === undefined || v.kind === 'pass') continue;
      if (!p.explains) this.note('commit', p.name, v.reason);
      this.probe?.policy(p.name, 'commit', v.kind);
      if (v.kind === 'reject') return { kind: 'reject', verdict: v };
      if (v.kind === 'discard') return { kind: 'discard', reply: v.reply, reason: v.reason };
      if (v.kind === 'hold') hold = v.reason;
      if (v.reply !== undefined) replyOverride = v.reply;
    }
    return { kind: 'accept', ...(replyOverride ? { reply: replyOverride } : {}), ...(hold !== undefined ? { hold } : {}) };
  }

  private note(phase: PhaseName, source: string, why: string): void {
    this.observer?.({ phase, source, why });
  }

  private async run(phase: PhaseName, f: (p: PolicyPhase) => Verdict | Promise<Verdict> | undefined, onPass?: (v: Verdict & { kind: 'pass' }) => void): Promise<Verdict> {
    for (const p of this.phases) {
      const v = await f(p);
      if (v !== undefined && v.kind === 'pass') onPass?.(v);
      if (v !== undefined && v.kind === 'reject') {
        if (!p.explains) this.note(phase, p.name, v.reason);
        this.probe?.policy(p.name, phase, 'reject');
        return v;
      }
    }
    return PASS;
  }
}

type RelayGrant = NonNullable<(Verdict & { kind: 'pass' })['grant']>;

/** The action a granted recipient is relayed with: the first relay action without a host (MX), else the first relay action. */
function relayAction(config: Config): { readonly name: string } | undefined {
  const relays = [...config.actions.values()].filter((a) => a.kind === 'relay');
  return relays.find((a) => a.relay?.host === undefined) ?? relays[0];
}
