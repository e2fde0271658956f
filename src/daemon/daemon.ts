/*
 * daemon/daemon.ts — wires Postern together and runs it.
 *
 * start():  pid file → spool (recovery: names only, files checked as loaded) →
 *           tables → policy → listeners → local submission → scheduler (its
 *           load of the queue goes on in the background) → control socket →
 *           HTTP listener.
 * reload(): `smtpctl reload` and SIGHUP. The configuration (smtpd.conf and
 *           the policy files it names, config/policy-files.ts) is read again; if
 *           it has errors, or its tables, policy files or certificates cannot
 *           be loaded, the daemon keeps running on the old one and says why.
 *           Otherwise a new generation (tables, policy, certificates, SMTP
 *           server) takes over: the old listeners are closed, the new ones
 *           bound, and sessions in progress finish on the old generation.
 *           The queue path and the control socket need a restart to change.
 * shutdown(): listeners closed, sessions finished or aborted (nothing that
 *           was not acknowledged is kept), scheduler and spool closed, pid
 *           file removed.
 *
 * Why this file is long (~430 lines): it is the one place that wires every
 * part together (start, reload, stop, the control target); the parts
 * themselves live elsewhere.
 */
import { mkdirSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LocalEnqueuer } from '../submit/local-enqueue.js';
import { EnqueueSocket } from '../submit/enqueue-socket.js';
import type { Config } from '../config/model.js';
import type { MailLog } from '../log/maillog.js';
import { daemonSpool } from './open-spool.js';
import { clusterQueue } from '../cluster/queue-view.js';
import type { ClusterActResult, QueueAction } from '../cluster/queue-control.js';
import { applyQueueAction, clusterQueueWiring, clusterState, type ClusterState } from './cluster-state.js';
import type { Spool } from '../spool/spool.js';
import { TableRegistry, type Table } from '../table/table.js';
import { tableFromDecl } from '../table/table-static.js';
import { LocalNames } from '../rules/localnames.js';
import { buildPolicy, type PolicyDeps } from '../policy/build.js';
import { withPolicyFiles, type LoadedConfig } from '../config/policy-files.js';
import type { Policy } from '../policy/policy.js';
import { loadConfigFile, loadConfigText, formatDiagnostic } from '../config/load.js';
import type { Envelope } from '../mail/envelope.js';
import { reply } from '../mail/reply.js';
import type { SchedulerSeam } from '../queue/seam.js';
import { FrontDoor } from '../queue/enqueue.js';
import { filterWiring, type FilterWiring } from './filters.js';
import { loadavg } from 'node:os';
import { SystemUsers } from '../users/system-users.js';
import { Resolver } from '../dns/resolver.js';
import { SmtpServer } from '../smtp/server.js';
import { Stats } from '../stats.js';
import { QueueRunner } from '../scheduler/runner.js';
import type { RouteResult } from '../rules/router.js';
import { LocalAgent } from '../delivery/local/agent.js';
import { RelayAgent } from '../mta/agent.js';
import { OutboundSecurity } from './outbound-security.js';
import { submitDsn } from '../bounce/enqueue.js';
import { relayEtrn } from '../mta/etrn-cluster.js';
import { lookupCredentials } from '../table/services.js';
import { acquirePidFile } from './pidfile.js';
import { ControlServer } from '../control/server.js';
import type { ControlTarget, Service } from '../control/target.js';
import { TlsContexts } from '../tls/contexts.js';
import { Authenticator } from '../auth/authenticator.js';
import { FailRate } from '../auth/failrate.js';
import { Metrics } from '../metrics/registry.js';
import type { HttpListener } from '../http/server.js';
import { reloadTokens, startHttp } from '../http/start.js';
import { inboundVerifier } from '../mailauth/verify/from-config.js';
import type { PrivsepHooks } from './privsep/child.js';

export class StartupError extends Error {}

/** Where the configuration came from, so that reload can read it again. */
export interface ConfigSource {
  readonly file?: string;
  readonly text?: string;
  readonly macros?: ReadonlyMap<string, string>;
}

/** Everything built from one configuration; reload builds a new one. */
interface Generation {
  /** The one configuration: smtpd.conf with the policy files' PARAMs merged in (config/policy-files.ts). */
  readonly config: Config;
  readonly policy: Policy;
  /** The one way into the queue, with this generation's configuration and policy. */
  readonly door: FrontDoor;
  readonly tls?: TlsContexts;
  readonly server: SmtpServer;
  readonly tables: readonly Table[];
  /** The listeners' filters (daemon/filters.ts). */
  readonly filters: FilterWiring;
}

/** What does not change with the configuration. */
interface Shared {
  readonly log: MailLog;
  readonly spool: Spool;
  readonly stats: Stats;
  readonly users: SystemUsers;
  readonly tables: TableRegistry;
  /** AUTH failures per client: this node's (auth/failrate.ts), or the cluster's (cluster/failrate.ts). */
  readonly failrate: Pick<FailRate, 'allowed' | 'fail'>;
  /** A cluster's shared policy state, ETRN and smtpctl across nodes (`queue postgresql`; cluster-state.ts). */
  readonly cluster?: ClusterState;
  readonly freeSpace: () => Promise<number>;
  /** The scheduler, once it exists (sessions hand it what they queue). */
  scheduler?: QueueRunner;
  /** The shared queue, for `smtpctl show cluster`. */
  clusterQueue?: () => Promise<unknown[]>;
  /** What the command line adds to the policy (smtpserver's -s, -L, -R, -a). */
  readonly policyExtras?: DaemonPolicyExtras;
}

/** What a command line adds to every generation's policy (smtpserver's -s, -L, -R, -a). */
export type DaemonPolicyExtras = Pick<PolicyDeps, 'style' | 'maxLoadAverage' | 'extraPhases' | 'ident' | 'whoson' | 'gullible' | 'frontEnd'>;

export class Daemon implements ControlTarget {
  private stopping = false;
  private control?: ControlServer;
  /** The HTTP listener (metrics, API, dashboard) when `http listen on` is set; its address needs a restart to change. */
  private http?: HttpListener;
  private gen: Generation;
  /** Servers of earlier generations, still finishing their sessions. */
  private readonly retired: SmtpServer[] = [];
  /** The SMTP side of a root-started smtpd: what it asks of the privileged parent (privsep/child.ts). */
  private privsep?: PrivsepHooks;
  /** `smtpctl stop`: the CLI installs what SIGTERM does (stop, then exit). */
  onStopRequest: () => void = () => void this.shutdown('smtpctl stop');

  private constructor(
    private readonly shared: Shared,
    gen: Generation,
    readonly runner: QueueRunner,
    private readonly mda: LocalAgent,
    private readonly mta: RelayAgent,
    private readonly security: OutboundSecurity,
    private readonly source: ConfigSource | undefined,
    private readonly releasePid: () => void,
    private readonly closeLocal: () => void,
  ) {
    this.gen = gen;
  }

  get config(): Config {
    return this.gen.config;
  }
  get log(): MailLog {
    return this.shared.log;
  }
  get spool(): Spool {
    return this.shared.spool;
  }
  get stats(): Stats {
    return this.shared.stats;
  }
  get tables(): TableRegistry {
    return this.shared.tables;
  }
  get server(): SmtpServer {
    return this.gen.server;
  }

  stop(): void {
    this.onStopRequest();
  }

  /** `pause`: subsystems paused from the start (smtpd -P mda|mta|smtp, as OpenSMTPD). `source`: for reload. */
  static async start(smtpdConf: Config, log: MailLog, opts: { pause?: readonly ('smtp' | 'mta' | 'mda')[]; source?: ConfigSource; policy?: DaemonPolicyExtras; privsep?: PrivsepHooks } = {}): Promise<Daemon> {
    mkdirSync(smtpdConf.queue.path, { recursive: true, mode: 0o700 });
    mkdirSync(dirname(smtpdConf.paths.pidFile), { recursive: true });
    let releasePid: () => void;
    try {
      // Under privilege separation the parent holds the pid file (privsep/parent.ts).
      releasePid = opts.privsep ? () => undefined : acquirePidFile(smtpdConf.paths.pidFile);
    } catch (e) {
      throw new StartupError((e as Error).message);
    }
    try {
      const loaded = withPolicyFiles(smtpdConf);
      const { config, files: policyFiles } = loaded;
      // Metrics only when the HTTP listener is on: otherwise the hooks cost one no-op call each.
      const stats = new Stats();
      const metrics = config.http !== undefined ? new Metrics() : undefined;
      if (metrics) stats.probe = metrics;
      const { spool, leases, where, cluster } = daemonSpool(config, log, stats);
      let free = { value: Number.POSITIVE_INFINITY, at: 0 };
      // The connection counts a cluster node shares: the current generation's server's, once it exists.
      const servers: { current?: () => SmtpServer } = {};
      const clusterShared = cluster && clusterState(cluster, config.smtp.authFailRate, log, () => servers.current?.().connectionsByClient() ?? new Map());
      const shared: Shared = {
        log,
        spool,
        stats,
        users: new SystemUsers(),
        tables: new TableRegistry(),
        failrate: clusterShared ? clusterShared.failrate : new FailRate(config.smtp.authFailRate),
        ...(clusterShared ? { cluster: clusterShared } : {}),
        ...(opts.policy ? { policyExtras: opts.policy } : {}),
        freeSpace: async () => {
          const now = Date.now();
          if (now - free.at > 1000) free = { value: await spool.freeSpace().catch(() => Number.POSITIVE_INFINITY), at: now };
          return free.value;
        },
      };
      const gen = Daemon.build(loaded, shared, (e) => new StartupError(e));
      shared.tables.replace(gen.tables);
      // Root is given up here, once certificates and tables are read and before the spool or the network is touched.
      opts.privsep?.drop(config);
      const report = await spool.open().catch(async (e: unknown) => {
        await spool.close().catch(() => undefined);
        throw new StartupError(`spool ${where}: ${(e as Error).message}`);
      });
      log.info(`spool ${where}: ${report.messages} message(s) queued, ${report.removedIncomplete} incomplete removed, ${report.corrupt.length} corrupt`);
      for (const c of report.corrupt) log.warn(`spool: ${c.name} moved to corrupt/: ${c.reason}`);

      // Agents and the scheduler outlive generations; reload gives them the new configuration.
      let current: () => Generation = () => gen;
      const resolver = new Resolver(config.resolver);
      const security = new OutboundSecurity(config, shared.tables, log, resolver.raw, shared.cluster && cluster ? { sts: shared.cluster.sts, pool: cluster.pool, node: cluster.node } : undefined);
      const { signer, transport } = security.parts();
      const mda = new LocalAgent({ config, users: shared.users, tables: shared.tables, log, ...(opts.privsep ? { privsep: false, remote: opts.privsep.remote } : {}) });
      const mta = new RelayAgent({
        config,
        log,
        ...(signer ? { signer } : {}),
        stats: shared.stats,
        resolver,
        ...(transport !== undefined ? { transport } : {}),
        local: new LocalNames(config.hostname),
        credentials: (table, key) => {
          const t = shared.tables.get(table);
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
        const d = await current().policy.rcpt(facts, { sender: null, params: { smtputf8: mailbox.utf8 }, rcptCount: 0 }, mailbox);
        if (d.kind === 'reject') return { error: d.verdict.reason };
        const t = d.targets[0];
        return t ? { action: t.action, dest: t.dest, rule: t.rule } : { error: 'no destination' };
      };
      // Reports enter the queue by the same door as all mail, with the current generation's policy.
      const door = { open: (...a: Parameters<FrontDoor['open']>) => current().door.open(...a) };
      const scheduler = new QueueRunner({ spool, config, log, stats: shared.stats, agents: { mda, mta }, router, door, ...(leases ? { leases } : {}) });
      shared.scheduler = scheduler;
      if (cluster) {
        clusterQueueWiring(shared.cluster as ClusterState, cluster, log, { etrn: (domain) => void scheduler.etrn(domain), apply: (action, target) => applyQueueAction(scheduler, action, target) });
        shared.clusterQueue = () => clusterQueue(cluster.pool);
      }
      await gen.server.listen(gen.config);

      // Local submission (sendmail): offline/ is writable by everyone, readable by nobody else.
      // (The file spool made it; a PostgreSQL spool keeps only this node's own files under `queue path`.)
      mkdirSync(join(config.queue.path, 'offline'), { recursive: true, mode: 0o700 });
      if (process.getuid?.() === 0 || opts.privsep) {
        chmodSync(config.queue.path, 0o711);
        chmodSync(join(config.queue.path, 'offline'), 0o1733);
      }
      const enqueuer = new LocalEnqueuer({
        get config() {
          return current().config;
        },
        get policy() {
          return current().policy;
        },
        get door() {
          return current().door;
        },
        log,
        users: shared.users,
        ...(opts.privsep ? { readOffline: opts.privsep.readOffline } : {}),
      });
      const enqueueSocket = new EnqueueSocket(join(config.queue.path, 'enqueue.sock'), enqueuer, log);
      await enqueueSocket.listen();
      const waiting = await enqueuer.scan();
      if (waiting > 0) log.info(`enqueued ${waiting} message(s) left in offline/ by sendmail`);
      const rescan = setInterval(() => void enqueuer.scan(), 60_000);
      rescan.unref();

      for (const p of opts.pause ?? []) {
        if (p === 'smtp') gen.server.paused = true;
        else scheduler.pause(p);
      }
      // The queue loads while the daemon serves (a large one takes a while): smtpctl show status says so.
      scheduler.start().catch((e: unknown) => log.error(`scheduler: loading the queue: ${(e as Error).message}`));
      // TLS-RPT reports (mailto:) enter by the front door once the scheduler runs.
      security.startReports(async (to, bytes) => {
        const r = await submitDsn({ door, router, to, now: Date.now(), build: () => ({ bytes, utf8: false, eightBit: false }) });
        if (r.kind === 'dropped') throw new Error(r.reason);
      });

      const d = new Daemon(shared, gen, scheduler, mda, mta, security, opts.source, releasePid, () => {
        clearInterval(rescan);
        enqueueSocket.close();
        security.stop();
      });
      current = () => d.gen;
      servers.current = () => d.gen.server;
      d.privsep = opts.privsep;
      d.control = new ControlServer(config.paths.controlSocket, d);
      await d.control.listen();
      if (metrics) d.http = await startHttp({ target: d, control: d.control, metrics, config: () => d.config });
      log.info(`smtpd ready: hostname ${config.hostname}, ${gen.server.listeners.length} listener(s)`);
      return d;
    } catch (e) {
      releasePid();
      if (e instanceof StartupError) throw e;
      throw new StartupError((e as Error).message);
    }
  }

  /**
   * Build a generation: tables, policy, certificates and an SMTP server (not yet listening).
   * Throws (via `fail`) with a FILE:LINE message when something cannot be loaded.
   */
  private static build(loaded: LoadedConfig, shared: Shared, fail: (msg: string) => Error): Generation {
    const { config, files: policyFiles } = loaded;
    const tables: Table[] = [];
    for (const decl of config.tables.values()) {
      const t = tableFromDecl(decl);
      if (t.error) throw fail(`${decl.pos.file}:${decl.pos.line}: table ${decl.name}: ${t.error}`);
      tables.push(t);
    }
    // Lookups during the build (none today) and at run time go through the shared registry.
    const local = new LocalNames(config.hostname);
    const resolver = new Resolver(config.resolver);
    const inbound = inboundVerifier(config, resolver, local);
    const built = buildPolicy(loaded, { tables: shared.tables, users: shared.users, local, dns: resolver.raw, lookups: resolver.lookups, loadAverage: () => loadavg()[0] ?? 0, log: shared.log, probe: shared.stats.probe, ...(inbound ? { mailauth: inbound } : {}), ...(shared.cluster ? { antispamStores: { counters: shared.cluster.rates, greylistStore: shared.cluster.greylist } } : {}), ...shared.policyExtras });
    for (const w of [...policyFiles.warnings, ...built.notes]) shared.log.warn(w);
    let tls: TlsContexts | undefined;
    try {
      tls = config.pki.size > 0 || config.listeners.some((l) => l.tls !== 'none') ? new TlsContexts(config) : undefined;
    } catch (e) {
      throw fail((e as Error).message);
    }
    const auth = { authenticator: new Authenticator(config, shared.tables), failrate: shared.failrate };
    const scheduler: SchedulerSeam = {
      etrn: (domain: string, client?: string) => {
        // smtpserver.conf's etrn-cluster: the other nodes run their queues too (mta/etrn-cluster.ts).
        const cluster = loaded.files.zmailer?.etrnCluster ?? [];
        if (cluster.length > 0) void relayEtrn(cluster, domain, client, config.hostname, shared.log);
        const local = shared.scheduler ? shared.scheduler.etrn(domain) : reply(458, '4.3.0', 'Unable to queue messages now');
        // A shared queue: every node runs its queue for the domain; the answer counts the whole cluster's mail.
        const relay = shared.cluster?.etrn;
        if (relay === undefined || local.code === 458) return local;
        const asked = relay.announce(domain);
        if (local.code === 250) return asked.then(() => local, () => local);
        return asked.then(
          (any) => (any ? reply(250, '2.0.0', `Queuing for node ${domain.toLowerCase()} started`) : local),
          () => local,
        );
      },
      enqueued: (env: Envelope, o?: { readonly held?: boolean }) => shared.scheduler?.enqueued(env, o),
    };
    // The one way into the queue, with this generation's policy: sessions, sendmail and reports use it.
    const filters = filterWiring(config, built.policy, shared.log, shared.tables);
    const door = new FrontDoor({ config, policy: built.policy, spool: shared.spool, log: shared.log, stats: shared.stats, scheduler, now: Date.now, routeAdded: filters.routeAdded, ...(inbound ? { inbound } : {}) });
    const server = new SmtpServer(
      { config, log: shared.log, queue: door, policy: built.policy, stats: shared.stats, scheduler, freeSpace: shared.freeSpace, now: Date.now, tables: shared.tables, auth, runtime: built.session, ...(filters.opener ? { filters: filters.opener } : {}) },
      resolver,
      tls,
      shared.cluster ? { ...built.connection, limits: { ...built.connection.limits, elsewhere: (ip) => (shared.cluster as ClusterState).connections.elsewhere(ip) } } : built.connection,
    );
    return { config, policy: built.policy, door, tls, server, tables, filters };
  }

  /** `smtpctl reload` and SIGHUP: re-read everything, or keep running on the old configuration and say why. */
  async reload(): Promise<{ ok: true } | { ok: false; error: string }> {
    const refuse = (error: string): { ok: false; error: string } => {
      this.log.warn(`reload refused, keeping the running configuration: ${error}`);
      return { ok: false, error };
    };
    if (this.privsep) {
      // The parent reads the configuration again too (it binds and delivers by it) and hands over the secret files.
      const error = await this.privsep.reload();
      if (error !== undefined) return refuse(error);
    }
    if (!this.source) {
      this.reloadTables();
      return { ok: true };
    }
    const r = this.source.file !== undefined ? loadConfigFile(this.source.file, { macros: this.source.macros }) : loadConfigText(this.source.text ?? '', '<built-in>', { macros: this.source.macros });
    if (!r.config) return refuse(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic).join('\n'));
    if (r.config.queue.path !== this.config.queue.path) return refuse(`the queue path cannot change without a restart (${this.config.queue.path} → ${r.config.queue.path})`);
    let gen: Generation;
    try {
      gen = Daemon.build(withPolicyFiles(r.config), this.shared, (msg) => new Error(msg));
    } catch (e) {
      return refuse((e as Error).message);
    }
    const old = this.gen;
    const oldTables = [...this.shared.tables.all()];
    this.shared.tables.replace(gen.tables);
    gen.server.paused = old.server.paused;
    await old.server.stopListening();
    try {
      await listenWithRetry(gen.server, gen.config);
    } catch (e) {
      // Put the old generation back where it was.
      await gen.server.stopListening();
      this.shared.tables.replace(oldTables);
      await listenWithRetry(old.server, old.config).catch((e2: Error) => this.log.error(`reload: cannot bind the old listeners again: ${e2.message}`));
      return refuse((e as Error).message);
    }
    this.retired.push(old.server);
    this.gen = gen;
    const config = gen.config;
    this.runner.setConfig(config);
    this.mda.setConfig(config);
    const rebuilt = this.security.reload(config);
    this.mta.setConfig(config, rebuilt.length > 0 ? this.security.parts() : undefined);
    if (rebuilt.length > 0) this.log.info(`reload: rebuilt ${rebuilt.join(', ')}`);
    for (const d of r.diagnostics) if (d.severity === 'warning') this.log.warn(formatDiagnostic(d));
    reloadTokens(this.http, config, (w) => this.log.warn(w));
    this.log.info(`configuration reloaded: ${gen.server.listeners.length} listener(s), ${config.rules.length} rule(s)`);
    return { ok: true };
  }

  /** Re-read tables and certificates only (`smtpctl update table`, and reload without a file to read). */
  reloadTables(): void {
    try {
      this.gen.tls?.reload();
    } catch (e) {
      this.log.warn(`certificates: reload failed, keeping the previous ones: ${(e as Error).message}`);
    }
    for (const t of this.shared.tables.all()) {
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
    await this.http?.close();
    await this.control?.close();
    this.closeLocal();
    await Promise.all([this.gen.server, ...this.retired].map((s) => s.close(graceMs)));
    this.gen.filters.stop();
    await this.runner.stop();
    this.mda.close();
    await this.mta.close();
    await this.shared.cluster?.stop();
    await this.shared.spool.close();
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

  sessions(): number {
    return [this.gen.server, ...this.retired].reduce((n, s) => n + s.sessionCount, 0);
  }

  hosts(): unknown[] {
    return this.mta.hosts();
  }

  cluster(): Promise<unknown[]> {
    return this.shared.clusterQueue?.() ?? Promise.resolve([]);
  }

  get clusterAct(): ((action: QueueAction, target: string) => Promise<ClusterActResult>) | undefined {
    const q = this.shared.cluster?.queue;
    return q && ((action, target) => q.act(action, target));
  }

  routes(): unknown[] {
    return this.mta.routes();
  }
}

/** Bind a server's listeners, retrying briefly while the ports the old ones held are released. */
async function listenWithRetry(server: SmtpServer, config: Config): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await server.listen(config);
      return;
    } catch (e) {
      if (i >= 20 || !/EADDRINUSE/.test((e as Error).message)) throw e;
      await server.stopListening();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
