/*
 * cli/mailq.ts — list the queue in the format sendmail and Postfix users
 * know, straight from the spool (it works with the daemon stopped):
 *
 *   -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
 *   1a2b3c4d        412 Sun Nov 22 05:25:05  me@localhost
 *                           (connect to mx.example.org[192.0.2.1]: Connection refused)
 *                                            root@example.org
 *
 * Columns as Postfix's showq: "%-11s %7ld %20.20s %s"; recipients indented 41.
 *
 *   -- 1 Kbytes in 1 Request.
 *
 * "!" after the id marks a held message. Messages sendmail left in
 * offline/ (daemon not running) are counted at the end.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readerSpool } from './read-spool.js';
import type { RecipientOutcome } from '../mail/envelope.js';
import type { Config } from '../config/model.js';

export async function mailq(config: Config, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  if (config.queue.postgresql === undefined && !existsSync(join(config.queue.path, 'VERSION'))) {
    process.stderr.write(`mailq: no queue in ${config.queue.path} (has smtpd ever run with this configuration?)\n`);
    return 1;
  }
  const spool = readerSpool(config);
  try {
    await spool.open();
  } catch (e) {
    await spool.close().catch(() => undefined);
    process.stderr.write(`mailq: cannot read the queue in ${config.queue.path}: ${(e as Error).message}\n`);
    return 1;
  }
  const ids = (await spool.list()).sort();
  let requests = 0;
  let bytes = 0;
  let body = '';
  for (const id of ids) {
    let stored;
    try {
      stored = await spool.load(id);
    } catch {
      continue;
    }
    const env = stored.envelope;
    const pending = env.recipients.filter((r) => !final(stored.outcomes.get(r.evpid)));
    if (pending.length === 0) continue;
    requests++;
    bytes += env.size;
    const held = pending.every((r) => last(stored.outcomes.get(r.evpid))?.kind === 'held');
    body += `${(env.msgid + (held ? '!' : '')).padEnd(11)} ${String(env.size).padStart(7)} ${arrivalTime(new Date(env.arrival))} ${env.sender === '' ? 'MAILER-DAEMON' : env.sender}\n`;
    const byReason = new Map<string, string[]>();
    for (const r of pending) {
      const o = last(stored.outcomes.get(r.evpid));
      const reason = o?.kind === 'deferred' ? o.detail : '';
      byReason.set(reason, [...(byReason.get(reason) ?? []), r.address]);
    }
    for (const [reason, rcpts] of byReason) {
      if (reason !== '') body += `${' '.repeat(24)}(${reason.slice(0, 200)})\n`;
      for (const a of rcpts) body += `${' '.repeat(41)}${a}\n`;
    }
    body += '\n';
  }
  await spool.close();
  let offline = 0;
  try {
    offline = readdirSync(join(config.queue.path, 'offline')).filter((n) => !n.startsWith('.')).length;
  } catch {
    /* unreadable: not ours to list */
  }
  if (requests === 0 && offline === 0) {
    out('Mail queue is empty\n');
    return 0;
  }
  if (requests > 0) out(`-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n${body}`);
  out(`-- ${Math.ceil(bytes / 1024)} Kbytes in ${requests} Request${requests === 1 ? '' : 's'}.\n`);
  if (offline > 0) out(`-- ${offline} message${offline === 1 ? '' : 's'} waiting in offline/ for smtpd to start.\n`);
  return 0;
}

function last(list: readonly RecipientOutcome[] | undefined): RecipientOutcome | undefined {
  return list?.[list.length - 1];
}

function final(list: readonly RecipientOutcome[] | undefined): boolean {
  const k = last(list)?.kind;
  return k === 'delivered' || k === 'failed';
}

/** "Sun Nov 22 05:25:05" (20 columns), as Postfix's mailq prints it. */
function arrivalTime(d: Date): string {
  const [day, mon, date, , time] = d.toString().split(' ');
  return `${day} ${mon} ${(date ?? '').padStart(2)} ${time}`.padEnd(20).slice(0, 20);
}
