/*
 * spool/stored-envelope.ts — the envelope a backend stores for a draft,
 * the same for every backend: the backend's own version, msgid and size
 * win over anything the caller passed; each recipient gets an evpid of
 * this message (the caller's own, when it gave one); and the result is
 * checked as load() will read it back (SpoolError INVALID otherwise), so a
 * backend never stores what it would later call corrupt.
 */
import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import type { EnvelopeDraft } from './spool.js';
import { SpoolError } from './errors.js';
import { checkEnvelope } from './fs/envelope-check.js';
import { newEvpid } from './fs/ids.js';

/** The stored envelope of `msgid`, and its JSON text. */
export function storedEnvelope(msgid: string, fields: EnvelopeDraft, size: number): { readonly json: string; readonly envelope: Envelope } {
  const { version: _v, msgid: _m, size: _s, ...rest } = fields as EnvelopeDraft & Partial<Pick<Envelope, 'version' | 'msgid' | 'size'>>;
  const json = JSON.stringify({ version: 1, msgid, ...rest, recipients: recipientIds(msgid, fields.recipients), size });
  const envelope: unknown = JSON.parse(json);
  const bad = checkEnvelope(envelope, msgid);
  if (bad !== null) throw new SpoolError('INVALID', `envelope of ${msgid}: ${bad}`);
  return { json, envelope: envelope as Envelope };
}

function recipientIds(msgid: string, recipients: EnvelopeDraft['recipients']): EnvelopeRecipient[] {
  const taken = new Set<string>();
  for (const r of recipients) if (r.evpid !== undefined) taken.add(r.evpid);
  return recipients.map((r) => {
    if (r.evpid !== undefined) return r as EnvelopeRecipient;
    const evpid = newEvpid(msgid, taken);
    taken.add(evpid);
    const { evpid: _none, ...rest } = r;
    return { evpid, ...rest };
  });
}
