/*
 * mailauth/verify/verifier.ts — inbound mail authentication for a running
 * configuration: which sessions are checked, SPF at MAIL (RFC 7208, with
 * its limits of 10 DNS-querying terms and 2 void lookups: mailauth's
 * strict mode), and a MessageCheck (check.ts) per received message.
 *
 * Not checked: mail from an authenticated client (AUTH) and from `local`
 * (the local socket or an address of this host), as OpenSMTPD's rules
 * read `from local`; their mail is the server's own users'.
 */
import type { SPFResult } from 'mailauth';
import type { MailAuthVerifyOptions } from '../../config/mailauth-options.js';
import { reply, type Reply } from '../../mail/reply.js';
import { spf, type MailAuthResolver } from '../lib.js';
import { AnswerMemo, hasMacro } from '../answer-memo.js';
import { MessageCheck } from './check.js';
import { InlineEngine, type VerifyEngine } from './engine.js';

/** Where a message's DKIM, ARC and DMARC checks run: verify-pool.ts's workers, or this thread. */
export type EngineFactory = (minKeyBits: number, clientAddress: string) => VerifyEngine;

/** The session and transaction as the checks see them. */
export interface InboundFacts {
  readonly clientAddress: string;
  readonly fromSocket: boolean;
  readonly helo?: string | undefined;
  readonly authUser?: string | undefined;
  /** MAIL FROM without brackets; "" for <>. */
  readonly sender: string;
}

export type SpfVerdict = { readonly kind: 'pass'; readonly result?: SPFResult } | { readonly kind: 'reject'; readonly reply: Reply; readonly reason: string };

/** Held content per message before it is released unsigned by an Authentication-Results field. */
export const DEFAULT_HOLD_LIMIT = 8 * 1024 * 1024;
const SPF_DEADLINE_MS = 20_000;

export class InboundVerifier {
  readonly authservId: string;
  private readonly spfMemo = new AnswerMemo<SPFResult>();

  constructor(
    readonly opts: MailAuthVerifyOptions,
    private readonly resolver: MailAuthResolver,
    hostname: string,
    private readonly isLocalAddress: (ip: string) => boolean,
    private readonly holdLimit = DEFAULT_HOLD_LIMIT,
    private readonly engines: EngineFactory = (minKeyBits, clientAddress) => new InlineEngine({ resolver: this.resolver, minKeyBits, clientAddress }),
  ) {
    this.authservId = (opts.authservId ?? hostname).toLowerCase();
  }

  /** Is this client's mail checked at all? */
  applies(f: Pick<InboundFacts, 'clientAddress' | 'fromSocket' | 'authUser'>): boolean {
    return f.authUser === undefined && !f.fromSocket && !this.isLocalAddress(f.clientAddress);
  }

  /**
   * RFC 7208 check_host() for the MAIL FROM identity (HELO's when the
   * sender is <>). The result is kept while the DNS answers it read are
   * (answer-memo.ts): the check at MAIL and the one at the end of the
   * message, and a burst of mail from one client and sender, evaluate once.
   */
  spf(f: InboundFacts): Promise<SPFResult> {
    const key = `${f.clientAddress} ${f.sender} ${f.helo ?? ''}`;
    const evaluate = (resolver: MailAuthResolver): Promise<SPFResult> =>
      spf({
        ip: f.clientAddress,
        ...(f.sender !== '' ? { sender: f.sender } : {}),
        ...(f.helo !== undefined ? { helo: f.helo } : {}),
        mta: this.authservId,
        resolver: resolver as never,
        strict: true,
        maxElapsedTime: SPF_DEADLINE_MS,
      });
    return this.spfMemo.get(key, this.resolver, evaluate, (r, txt) => r.status.result !== 'temperror' && !hasMacro(txt));
  }

  /** `spf-reject`: SPF fail refused at MAIL (550 5.7.23), temperror deferred (451 4.7.24, RFC 7372 §3.2). */
  async spfAtMail(f: InboundFacts): Promise<SpfVerdict> {
    if (!this.opts.spfReject || !this.applies(f)) return { kind: 'pass' };
    let r: SPFResult;
    try {
      r = await this.spf(f);
    } catch (e) {
      return { kind: 'reject', reply: reply(451, '4.7.24', 'SPF check could not be completed, try again later'), reason: `spf=temperror (${(e as Error).message})` };
    }
    const result = r.status.result;
    if (result === 'fail') {
      return { kind: 'reject', reply: reply(550, '5.7.23', `SPF check failed: ${r.domain} does not designate ${f.clientAddress} as permitted sender`), reason: `spf=fail domain=${r.domain}` };
    }
    if (result === 'temperror') return { kind: 'reject', reply: reply(451, '4.7.24', 'SPF check could not be completed (DNS failure), try again later'), reason: `spf=temperror domain=${r.domain}` };
    return { kind: 'pass', result: r };
  }

  /**
   * The checks of one message. From a client they do not apply to (AUTH,
   * `local`) the message is only cleaned of forged Authentication-Results
   * fields of ours (RFC 8601 §5: whoever sends it), with no checks.
   */
  begin(f: InboundFacts): MessageCheck {
    if (!this.applies(f)) return new MessageCheck({ opts: this.opts, authservId: this.authservId, holdLimit: this.holdLimit, spf: async () => undefined }, undefined);
    return new MessageCheck(
      { opts: this.opts, authservId: this.authservId, holdLimit: this.holdLimit, spf: () => this.spf(f) },
      this.engines(this.opts.minKeyBits, f.clientAddress),
    );
  }
}
