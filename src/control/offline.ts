/*
 * control/offline.ts — `show queue`, `show envelope` and `show message`
 * with the daemon stopped: read straight from the spool, which another
 * process may own (FsSpool with recover: false: nothing is changed on
 * disk). Each recipient's state comes from its outcome records, as the
 * scheduler would rebuild it at start-up (scheduler/replay.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Config } from '../config/model.js';
import { FsSpool } from '../spool/fs/fs-spool.js';
import { envelopeDetails, offlineEntry, type EnvelopeDetails, type QueueEntry } from './queue-view.js';

export class OfflineError extends Error {}

async function openSpool(config: Config): Promise<FsSpool> {
  // Opening creates the folders: a tool that only reads must not make a spool where there is none.
  if (!existsSync(join(config.queue.path, 'queue'))) throw new OfflineError(`smtpd is not running and there is no queue in ${config.queue.path}`);
  const spool = new FsSpool({ root: config.queue.path, recover: false });
  try {
    await spool.open();
  } catch (e) {
    throw new OfflineError(`cannot read the queue in ${config.queue.path}: ${(e as Error).message}`);
  }
  return spool;
}

function notFound(e: unknown): boolean {
  return (e as { code?: unknown }).code === 'NOT_FOUND' || (e as { code?: unknown }).code === 'ENOENT';
}

/** Every queued envelope (of `msgid` only, when given), message by message in order of arrival. */
export async function offlineQueue(config: Config, msgid?: string): Promise<QueueEntry[]> {
  const spool = await openSpool(config);
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

export async function offlineEnvelope(config: Config, evpid: string): Promise<EnvelopeDetails> {
  const spool = await openSpool(config);
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
export async function offlineMessage(config: Config, id: string): Promise<Readable> {
  const spool = await openSpool(config);
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
