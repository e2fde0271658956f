/*
 * spool/move.ts — move every message of one spool into another, through
 * the Spool interface only (`postern db import-spool`: a node's file spool
 * into the shared PostgreSQL spool; docs/cluster.md).
 *
 * Per message: load, copy the body, commit it in the target (durable),
 * copy its outcome records (recipients by position: the target mints new
 * ids), and only then remove it from the source. A crash in between leaves
 * the message in both: delivered twice at worst, never lost. The source
 * must not be in use by a daemon meanwhile.
 */
import type { EnvelopeDraft, Spool } from './spool.js';

export interface MoveReport {
  readonly moved: number;
  readonly failed: number;
}

export async function moveSpool(from: Spool, to: Spool, log: (line: string) => void): Promise<MoveReport> {
  let moved = 0;
  let failed = 0;
  for (const msgid of await from.list()) {
    const w = await to.createMessage();
    try {
      const stored = await from.load(msgid);
      for await (const chunk of from.openBody(msgid)) {
        w.write(chunk as Buffer);
        await w.drain();
      }
      const { msgid: _m, size: _s, version: _v, recipients, ...rest } = stored.envelope;
      const draft: EnvelopeDraft = { ...rest, recipients: recipients.map(({ evpid: _e, ...r }) => r) };
      const env = await w.commit(draft);
      for (let i = 0; i < recipients.length; i++) {
        const old = recipients[i]?.evpid ?? '';
        const now = env.recipients[i]?.evpid ?? '';
        for (const o of stored.outcomes.get(old) ?? []) await to.appendOutcome(now, o);
      }
      await from.remove(msgid);
      log(`${msgid} -> ${env.msgid}: moved (${env.recipients.length} recipient(s), ${env.size} bytes)`);
      moved++;
    } catch (e) {
      await w.abort().catch(() => undefined);
      log(`${msgid}: not moved: ${(e as Error).message}`);
      failed++;
    }
  }
  return { moved, failed };
}
