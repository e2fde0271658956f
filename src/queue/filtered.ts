/*
 * queue/filtered.ts — the front door's filter step: the message as stored
 * so far is handed to the session's filters (filter/filter.ts) before the
 * commit, and what they answer is applied here, in the one way into the
 * queue, whatever kind of filter answered:
 *
 *   reject / tempfail   the message is refused with the filter's reply
 *   discard             250 to the client, nothing stored
 *   header or body edits, a new message (a filter process's data lines)
 *                       the message is written again, edited, to a new
 *                       writer of the spool, and the first one dropped —
 *                       nothing is acknowledged before the edited copy is
 *                       committed durably, as for any message
 *   new sender, recipients added or removed
 *                       the envelope request changes; an added recipient is
 *                       routed by the rules as mail from this host
 *   quarantine          the message is committed held
 *
 * The edited copy gets a new queue id (the spool mints ids); the mail log
 * links the two (`filter rewritten msgid=OLD new=NEW`). The message is held
 * in memory while filters look at it (at most `smtp max-message-size`).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { reply, type Reply } from '../mail/reply.js';
import type { SessionFacts } from '../policy/policy.js';
import type { MessageWriter, Spool } from '../spool/spool.js';
import type { FilterMessage, FilterSession } from '../filter/filter.js';
import { applyEdits } from '../filter/message-parts.js';
import type { MailLog } from '../log/maillog.js';

/** What the door needs to route a recipient a filter added (the rules, as mail from this host). */
export type RouteAdded<R> = (address: string) => Promise<R | undefined>;

export type FilterStep<R> =
  | { readonly kind: 'go'; readonly writer: MessageWriter; readonly sender?: string; readonly addRcpts: readonly R[]; readonly delRcpts: readonly string[]; readonly hold?: string }
  | { readonly kind: 'refused'; readonly reply: Reply; readonly reason: string }
  | { readonly kind: 'discarded'; readonly reply: Reply; readonly reason: string };

export async function filterStep<R>(
  env: { readonly spool: Pick<Spool, 'createMessage'>; readonly log: Pick<MailLog, 'event' | 'error'> },
  filter: Pick<FilterSession, 'message'>,
  facts: SessionFacts,
  writer: MessageWriter,
  envelope: { readonly sender: string; readonly recipients: readonly string[]; readonly auth?: FilterMessage['auth'] },
  route: RouteAdded<R> | undefined,
): Promise<FilterStep<R>> {
  const file = await writer.bodyFile();
  const bytes = await readFile(join(file.dir, file.name));
  const v = await filter.message(facts, { msgid: writer.msgid, sender: envelope.sender, recipients: envelope.recipients, bytes, ...(envelope.auth ? { auth: envelope.auth } : {}) });
  if (v.kind === 'reject') return { kind: 'refused', reply: v.reply, reason: v.reason };
  if (v.kind === 'discard') return { kind: 'discarded', reply: reply(250, '2.0.0', `${writer.msgid} Message accepted for delivery`), reason: v.reason };
  const e = v.edits;
  if (!e) return { kind: 'go', writer, addRcpts: [], delRcpts: [] };
  let out = writer;
  if (e.headers.length > 0 || e.body !== undefined || e.message !== undefined) {
    const edited = applyEdits(bytes, e);
    out = await env.spool.createMessage();
    out.write(edited);
    await out.drain();
    await writer.abort().catch(() => undefined);
    env.log.event('filter', 'rewritten', { session: facts.id, msgid: writer.msgid, new: out.msgid, size: edited.length });
  }
  const added: R[] = [];
  for (const a of e.addRcpts) {
    const r = route ? await route(a) : undefined;
    if (r === undefined) env.log.event('filter', 'rcpt-not-added', { session: facts.id, msgid: out.msgid, to: `<${a}>`, reason: 'no rule accepts it' });
    else added.push(r);
  }
  return { kind: 'go', writer: out, ...(e.sender !== undefined ? { sender: e.sender } : {}), addRcpts: added, delRcpts: e.delRcpts, ...(e.quarantine !== undefined ? { hold: e.quarantine } : {}) };
}
