/*
 * daemon/daemon.ts — wires Postern together and runs it.
 *
 * start(): pid file → spool (recovery) → tables → policy → listeners.
 * stop():  listeners closed, sessions finished or aborted (nothing that was
 *          not acknowledged is kept), spool closed, pid file removed.
 * SIGHUP re-reads the tables; a table that fails to load keeps its old
 * contents and the error is logged.
 */
import { mkdirSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LocalEnqueuer } from '../submit/local-enqueue.js';
import { EnqueueSocket } from '../submit/enqueue-socket.js';
import type { Config } from '../config/model.js';
import type { MailLog } from '../log/maillog.js';
import { FsSpool } from '../spool/fs/fs-spool.js';
import type { Spool } from '../spool/spool.js';
import { TableRegistry } from '../table/table.js';
import { tableFromDecl } from '../table/table-static.js';
import { LocalNames } from '../policy/localnames.js';
import { buildPolicy, loadPolicyFiles } from '../policy/build.js';
import { loadavg } from 'node:os';
import { SystemUsers } from '../delivery/users.js';
import { Resolver } from '../dns/resolver.js';
import { SmtpServer } from '../smtp/server.js';
import { Stats } from '../stats.js';
import { QueueRunner } from '../scheduler/runner.js';
import type { RouteResult } from '../scheduler/route.js';
import { LocalAgent } from '../delivery/local/agent.js';
import { RelayAgent } from '../mta/agent.js';
import { lookupCredentials } from '../table/services.js';
import { acquirePidFile } from './pidfile.js';
import { ControlServer, type ControlTarget, type Service } from '../control/target.js';
import { TlsContexts } from '../tls/contexts.js';
import { Authenticator } from '../auth/authenticator.js';
import { FailRate } from '../auth/failrate.js';

export class StartupError extends Error {}

export class Daemon implements ControlTarget {
  private stopping = false;
  private control?: ControlServer;
  /** Called by `stop` requests on the control socket (the CLI exits when it resolves). */
  /** `smtpctl stop`: the CLI installs what SIGTERM does (stop, then exit). */
  onStopRequest: () => void = () => void this.shutdown('smtpctl stop');

  stop(): void {
    this.onStopRequest();
  }

  private constructor(
    readonly config: Config,
    readonly log: MailLog,
    readonly spool: Spool,
    readonly tables: TableRegistry,
    readonly server: SmtpServer,
    readonly stats: Stats,
    readonly runner: QueueRunner,
    private readonly mta: RelayAgent,
    private readonly releasePid: () => void,
    private readonly tls?: TlsContexts,
    private readonly closeLocal: () => void = () => undefined,
  ) {}

  /** `pause`: subsystems paused from the start (smtpd -P mda|mta|smtp, as OpenSMTPD). */
  static async start(config: Config, log: MailLog, opts: { pause?: readonly ('smtp' | 'mta' | 'mda')[] } = {}): Promise<Daemon> {
    mkdirSync(config.queue.path, { recursive: true, mode: 0o700 });
    mkdirSync(dirname(config.paths.pidFile), { recursive: true });
    let releasePid: () => void;
    try {
      releasePid = acquirePidFile(config.paths.pidFile);
    } catch (e) {
      throw new StartupError((e as Error).message);
    }
    try {
      // The policy files first: a content filter reads each message from incoming/, so the writer keeps none of it in memory.
      const policyFiles = loadPolicyFiles(config);
      const spool = new FsSpool({ root: config.queue.path, groupCommitMs: config.queue.groupCommitMs, log: (l) => log.info(`spool: ${l}`), ...(policyFiles.zmailer?.contentFilter ? { memoryBufferBytes: 0 } : {}) });
      const report = await spool.open();
      log.info(`spool ${config.queue.path}: ${report.messages} message(s) queued, ${report.removedIncomplete} incomplete removed, ${report.corrupt.length} corrupt`);
      for (const c of report.corrupt) log.warn(`spool: ${c.name} moved to corrupt/: ${c.reason}`);

      const tables = new TableRegistry();
      for (const decl of config.tables.values()) {
        const t = tableFromDecl(decl);
        if (t.error) throw new StartupError(`${decl.pos.file}:${decl.pos.line}: table ${decl.name}: ${t.error}`);
        tables.add(t);
      }
      const stats = new Stats();
      const local = new LocalNames(config.hostname);
      const users = new SystemUsers();
      const resolver = new Resolver(config.resolver);
      const built = buildPolicy(config, policyFiles, { tables, users, local, dns: resolver.raw, loadAverage: () => loadavg()[0] ?? 0, log });
      for (const w of [...policyFiles.warnings, ...built.notes]) log.warn(w);
      const policy = built.policy;
      let free = { value: Number.POSITIVE_INFINITY, at: 0 };
      const freeSpace = async (): Promise<number> => {
        const now = Date.now();
        if (now - free.at > 1000) free = { value: await spool.freeSpace().catch(() => Number.POSITIVE_INFINITY), at: now };
        return free.value;
      };
      const tls = config.pki.size > 0 || config.listeners.some((l) => l.tls !== 'none') ? new TlsContexts(config) : undefined;
      const auth = { authenticator: new Authenticator(config, tables), failrate: new FailRate(config.smtp.authFailRate) };
      const mda = new LocalAgent({ config, users, tables, log });
      const mta = new RelayAgent({
        config,
        log,
        stats,
        resolver,
        local,
        credentials: (table, key) => {
          const t = tables.get(table);
          if (!t) return { error: `table "${table}" is not defined` };
          const r = lookupCredentials(t, key);
          return r.kind === 'found' ? r.value : r.kind === 'notfound' ? undefined : { error: r.reason };
        },
      });
      // Reports (DSNs) are routed as mail submitted on this host from <>, with the same expansion.
      const router = async (address: string): Promise<RouteResult> => {
        const at = address.lastIndexOf('@');
        const mailbox = { local: at < 0 ? address : address.slice(0, at), domain: at < 0 ? '' : address.slice(at + 1).toLowerCase(), utf8: /[^\x00-\x7f]/.test(address) };
        const facts = { id: 'bounce', clientAddress: '127.0.0.1', clientPort: 0, fromSocket: true, esmtp: true, tls: false, listener: 'local' };
        const d = await policy.rcpt(facts, { sender: null, params: { smtputf8: mailbox.utf8 }, rcptCount: 0 }, mailbox);
        if (d.kind === 'reject') return { error: d.verdict.reason };
        const t = d.targets[0];
        return t ? { action: t.action, dest: t.dest, rule: t.rule } : { error: 'no destination' };
      };
      const scheduler = new QueueRunner({ spool, config, log, stats, agents: { mda, mta }, router });
      const server = new SmtpServer({ config: built.config, log, spool, policy, stats, scheduler, freeSpace, now: Date.now, tables, auth, runtime: built.session }, resolver, tls, built.connection);
      await server.listen(config);

      // Local submission (sendmail): offline/ is writable by everyone, readable by nobody else.
      if (process.getuid?.() === 0) {
        chmodSync(config.queue.path, 0o711);
        chmodSync(join(config.queue.path, 'offline'), 0o1733);
      }
      const enqueuer = new LocalEnqueuer({ config, log, spool, policy, stats, scheduler, users });
      const enqueueSocket = new EnqueueSocket(join(config.queue.path, 'enqueue.sock'), enqueuer, log);
      await enqueueSocket.listen();
      const waiting = await enqueuer.scan();
      if (waiting > 0) log.info(`enqueued ${waiting} message(s) left in offline/ by sendmail`);
      const rescan = setInterval(() => void enqueuer.scan(), 60_000);
      rescan.unref();

      for (const p of opts.pause ?? []) {
        if (p === 'smtp') server.paused = true;
        else scheduler.pause(p);
      }
      await scheduler.start();

      const d = new Daemon(config, log, spool, tables, server, stats, scheduler, mta, releasePid, tls, () => {
        clearInterval(rescan);
        enqueueSocket.close();
      });
      d.control = new ControlServer(config.paths.controlSocket, d);
      await d.control.listen();
      log.info(`smtpd ready: hostname ${config.hostname}, ${server.listeners.length} listener(s)`);
      return d;
    } catch (e) {
      releasePid();
      if (e instanceof StartupError) throw e;
      throw new StartupError((e as Error).message);
    }
  }

  /** SIGHUP: re-read tables and certificates. */
  reloadTables(): void {
    try {
      this.tls?.reload();
    } catch (e) {
      this.log.warn(`certificates: reload failed, keeping the previous ones: ${(e as Error).message}`);
    }
    for (const t of this.tables.all()) {
      try {
        t.reload();
      } catch (e) {
        this.log.warn(`table ${t.name}: reload failed, keeping the previous contents: ${(e as Error).message}`);
      }
    }
    this.log.info('tables reloaded');
  }

  async shutdown(reason: string, graceMs = 5_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info(`smtpd shutting down (${reason})`);
    await this.control?.close();
    this.closeLocal();
    await this.server.close(graceMs);
    await this.runner.stop();
    await this.mta.close();
    await this.spool.close();
    this.releasePid();
    this.log.info('smtpd exiting');
  }

  /* ------------------------------------------------ ControlTarget (smtpctl) */

  pause(what: Service): void {
    if (what === 'smtp') this.server.paused = true;
    else this.runner.pause(what);
    this.log.info(`${what} paused`);
  }

  resume(what: Service): void {
    if (what === 'smtp') this.server.paused = false;
    else this.runner.resume(what);
    this.log.info(`${what} resumed`);
  }

  paused(): { smtp: boolean; mta: boolean; mda: boolean } {
    return { smtp: this.server.paused, mta: this.runner.schedule.isPaused('mta'), mda: this.runner.schedule.isPaused('mda') };
  }

  updateTable(name: string): { ok: true } | { ok: false; error: string } {
    const t = this.tables.get(name);
    if (!t) return { ok: false, error: `no table "${name}"` };
    try {
      t.reload();
      this.log.info(`table ${name} reloaded`);
      return { ok: true };
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
  }

  async reload(): Promise<{ ok: true } | { ok: false; error: string }> {
    this.reloadTables();
    return { ok: true };
  }

  sessions(): number {
    return this.server.sessionCount;
  }

  hosts(): unknown[] {
    const m = this.mta as { hosts?: () => unknown[] };
    return m.hosts?.() ?? [];
  }
}
