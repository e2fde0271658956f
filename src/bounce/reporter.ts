/*
 * bounce/reporter.ts — send one report: read what is returned of the
 * original, build the DSN, queue it from <> to the sender, log it.
 *
 * send() resolves true when the report is durable in the spool, or when
 * there is nothing to send it to (null sender, no route: logged as
 * "bounce dropped"); false when it could not be queued (spool error) and
 * should be tried again. It never throws. Log lines:
 *
 *   bounce sent msgid=<report> to=<sender> for=<original msgid> kind=failure rcpts=<a>,<b>
 *   bounce dropped for=<original msgid> to=<sender> kind=… rcpts=… reason="no route: …"
 */
import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import type { Spool } from '../spool/spool.js';
import type { MailLog } from '../log/maillog.js';
import type { Stats } from '../stats.js';
import type { Router } from '../rules/router.js';
import { buildDsn, type DsnAction, type DsnRecipient } from './dsn.js';
import { submitDsn } from './enqueue.js';
import type { FrontDoor } from '../queue/enqueue.js';
import { readReturned, DEFAULT_MAX_RETURN_BYTES, type Returned } from './original.js';
import { returnMode, type DsnKind } from './rules.js';

export interface ReporterOptions {
  readonly spool: Spool;
  readonly router: Router | undefined;
  readonly hostname: string;
  readonly log: MailLog;
  readonly stats: Stats;
  readonly now: () => number;
  /** Return the whole original up to this size; its header section beyond (default 1 MiB). */
  readonly maxReturnBytes?: number;
  /** The one way into the queue (it also hands the report to the scheduler). */
  readonly door: Pick<FrontDoor, 'open'>;
}

export class Reporter {
  constructor(private readonly o: ReporterOptions) {}

  async send(env: Envelope, kind: DsnKind, recipients: readonly DsnRecipient[]): Promise<boolean> {
    const { spool, log, hostname } = this.o;
    const now = this.o.now();
    const rcpts = recipients.map((r) => `<${r.address}>`).join(',');
    try {
      let returned: Returned | undefined;
      try {
        returned = await readReturned(spool.openBody(env.msgid), { mode: returnMode(env, kind), size: env.size, maxWhole: this.o.maxReturnBytes ?? DEFAULT_MAX_RETURN_BYTES });
      } catch (e) {
        log.warn(`bounce: cannot read ${env.msgid} to return it: ${(e as Error).message}`);
      }
      const res = await submitDsn({
        door: this.o.door,
        router: this.o.router,
        to: env.sender,
        now,
        build: (msgid) =>
          buildDsn({
            hostname,
            kind,
            original: { msgid: env.msgid, sender: env.sender, envid: env.envid, arrival: env.arrival, smtputf8: env.smtputf8 },
            recipients,
            returned,
            date: now,
            messageId: `${now.toString(36)}.${msgid}@${hostname}`,
          }),
      });
      if (res.kind === 'dropped') {
        log.event('bounce', 'dropped', { for: env.msgid, to: `<${env.sender}>`, kind, rcpts, reason: res.reason });
        return true;
      }
      this.o.stats.inc('queue.bounce');
      log.event('bounce', 'sent', { msgid: res.envelope.msgid, to: `<${env.sender}>`, for: env.msgid, kind, rcpts });
      return true;
    } catch (e) {
      log.error(`bounce: cannot queue the ${kind} report for ${env.msgid}: ${(e as Error).message}`);
      return false;
    }
  }
}

/** One recipient's entry in a report. */
export function dsnRecipient(
  rcpt: EnvelopeRecipient,
  action: DsnAction,
  status: string,
  detail: string,
  from: { readonly diagnostic?: string; readonly remoteMta?: string },
  lastAttempt: number | undefined,
  willRetryUntil?: number,
): DsnRecipient {
  return { address: rcpt.address, orcpt: rcpt.orcpt, original: rcpt.original, action, status, detail, diagnostic: from.diagnostic, remoteMta: from.remoteMta, lastAttempt, willRetryUntil };
}
