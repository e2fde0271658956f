/*
 * queue/enqueue.ts — the one way into the queue.
 *
 * Every path that creates mail comes through here: the SMTP session
 * (smtp/session.ts), local submission by `sendmail` (submit/local-enqueue.ts)
 * and the reports the scheduler writes (bounce/enqueue.ts). The door runs,
 * in this order and the same for all of them:
 *
 *   open()    the `data` policy phase, then storage for the message
 *   write()   the content, scanned for Received: headers on its way
 *   commit()  a check the caller already failed (size, NUL, bare LF), a
 *             failed write, the Received: loop limit, the `commit` policy
 *             phase (content filter …), then the spool's durable commit,
 *             "held" records for a frozen message, the mail log, the
 *             statistics, and the scheduler
 *
 * and answers with a Reply value the caller passes on (the session to its
 * client, sendmail to its user, the scheduler to its log). The session's
 * filters (milters, OpenSMTPD filters: filter/) see the message here,
 * before the commit, and their edits are applied here (queue/filtered.ts).
 * Recipients reach the envelope once per final destination, however many
 * RCPTs or aliases led there.
 */
import type { Config } from '../config/model.js';
import type { Envelope } from '../mail/envelope.js';
import type { RcptParams } from '../mail/params.js';
import { reply, type Reply } from '../mail/reply.js';
import type { MailLog } from '../log/maillog.js';
import type { CommitDecision, Policy, RcptTarget, SessionFacts, TxFacts } from '../policy/policy.js';
import { PASS, type Verdict } from '../policy/verdict.js';
import { storageFull } from '../spool/errors.js';
import type { EnvelopeDraft, MessageWriter, RecipientDraft, Spool } from '../spool/spool.js';
import type { Stats } from '../stats.js';
import { HeaderScanner } from '../wire/header-scan.js';
import { formatMailbox } from '../mail/address.js';
import type { InboundVerifier } from '../mailauth/verify/verifier.js';
import type { MessageCheck } from '../mailauth/verify/check.js';
import type { SchedulerSeam } from './seam.js';
import type { FilterMessage, FilterSession } from '../filter/filter.js';
import { filterStep, type RouteAdded } from './filtered.js';
import { HeaderCheckStream } from '../antispam/header-checks/stream.js';
import { headerCheckDecision } from '../antispam/header-checks/decision.js';

export interface FrontDoorEnv {
  readonly config: Config;
  readonly policy: Pick<Policy, 'data' | 'commit'>;
  readonly spool: Pick<Spool, 'createMessage' | 'appendOutcome' | 'remove'>;
  readonly log: Pick<MailLog, 'event' | 'error'>;
  readonly stats: Pick<Stats, 'inc'> & Partial<Pick<Stats, 'probe'>>;
  readonly scheduler: SchedulerSeam;
  readonly now: () => number;
  /** Routes a recipient a filter added (the rules, as mail from this host); without it such recipients are logged and left out. */
  readonly routeAdded?: RouteAdded<RcptRequest>;
  /** `mailauth verify`: SPF, DKIM, DMARC, ARC of mail received over SMTP (src/mailauth/verify/). */
  readonly inbound?: Pick<InboundVerifier, 'begin'>;
}

/** Who puts the message in: it decides the log lines and the counters, nothing else. */
export type Origin =
  | { readonly kind: 'smtp'; readonly session: string; readonly address?: string }
  | { readonly kind: 'local'; readonly uid: number; readonly user: string }
  | { readonly kind: 'bounce' };

/** An accepted recipient and where its copies go (policy's rcpt phase and expansion). */
export interface RcptRequest {
  readonly address: string;
  readonly params: Pick<RcptParams, 'orcpt' | 'notify'>;
  readonly targets: readonly TargetRequest[];
}

/** A final destination; `rule` is where the rules chose it (absent for mail Postern writes itself without one). */
export type TargetRequest = Omit<RcptTarget, 'rule'> & { readonly rule?: string };

/** What the envelope says: as stored (mail/envelope.ts), with the recipients as accepted, before the spool gives them ids. */
export type EnvelopeRequest = Omit<Envelope, 'version' | 'msgid' | 'size' | 'recipients'> & {
  readonly recipients: readonly RcptRequest[];
  /** Hold it whatever the commit phases say (a message another session accepted frozen: smtpserver -n/-i). */
  readonly hold?: string;
};

/** How a message ended at the door. `reply` is what to tell whoever sent it. */
export type DoorOutcome =
  | { readonly kind: 'queued'; readonly envelope: Envelope; readonly held: boolean; readonly reply: Reply }
  | { readonly kind: 'discarded'; readonly reply: Reply; readonly reason: string }
  | { readonly kind: 'refused'; readonly reply: Reply; readonly reason: string };

export type RejectVerdict = Verdict & { readonly kind: 'reject' };

const QUEUE_TEMPFAIL = reply(451, '4.3.0', 'Temporary failure in the queue, try again later');
/** RFC 3463 §3.4: X.3.1 Mail system full. */
const QUEUE_FULL = reply(452, '4.3.1', 'Insufficient system storage, try again later');

/** The reply for a failure to store: full disk or quota (452 4.3.1), anything else 451 4.3.0. */
export function storeFailureReply(err: unknown): Reply {
  return storageFull(err) ? QUEUE_FULL : QUEUE_TEMPFAIL;
}

export class FrontDoor {
  constructor(private readonly env: FrontDoorEnv) {}

  /** A door that runs no policy phase (the loop check and the rest still apply): for tools and tests. */
  static withoutPolicy(env: Omit<FrontDoorEnv, 'policy'>): FrontDoor {
    return new FrontDoor({ ...env, policy: { data: async () => PASS, commit: async () => ({ kind: 'accept' }) } });
  }

  /**
   * A message is about to come (DATA, BDAT, a sendmail file, a report):
   * the `data` phase decides, then the spool gives it a place.
   */
  async open(origin: Origin, facts: SessionFacts, tx: TxFacts, filter?: Pick<FilterSession, 'message' | 'content'>): Promise<IncomingMessage | RejectVerdict> {
    const v = await this.env.policy.data(facts, tx);
    if (v.kind === 'reject') return v;
    let writer: MessageWriter;
    try {
      writer = await this.env.spool.createMessage();
    } catch (e) {
      this.env.log.error(`spool: cannot create a message: ${(e as Error).message}`);
      return { kind: 'reject', reply: storeFailureReply(e), reason: `spool: ${(e as Error).message}` };
    }
    const check = origin.kind === 'smtp' ? this.env.inbound?.begin({ ...facts, sender: tx.sender ? formatMailbox(tx.sender) : '' }) : undefined;
    return new IncomingMessage(this.env, origin, facts, tx, writer, filter, check);
  }
}

/** One message on its way in: written, then committed or aborted, once. */
export class IncomingMessage {
  readonly kind = 'message';
  private readonly headers = new HeaderScanner();
  private storeError: unknown;
  private done = false;
  /** header_checks (antispam/header-checks/): the header section is held back, checked and rewritten. */
  private readonly checks: HeaderCheckStream | undefined;

  constructor(
    private readonly env: FrontDoorEnv,
    private readonly origin: Origin,
    private readonly facts: SessionFacts,
    private readonly tx: TxFacts,
    private writer: MessageWriter,
    /** The session's filters (filter/): they see the message before the commit (queue/filtered.ts). */
    private readonly filter?: Pick<FilterSession, 'message' | 'content'>,
    /** Mail authentication: holds the content until its Authentication-Results field is known. */
    private readonly check?: MessageCheck,
  ) {
    const rules = origin.kind === 'bounce' ? undefined : env.config.antispam?.headerChecks?.rules;
    this.checks = rules && rules.length > 0 ? new HeaderCheckStream(rules) : undefined;
  }

  get msgid(): string {
    return this.writer.msgid;
  }

  /** Bytes stored so far, Postern's own header included. */
  get size(): number {
    return this.writer.size;
  }

  /** A write has failed: the message will be refused at commit. */
  get failed(): boolean {
    return this.storeError !== undefined;
  }

  /** Postern's own trace header (Received:), written before the content and not counted by the loop check. */
  writeOwnHeader(text: string): void {
    this.store(Buffer.from(text, 'utf8'));
  }

  /** Message content. Keeps a reference to `chunk`. */
  write(chunk: Buffer): void {
    // The loop count and mail authentication see the message as it came; header checks change what is stored.
    this.headers.push(chunk);
    if (this.check === undefined) this.pass(chunk);
    else for (const c of this.check.push(chunk)) this.pass(c);
  }

  /** header_checks on the way to the spool. */
  private pass(chunk: Buffer): void {
    if (this.checks === undefined) this.store(chunk);
    else for (const b of this.checks.push(chunk)) this.store(b);
  }

  /** Wait until the spool has taken what was written (back-pressure); never rejects. Called per chunk: no more promises than the writer's own. */
  drain(): Promise<void> | undefined {
    if (this.storeError !== undefined) return undefined;
    return this.writer.drain().then(undefined, (e: unknown) => {
      this.storeError ??= e;
    });
  }

  /** Throw it all away (disconnect, RSET, a refusal). */
  async abort(): Promise<void> {
    this.done = true;
    this.check?.abort();
    await this.writer.abort().catch(() => undefined);
  }

  /**
   * The end of the message. `refusal`: a check the caller made already
   * failed (it is logged and answered like the door's own). Resolves with
   * what to tell the sender; a message is queued only with kind "queued".
   */
  async commit(req: EnvelopeRequest, refusal?: Reply): Promise<DoorOutcome> {
    if (this.done) return { kind: 'refused', reply: QUEUE_TEMPFAIL, reason: 'message already ended' };
    this.done = true;
    const { env } = this;
    if (refusal === undefined) await this.drain();
    let decision: CommitDecision | undefined;
    let authHold: string | undefined;
    let authWords: FilterMessage['auth'];
    if (refusal !== undefined) this.check?.abort();
    else if (this.check !== undefined) {
      const a = await this.check.finish();
      if (a.fields) this.logEvent('auth', { msgid: this.writer.msgid, ...a.fields, verdict: a.verdict.kind });
      if (a.verdict.kind === 'refuse') {
        this.logEvent('rejected', { msgid: this.writer.msgid, reason: a.verdict.reason });
        await this.writer.abort().catch(() => undefined);
        return { kind: 'refused', reply: a.verdict.reply, reason: a.verdict.reason };
      }
      if (Array.isArray(a.release)) {
        // Held in memory: stored at once, one wait for the spool.
        for (const c of a.release as readonly Buffer[]) this.pass(c);
        await this.drain();
      } else {
        for await (const c of a.release) {
          this.pass(c);
          await this.drain();
        }
      }
      if (a.verdict.kind === 'hold') authHold = `mailauth: ${a.verdict.reason}`;
      authWords = a.words;
    }
    const checked = this.checks ? this.endChecks() : undefined;
    if (refusal === undefined && this.storeError !== undefined) {
      env.log.error(`spool: write failed: ${(this.storeError as Error).message}`);
      refusal = storeFailureReply(this.storeError);
    }
    if (refusal === undefined && this.headers.receivedCount > env.config.smtp.maxReceivedHeaders) {
      refusal = reply(554, '5.4.6', 'Too many Received: headers: mail loop detected');
    }
    let filterHold: string | undefined;
    if (refusal === undefined && this.filter) {
      const f = await this.filtered(req, authWords);
      if (f.kind !== 'go') return f;
      req = f.req;
      filterHold = f.hold;
    }
    if (refusal === undefined && this.checks?.redirect !== undefined) {
      const r = await this.redirected(req);
      if (r.kind !== 'go') return r;
      req = r.req;
    }
    if (refusal === undefined) {
      const writer = this.writer;
      decision = checked?.kind === 'reject' || checked?.kind === 'discard' ? checked : await env.policy.commit(this.facts, this.tx, { size: writer.size, receivedHeaders: this.headers.receivedCount, msgid: writer.msgid, body: { file: () => writer.bodyFile() } });
      if (checked?.kind === 'accept' && checked.hold !== undefined && decision.kind === 'accept') decision = { ...decision, hold: decision.hold ?? checked.hold };
      if (decision.kind === 'reject') {
        this.logEvent('rejected', { msgid: writer.msgid, reason: decision.verdict.reason });
        await writer.abort().catch(() => undefined);
        return { kind: 'refused', reply: decision.verdict.reply, reason: decision.verdict.reason };
      }
      if (decision.kind === 'discard') {
        this.logEvent('discarded', { msgid: writer.msgid, from: `<${req.sender}>`, reason: decision.reason });
        await writer.abort().catch(() => undefined);
        return { kind: 'discarded', reply: decision.reply, reason: decision.reason };
      }
    }
    if (refusal !== undefined) {
      await this.writer.abort().catch(() => undefined);
      return { kind: 'refused', reply: refusal, reason: refusal.lines.join(' ') };
    }
    let envelope: Envelope;
    try {
      envelope = await this.writer.commit(envelopeDraft(req));
    } catch (e) {
      env.log.error(`spool: commit of ${this.writer.msgid} failed: ${(e as Error).message}`);
      await this.writer.abort().catch(() => undefined);
      return { kind: 'refused', reply: storeFailureReply(e), reason: `spool: ${(e as Error).message}` };
    }
    const hold = decision?.kind === 'accept' ? (decision.hold ?? authHold ?? filterHold ?? req.hold) : undefined;
    if (hold !== undefined && !(await this.recordHeld(envelope, hold))) {
      return { kind: 'refused', reply: QUEUE_TEMPFAIL, reason: 'cannot hold the message' };
    }
    try {
      await env.scheduler.enqueued(envelope, hold !== undefined ? { held: true } : undefined);
    } catch (e) {
      env.log.error(`queue: ${envelope.msgid} could not be handed on: ${(e as Error).message}`);
      return { kind: 'refused', reply: QUEUE_TEMPFAIL, reason: `hand-off: ${(e as Error).message}` };
    }
    this.logAccepted(envelope);
    const text = decision?.kind === 'accept' && decision.reply ? decision.reply : reply(250, '2.0.0', `${envelope.msgid} Message accepted for delivery`);
    return { kind: 'queued', envelope, held: hold !== undefined, reply: text };
  }

  /** The filter step (queue/filtered.ts): a refusal or discard ends the message here; else the (maybe new) writer and envelope go on. */
  private async filtered(req: EnvelopeRequest, auth: FilterMessage['auth']): Promise<DoorOutcome | { readonly kind: 'go'; readonly req: EnvelopeRequest; readonly hold?: string }> {
    const old = this.writer;
    let step;
    try {
      step = await filterStep(this.env, this.filter!, this.facts, old, { sender: req.sender, recipients: req.recipients.map((r) => r.address), ...(auth ? { auth } : {}) }, this.env.routeAdded);
    } catch (e) {
      this.env.log.error(`filter: ${old.msgid}: ${(e as Error).message}`);
      step = { kind: 'refused', reply: QUEUE_TEMPFAIL, reason: `filter: ${(e as Error).message}` } as const;
    }
    if (step.kind !== 'go') {
      this.logEvent(step.kind === 'refused' ? 'rejected' : 'discarded', { msgid: old.msgid, from: `<${req.sender}>`, reason: step.reason });
      await old.abort().catch(() => undefined);
      return step;
    }
    this.writer = step.writer;
    const del = new Set(step.delRcpts.map((a) => a.toLowerCase()));
    const recipients = [...req.recipients.filter((r) => !del.has(r.address.toLowerCase())), ...step.addRcpts];
    if (recipients.length === 0) {
      this.logEvent('discarded', { msgid: this.writer.msgid, from: `<${req.sender}>`, reason: 'filters removed every recipient' });
      await this.writer.abort().catch(() => undefined);
      return { kind: 'discarded', reply: reply(250, '2.0.0', `${this.writer.msgid} Message accepted for delivery`), reason: 'no recipient left' };
    }
    return { kind: 'go', req: { ...req, ...(step.sender !== undefined ? { sender: step.sender } : {}), recipients }, ...(step.hold !== undefined ? { hold: step.hold } : {}) };
  }

  /**
   * A header check's REDIRECT (Postfix's): the message goes to that address
   * instead of its recipients, after the filters (it overrides what they
   * added), routed as a recipient a filter adds. An address no rule accepts
   * is a temporary failure, logged: the message is neither lost nor sent on.
   */
  private async redirected(req: EnvelopeRequest): Promise<DoorOutcome | { readonly kind: 'go'; readonly req: EnvelopeRequest }> {
    const r = this.checks!.redirect!;
    const routed = this.env.routeAdded ? await this.env.routeAdded(r.address) : undefined;
    const reason = `header checks ${r.rule}: REDIRECT to <${r.address}> on "${r.header}"`;
    if (routed === undefined) {
      this.logEvent('rejected', { msgid: this.writer.msgid, reason: `${reason}: no rule accepts the address` });
      await this.writer.abort().catch(() => undefined);
      return { kind: 'refused', reply: QUEUE_TEMPFAIL, reason };
    }
    this.logEvent('redirected', { msgid: this.writer.msgid, from: `<${req.sender}>`, to: req.recipients.map((x) => `<${x.address}>`).join(','), reason });
    return { kind: 'go', req: { ...req, recipients: [routed] } };
  }

  /** The header checks' end: the rest of the held header, WARN lines logged; a decision when they reject, hold or discard (else the commit phases decide). */
  private endChecks(): CommitDecision | undefined {
    const checks = this.checks!;
    for (const b of checks.end()) this.store(b);
    for (const w of checks.warnings) this.logEvent('header-warning', { msgid: this.writer.msgid, rule: w });
    return headerCheckDecision(checks.verdict, this.facts, this.tx);
  }

  /** To the spool, and to the filters that read the message as it comes (filter processes' data lines). */
  private store(chunk: Buffer): void {
    if (this.storeError !== undefined || chunk.length === 0) return;
    try {
      this.writer.write(chunk);
    } catch (e) {
      this.storeError = e;
      return;
    }
    this.filter?.content?.(chunk);
  }

  /**
   * A frozen message (content filter): record "held" for every recipient
   * before anyone can try it. If that fails the message is removed again
   * and the sender told to retry. (A crash between the commit and these
   * records leaves the message unheld at the next start: the envelope has
   * no field for it.)
   */
  private async recordHeld(envelope: Envelope, reason: string): Promise<boolean> {
    const { spool, log } = this.env;
    const at = this.env.now();
    try {
      for (const r of envelope.recipients) await spool.appendOutcome(r.evpid, { kind: 'held', at });
    } catch (e) {
      log.error(`spool: cannot hold ${envelope.msgid}: ${(e as Error).message}; message removed`);
      await spool.remove(envelope.msgid).catch(() => undefined);
      return false;
    }
    this.logEvent('held', { msgid: envelope.msgid, reason });
    return true;
  }

  /** One line for the message and one per recipient, as each origin always logged them. */
  private logAccepted(e: Envelope): void {
    const { log, stats } = this.env;
    const o = this.origin;
    stats.probe?.received(o.kind, e.recipients.length, e.size);
    if (o.kind === 'bounce') return; // the reporter logs "bounce sent"
    const from = `<${e.sender}>`;
    if (o.kind === 'smtp') {
      stats.inc('smtp.message');
      stats.inc('smtp.message.bytes', e.size);
      log.event('smtp', 'message', { session: o.session, msgid: e.msgid, from, size: e.size, nrcpt: e.recipients.length, proto: e.client.proto, address: e.client.address, host: e.client.hostname });
      for (const r of e.recipients) log.event('smtp', 'envelope', { session: o.session, msgid: e.msgid, evpid: r.evpid, from, to: `<${r.address}>`, action: r.action });
      return;
    }
    stats.inc('smtp.message.local');
    log.event('local', 'message', { msgid: e.msgid, from, size: e.size, nrcpt: e.recipients.length, uid: o.uid, user: o.user });
    for (const r of e.recipients) log.event('local', 'envelope', { msgid: e.msgid, evpid: r.evpid, from, to: `<${r.address}>`, action: r.action });
  }

  private logEvent(event: string, fields: Record<string, string | number | undefined>): void {
    const o = this.origin;
    // The client's address on every line of a session's message (fail2ban and the administrator read it there).
    if (o.kind === 'smtp') this.env.log.event('smtp', event, { session: o.session, ...fields, ...(o.address !== undefined && fields.address === undefined ? { address: o.address } : {}) });
    else this.env.log.event(o.kind, event, fields);
  }
}

/** The spool's envelope: one recipient per final destination (a destination reached twice is kept once). */
function envelopeDraft(req: EnvelopeRequest): EnvelopeDraft {
  const only = req.recipients.length === 1 ? req.recipients[0] : undefined;
  if (only !== undefined && only.targets.length === 1) return draft(req, [recipientDraft(only, only.targets[0]!)]);
  const recipients: RecipientDraft[] = [];
  const seenAddress = new Set<string>();
  const seenDest = new Set<string>();
  for (const r of req.recipients) {
    const address = r.address.toLowerCase();
    if (seenAddress.has(address)) continue;
    seenAddress.add(address);
    for (const t of r.targets) {
      const key = `${t.action}|${JSON.stringify(t.dest)}|${t.dest.kind === 'remote' ? t.address.toLowerCase() : ''}`;
      if (seenDest.has(key)) continue;
      seenDest.add(key);
      recipients.push(recipientDraft(r, t));
    }
  }
  return draft(req, recipients);
}

function recipientDraft(r: RcptRequest, t: TargetRequest): RecipientDraft {
  return {
    address: t.address,
    ...(t.address.toLowerCase() !== r.address.toLowerCase() ? { original: r.address } : {}),
    orcpt: r.params.orcpt,
    notify: r.params.notify,
    action: t.action,
    ...(t.rule !== undefined ? { rule: t.rule } : {}),
    dest: t.dest,
  };
}

function draft(req: EnvelopeRequest, recipients: RecipientDraft[]): EnvelopeDraft {
  return {
    sender: req.sender,
    recipients,
    ret: req.ret,
    envid: req.envid,
    body: req.body,
    smtputf8: req.smtputf8,
    mailAuth: req.mailAuth,
    arrival: req.arrival,
    client: req.client,
  };
}
