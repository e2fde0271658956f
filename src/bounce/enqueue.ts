/*
 * bounce/enqueue.ts — put a report into the queue as a new message from
 * the null sender to the original sender.
 *
 * The recipient is routed by the daemon's Router (the smtpd.conf rules, as
 * for a locally submitted message). No route: nothing is written and the
 * caller logs the report as dropped. The report's own recipient has
 * NOTIFY=NEVER and its sender is <>, so a report never causes another
 * (RFC 3461 §6.2, RFC 5321 §4.5.5). It goes through the front door
 * (queue/enqueue.ts) like any mail; submitDsn() resolves once the report is
 * durable, and only then may the caller record the outcomes that owed it.
 */
import type { Envelope } from '../mail/envelope.js';
import type { SessionFacts } from '../policy/policy.js';
import type { FrontDoor } from '../queue/enqueue.js';
import type { Router } from '../rules/router.js';
import type { DsnMessage } from './dsn.js';

export type SubmitResult = { readonly kind: 'queued'; readonly envelope: Envelope } | { readonly kind: 'dropped'; readonly reason: string };

export interface Submission {
  /** The one way into the queue; it also hands the report to the scheduler. */
  readonly door: Pick<FrontDoor, 'open'>;
  readonly router: Router | undefined;
  /** The original sender: the report's recipient. */
  readonly to: string;
  readonly now: number;
  /** Build the report once its queue id is known (for its Message-ID). */
  readonly build: (msgid: string) => DsnMessage;
}

/** What the policy phases see of a report: mail this host writes itself. */
const REPORTER: SessionFacts = { id: 'bounce', clientAddress: '127.0.0.1', clientPort: 0, fromSocket: true, esmtp: true, tls: false, listener: 'bounce' };

/** Queue a report. A permanent refusal at the door drops it (logged by the caller); a temporary one throws, to be tried again. */
export async function submitDsn(s: Submission): Promise<SubmitResult> {
  if (s.to === '') return { kind: 'dropped', reason: 'null sender' };
  if (s.router === undefined) return { kind: 'dropped', reason: 'no router for reports' };
  const route = await s.router(s.to);
  if ('error' in route) return { kind: 'dropped', reason: `no route: ${route.error}` };
  const opened = await s.door.open({ kind: 'bounce' }, REPORTER, { sender: null, params: { smtputf8: false }, rcptCount: 1 });
  if (opened.kind === 'reject') return refused(opened.reply.code, opened.reason);
  let msg: DsnMessage;
  try {
    msg = s.build(opened.msgid);
  } catch (e) {
    await opened.abort();
    throw e;
  }
  opened.write(msg.bytes);
  const out = await opened.commit({
    sender: '',
    recipients: [{ address: s.to, params: { notify: 'NEVER' }, targets: [{ address: s.to, action: route.action, dest: route.dest, rule: route.rule }] }],
    body: msg.eightBit ? '8BITMIME' : '7BIT',
    smtputf8: msg.utf8,
    arrival: s.now,
    client: { address: '127.0.0.1', port: 0, hostname: 'localhost', proto: 'LOCAL', listener: 'bounce' },
  });
  if (out.kind === 'queued') return { kind: 'queued', envelope: out.envelope };
  if (out.kind === 'discarded') return { kind: 'dropped', reason: `discarded: ${out.reason}` };
  return refused(out.reply.code, out.reason);
}

function refused(code: number, reason: string): SubmitResult {
  if (code < 500) throw new Error(`report refused for now: ${reason}`);
  return { kind: 'dropped', reason: `refused: ${reason}` };
}
