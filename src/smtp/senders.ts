/*
 * smtp/senders.ts — `listen … senders <table> [masquerade]` (OpenSMTPD): an
 * authenticated user may send only as the addresses the table gives it
 * (`user addr1, addr2, @domain`).
 */
import type { Listener } from '../config/model.js';
import type { TableRegistry } from '../table/table.js';
import { reply, type Reply } from '../mail/reply.js';

/** True when `user` may send as `sender`; otherwise the refusal, and whether it is worth a `rejected` log line. */
export function senderOwned(tables: Pick<TableRegistry, 'lookup'>, listener: Listener, user: string | undefined, sender: string): true | { readonly reply: Reply; readonly log: boolean } {
  const senders = listener.senders;
  if (!senders || user === undefined) return true;
  const r = tables.lookup(senders.table, user);
  if (r.kind === 'error') return { reply: reply(451, '4.3.0', 'Temporary lookup failure, please try again later'), log: false };
  if (r.kind === 'found' && sender !== '') {
    const allowed = r.value.split(/[\s,]+/).filter((x) => x !== '');
    const s = sender.toLowerCase();
    const domain = s.slice(s.lastIndexOf('@') + 1);
    if (allowed.some((a) => a.toLowerCase() === s || a.toLowerCase() === `@${domain}`)) return true;
  }
  return { reply: reply(553, '5.7.1', 'Sender address not allowed for this authenticated user'), log: true };
}
