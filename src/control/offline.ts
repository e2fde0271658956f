/*
 * control/offline.ts — `show queue`, `show envelope` and `show message`
 * with the daemon stopped: read straight from the spool, which another
 * process may own (opened by the caller for reading only: nothing is
 * changed on disk). Each recipient's state comes from its outcome records, as the
 * scheduler would rebuild it at start-up (scheduler/replay.ts).
 */
import type { Readable } from 'node:stream';
import type { Config } from '../config/model.js';
import { isSpoolError } from '../spool/errors.js';
import type { Spool } from '../spool/spool.js';
import { envelopeDetails, offlineEntry, type EnvelopeDetails, type QueueEntry } from './queue-view.js';

export class OfflineError extends Error {}

/** Opens the spool for reading only (cli/read-spool.ts), or throws OfflineError saying why not. */
export type SpoolOpener = () => Promise<Spool>;

function notFound(e: unknown): boolean {
  return isSpoolError(e, 'NOT_FOUND') || (e as { code?: unknown }).code === 'ENOENT';
}

/** Every queued envelope (of `msgid` only, when given), message by message in order of arrival. */
export async function offlineQueue(config: Config, openSpool: SpoolOpener, msgid?: string): Promise<QueueEntry[]> {
  const spool = await openSpool();
  try {
    const ids = msgid === undefined ? (await spool.list()).sort() : [msgid];
    const byMessage: { arrival: number; entries: QueueEntry[] }[] = [];
    for (const id of ids) {
      let stored;
      try {
        stored = await spool.load(id);
      } catch (e) {
        if (msgid !== undefined && notFound(e)) throw new OfflineError(`no such message: ${msgid}`);
        continue; // removed meanwhile, or unreadable: the daemon will deal with it
      }
      const entries: QueueEntry[] = [];
      for (const r of stored.envelope.recipients) {
        const e = offlineEntry(config, stored.envelope, r, stored.outcomes.get(r.evpid));
        if (e) entries.push(e);
      }
      byMessage.push({ arrival: stored.envelope.arrival, entries });
    }
    // In order of arrival, as the running scheduler lists them.
    return byMessage.sort((a, b) => a.arrival - b.arrival).flatMap((m) => m.entries);
  } finally {
    await spool.close();
  }
}

export async function offlineEnvelope(config: Config, openSpool: SpoolOpener, evpid: string): Promise<EnvelopeDetails> {
  const spool = await openSpool();
  try {
    let stored;
    try {
      stored = await spool.load(evpid.slice(0, 8));
    } catch (e) {
      if (notFound(e)) throw new OfflineError(`no such envelope: ${evpid}`);
      throw e;
    }
    const r = stored.envelope.recipients.find((x) => x.evpid === evpid);
    if (r === undefined) throw new OfflineError(`no such envelope: ${evpid}`);
    return envelopeDetails(config, stored.envelope, r, stored.outcomes.get(evpid) ?? [], undefined);
  } finally {
    await spool.close();
  }
}

/** The stored message of a msgid or evpid; the spool is closed when the stream ends. */
export async function offlineMessage(openSpool: SpoolOpener, id: string): Promise<Readable> {
  const spool = await openSpool();
  const msgid = id.slice(0, 8);
  try {
    const stored = await spool.load(msgid);
    if (id.length === 16 && !stored.envelope.recipients.some((r) => r.evpid === id)) throw new OfflineError(`no such envelope: ${id}`);
  } catch (e) {
    await spool.close();
    if (notFound(e)) throw new OfflineError(`no such message: ${id}`);
    throw e;
  }
  const body = spool.openBody(msgid);
  body.once('close', () => void spool.close());
  return body;
}
