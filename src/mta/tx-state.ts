/*
 * mta/tx-state.ts — what one outbound transaction (transaction.ts) is
 * given and gives back, and Tx, what its steps (tx-steps.ts) share: the
 * recipients accepted so far, the outcomes, whether the final dot left,
 * and the stage an error's detail names. StepName lists the states.
 */
import type { Readable } from 'node:stream';
import type { DeliveryStatus } from '../delivery/agent.js';
import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import type { Batch } from './batches.js';
import { mailCommand, rcptCommand, wantsRelayedDsn } from './commands.js';
import { has } from './ehlo.js';
import { BodyEncoder } from './encoder.js';
import { HeaderCheckStream } from '../antispam/header-checks/stream.js';
import type { HeaderRule } from '../config/antispam.js';
import type { RelayTuning } from './options.js';
import { replyText, type ServerReply } from './reply-parser.js';
import type { Verdict } from './route.js';
import { peerName, saidVerdict, type ClientSession } from './session.js';

export interface RcptOutcome extends Omit<Verdict, 'status'> {
  readonly status: DeliveryStatus;
  readonly rcpt: EnvelopeRecipient;
  /** The server's reply this outcome comes from (RCPT, DATA or the final one). */
  readonly reply?: ServerReply;
  /** Accepted by a server that does not do DSN, and NOTIFY=SUCCESS was asked: send a "relayed" DSN. */
  readonly relayed?: true;
}

export interface TxResult {
  /** Recipients with a final outcome from this session. */
  readonly outcomes: readonly RcptOutcome[];
  /** The session failed before deciding these (another host may take them). */
  readonly undecided: readonly EnvelopeRecipient[];
  readonly failure?: Verdict;
  /** Other hosts may be tried for `undecided`. */
  readonly nextHost: boolean;
}

export interface TxParams {
  readonly envelope: Envelope;
  readonly recipients: readonly EnvelopeRecipient[];
  /** Reverse path to send (after `mail-from`); "" for <>. */
  readonly sender: string;
  openBody(): Readable;
  readonly tuning: RelayTuning;
  /**
   * The session comes from the pool: prove it is still there with RSET
   * first — in the same pipelined group as MAIL, RCPT and DATA when the
   * server pipelines (no extra round trip), else on its own. If it is not,
   * every recipient is left undecided for a new connection.
   */
  readonly rsetFirst?: boolean;
  /** smtp-header-checks (antispam/header-checks/): applied to the header as it goes out. */
  readonly headerRules?: readonly HeaderRule[];
}

/** What the transaction knows and has decided so far; the steps (tx-steps.ts) read and change it. */
export class Tx {
  readonly env: Envelope;
  readonly who: string;
  readonly lmtp: boolean;
  readonly timeouts: RelayTuning['timeouts'];
  readonly useBdat: boolean;
  readonly pipelining: boolean;
  /** A cached session's RSET goes in the pipelined group (not with a pipelined BDAT: its first chunk may complete the message before the RSET reply is read). */
  readonly rsetInGroup: boolean;
  readonly enc: BodyEncoder;
  readonly mail: string;
  readonly rcptLines: readonly string[];
  readonly accepted: EnvelopeRecipient[] = [];
  /** The final "." (or BDAT LAST) is on its way: from here on the message may have been delivered. */
  dotSent = false;
  /** What was being sent or awaited, for an error's detail. */
  stage = 'MAIL FROM';
  body: AsyncGenerator<Batch> | undefined;
  /** With pipelined BDAT: the first chunk, sent in the group. */
  first: Batch | undefined;
  /** The replies to MAIL and to DATA/BDAT, when pipelined. */
  mailReply: ServerReply | undefined;
  dataReply: ServerReply | undefined;

  constructor(
    readonly session: ClientSession,
    readonly p: TxParams,
    /** The recipients that go to the server (preflight() failed the others). */
    readonly rcpts: readonly EnvelopeRecipient[],
    readonly outcomes: RcptOutcome[],
  ) {
    const caps = session.caps;
    this.env = p.envelope;
    this.who = peerName(session.target);
    this.lmtp = session.setup.lmtp;
    this.timeouts = p.tuning.timeouts;
    this.useBdat = (p.tuning.chunking && has(caps, 'CHUNKING')) || this.env.body === 'BINARYMIME';
    this.pipelining = p.tuning.pipelining && has(caps, 'PIPELINING');
    this.rsetInGroup = p.rsetFirst === true && this.pipelining && !this.useBdat;
    this.enc = new BodyEncoder({ stuff: !this.useBdat, raw: this.env.body === 'BINARYMIME', ...(p.headerRules && p.headerRules.length > 0 ? { headers: new HeaderCheckStream(p.headerRules) } : {}) });
    this.mail = mailCommand(this.env, caps, { sender: p.sender });
    this.rcptLines = rcpts.map((r) => rcptCommand(r, caps));
  }

  /** `v` for every recipient of `list`. */
  all(v: Verdict, list: readonly EnvelopeRecipient[], reply?: ServerReply): void {
    for (const rcpt of list) this.outcomes.push({ ...v, rcpt, ...(reply !== undefined ? { reply } : {}) });
  }

  /** Delivered: every recipient of `list`, by reply `r`. */
  ok(r: ServerReply, list: readonly EnvelopeRecipient[]): void {
    for (const rcpt of list) {
      this.outcomes.push({
        rcpt,
        status: 'ok',
        enhanced: r.enhanced ?? '2.0.0',
        detail: `delivered to ${this.who}: ${replyText(r)}`,
        reply: r,
        ...(wantsRelayedDsn(rcpt, this.session.caps) ? { relayed: true as const } : {}),
      });
    }
  }

  /** A refusal that answers for every accepted recipient. */
  refused(r: ServerReply, command: string): void {
    this.all(saidVerdict(this.session.target, r, command), this.accepted, r);
  }

  undecided(): EnvelopeRecipient[] {
    return this.rcpts.filter((r) => !this.outcomes.some((o) => o.rcpt === r));
  }

  /** Every recipient decided by this session. */
  done(): Done {
    return { result: { outcomes: this.outcomes, undecided: [], nextHost: false } };
  }

  /** Read one reply and trace it. */
  async read(timeoutMs: number, what: string): Promise<ServerReply> {
    const r = await this.session.conn.read(timeoutMs, what);
    this.session.trace(`<<< ${replyText(r)}`);
    return r;
  }
}

export interface Done {
  readonly result: TxResult;
}

/** A step names the next one, or ends with the result. */
export type Next = StepName | Done;

/** The states of the machine; tx-steps.ts has one function for each. */
export type StepName =
  | 'prepare'
  | 'rset'
  | 'pipeline'
  | 'rsetReply'
  | 'mailReply'
  | 'rcptReplies'
  | 'dataReply'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'content'
  | 'bdat'
  | 'final'
  | 'bdatLastReply';
