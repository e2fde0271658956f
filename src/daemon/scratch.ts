/*
 * daemon/scratch.ts — what a session run outside the daemon needs (`smtpd
 * -b`'s dry run, `smtpserver -n`/`-i`): the configuration with a private,
 * throwaway spool in a temporary folder, the configuration's tables loaded,
 * the local names and a resolver. withScratch() removes the folder when the
 * session is over, whatever happened.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/model.js';
import { Resolver } from '../dns/resolver.js';
import { LocalNames } from '../rules/localnames.js';
import { FsSpool } from '../spool/fs/fs-spool.js';
import { TableRegistry } from '../table/table.js';
import { tableFromDecl } from '../table/table-static.js';
import { Authenticator } from '../auth/authenticator.js';
import { FailRate } from '../auth/failrate.js';
import type { MailLog } from '../log/maillog.js';
import type { BuiltPolicy } from '../policy/build.js';
import { FrontDoor } from '../queue/enqueue.js';
import type { SchedulerSeam } from '../queue/seam.js';
import type { ConnectionOptions } from '../smtp/connection.js';
import type { SessionEnv } from '../smtp/session.js';
import { Stats } from '../stats.js';

export interface Scratch {
  /** The configuration with `queue path` in the temporary folder. */
  readonly config: Config;
  readonly spool: FsSpool;
  readonly tables: TableRegistry;
  readonly local: LocalNames;
  readonly resolver: Resolver;
}

/** Run `fn` with a scratch spool and the configuration's tables; the folder goes when it ends. */
export async function withScratch<T>(config: Config, prefix: string, fn: (s: Scratch) => Promise<T>): Promise<T> {
  const tmp = mkdtempSync(join(tmpdir(), prefix));
  const scratchConfig: Config = Object.freeze({ ...config, queue: Object.freeze({ ...config.queue, path: join(tmp, 'spool') }) });
  const spool = new FsSpool({ root: scratchConfig.queue.path });
  try {
    await spool.open();
    const tables = new TableRegistry();
    for (const decl of config.tables.values()) {
      const t = tableFromDecl(decl);
      if (t.error) throw new Error(`${decl.pos.file}:${decl.pos.line}: table ${decl.name}: ${t.error}`);
      tables.add(t);
    }
    return await fn({ config: scratchConfig, spool, tables, local: new LocalNames(config.hostname), resolver: new Resolver(config.resolver) });
  } finally {
    await spool.close().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A session's environment over the scratch spool: the front door, the policy built for it, fresh counters and AUTH state. */
export function scratchSessionEnv(s: Scratch, built: Pick<BuiltPolicy, 'policy' | 'session'>, log: MailLog, scheduler: SchedulerSeam, stats = new Stats()): SessionEnv {
  return {
    config: s.config,
    log,
    queue: new FrontDoor({ config: s.config, policy: built.policy, spool: s.spool, log, stats, scheduler, now: Date.now }),
    policy: built.policy,
    stats,
    scheduler,
    freeSpace: () => s.spool.freeSpace(),
    now: Date.now,
    tables: s.tables,
    auth: { authenticator: new Authenticator(s.config, s.tables), failrate: new FailRate(s.config.smtp.authFailRate) },
    runtime: built.session,
  };
}

/** The connection settings a scratch session shares with the daemon's: its time limits, pacing and reply style (no greeting delay). */
export function scratchConnectionOptions(s: Scratch, built: Pick<BuiltPolicy, 'connection' | 'session'>): ConnectionOptions {
  const smtp = s.config.smtp;
  return {
    commandTimeoutMs: smtp.commandTimeoutMs,
    dataTimeoutMs: smtp.dataTimeoutMs,
    sessionLifetimeMs: smtp.sessionLifetimeMs,
    transactionLifetimeMs: smtp.transactionLifetimeMs,
    earlyTalker: smtp.earlyTalker,
    greetingDelayMs: 0,
    maxBuffered: 1 << 20,
    tarpit: built.connection.tarpit,
    errors: built.connection.errors,
    minDataRate: built.connection.minDataRate,
    multiline: built.session.multilineReplies,
  };
}
