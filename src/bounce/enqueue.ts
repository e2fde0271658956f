/*
 * bounce/enqueue.ts — put a report into the queue as a new message from
 * the null sender to the original sender.
 *
 * The recipient is routed by the daemon's Router (the smtpd.conf rules, as
 * for a locally submitted message). No route: nothing is written and the
 * caller logs the report as dropped. The report's own recipient has
 * NOTIFY=NEVER and its sender is <>, so a report never causes another
 * (RFC 3461 §6.2, RFC 5321 §4.5.5). commit() resolves once the report is
 * durable (spool/spool.ts); only then may the caller record the outcomes
 * that owed it.
 */
import type { Envelope } from '../mail/envelope.js';
import { newEvpid } from '../spool/fs/fs-spool.js';
import type { Spool } from '../spool/spool.js';
import type { Router } from '../rules/router.js';
import type { DsnMessage } from './dsn.js';

export type SubmitResult = { readonly kind: 'queued'; readonly envelope: Envelope } | { readonly kind: 'dropped'; readonly reason: string };

export interface Submission {
  readonly spool: Spool;
  readonly router: Router | undefined;
  /** The original sender: the report's recipient. */
  readonly to: string;
  readonly now: number;
  /** Build the report once its queue id is known (for its Message-ID). */
  readonly build: (msgid: string) => DsnMessage;
}

export async function submitDsn(s: Submission): Promise<SubmitResult> {
  if (s.to === '') return { kind: 'dropped', reason: 'null sender' };
  if (s.router === undefined) return { kind: 'dropped', reason: 'no router for reports' };
  const route = await s.router(s.to);
  if ('error' in route) return { kind: 'dropped', reason: `no route: ${route.error}` };
  const writer = await s.spool.createMessage();
  try {
    const msg = s.build(writer.msgid);
    writer.write(msg.bytes);
    await writer.drain();
    const envelope = await writer.commit({
      sender: '',
      recipients: [{ evpid: newEvpid(writer.msgid), address: s.to, action: route.action, dest: route.dest, rule: route.rule, notify: 'NEVER' }],
      body: msg.eightBit ? '8BITMIME' : '7BIT',
      smtputf8: msg.utf8,
      arrival: s.now,
      client: { address: '127.0.0.1', port: 0, hostname: 'localhost', proto: 'LOCAL', listener: 'bounce' },
    });
    return { kind: 'queued', envelope };
  } catch (e) {
    await writer.abort().catch(() => undefined);
    throw e;
  }
}
