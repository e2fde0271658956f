/*
 * daemon/privsep/parent.ts — smtpd's privileged parent (OpenSMTPD's
 * "parent" process): what stays root when smtpd is started as root.
 *
 * It makes the spool the unprivileged user's (spool-owner.ts), holds the
 * pid file, writes the mail log (file and system log; SIGUSR1 reopens it;
 * the SMTP side's lines come through a pipe of their own, log-pipe.ts),
 * starts the SMTP side as its child (the same smtpd, CHILD_ENV set, an IPC
 * channel; the child gives up root itself, child.ts) and serves it, one
 * checked message at a time (protocol.ts):
 *
 *   bind      only an address and port of a `listen on` of ITS reading of the
 *             configuration, the `http listen` address, or the control socket path;
 *   deliver   the recipients of one message, each looked up again (verify.ts), then delivered by the
 *             local agent as the user: the delivery workers (worker-pool.ts)
 *             for mailboxes and files, setpriv for commands;
 *   offline   a file of the spool's offline/ folder, by its plain name;
 *   reload    the configuration read again (and the secret files it names);
 *   password  a system password checked with unix_chkpwd, one at a time;
 *   filter    a `filter NAME proc-exec` of ITS configuration started as the
 *             filter's user (filter-relay.ts), its stdio relayed;
 *   forward   a system user's ~/.forward, the user looked up here by name, the
 *             file read with expand/forward.ts's safety rules (owner, mode, no
 *             link; `forward none` = never), as OpenSMTPD's parent opens it for
 *             its lookup process, with the :include: files it names read as
 *             the user (expand/include-as.ts). The SMTP side gets the parsed destinations;
 *             whether a |command or /file may be used is its expansion's rule,
 *             and deliver re-checks it here (verify.ts).
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are passed to the child (which stops
 * or reloads as smtpd always did); SIGUSR1 reopens the log here. When the
 * child exits, the parent stops the delivery workers, removes the pid file
 * and the control socket, and exits with the child's status (1 when it was
 * killed). Nothing is lost: the spool holds everything a restart needs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { Config } from '../../config/model.js';
import { formatDiagnostic, loadConfigFile, loadConfigText } from '../../config/load.js';
import { withPolicyFiles } from '../../config/policy-files.js';
import { bindControlSocket } from '../../control/bind.js';
import { Authenticator } from '../../auth/authenticator.js';
import { LocalAgent, type RemoteRequest } from '../../delivery/local/agent.js';
import { describe, tempfail, type Outcome } from '../../delivery/local/outcome.js';
import type { ForwardRead } from '../../expand/forward.js';
import { ForwardCache } from '../../expand/forward-cache.js';
import { includePaths, readIncludesAs } from '../../expand/include-as.js';
import { DEFAULT_FORWARD } from '../../config/parse-forward.js';
import type { MailLog } from '../../log/maillog.js';
import { preloadSecrets, secretPaths } from '../../privsep/secrets.js';
import type { BindSpec } from '../../privsep/listen.js';
import { LocalNames } from '../../rules/localnames.js';
import { listenAddresses } from '../../smtp/listen-addresses.js';
import { TableRegistry, type Table } from '../../table/table.js';
import { tableFromDecl } from '../../table/table-static.js';
import { SystemUsers } from '../../users/system-users.js';
import type { ConfigSource } from '../daemon.js';
import { acquirePidFile } from '../pidfile.js';
import { CHILD_ENV } from './child.js';
import { Coalescer, unbatch } from './coalesce.js';
import { asBuffer, checkChildMessage, type ChildMessage, type ParentMessage } from './protocol.js';
import { prepareSpool, type SpoolOwner } from './spool-owner.js';
import { FilterHost } from './filter-relay.js';
import { LOG_FD, readLogPipe } from './log-pipe.js';
import { verifyDelivery } from './verify.js';

/** The unprivileged user of the SMTP side unless `-u`/smtpd.conf says otherwise (as OpenSMTPD's _smtpd). */
export const DEFAULT_PRIVSEP_USER = '_postern';

export interface ParentOptions {
  readonly config: Config;
  /** Where `reload` reads the configuration again; none (smtpserver, whose options make it): tables only. */
  readonly source?: ConfigSource;
  /** The command, for the log ("smtpd", "smtpserver"). */
  readonly name?: string;
  readonly log: MailLog;
  /** The smtpd script and its arguments, for the child. */
  readonly childArgs: readonly string[];
  readonly user: SpoolOwner;
}

interface Inflight {
  /** A message streamed after its request ('body' messages); none when it came whole. */
  readonly body?: PassThrough;
  readonly ac: AbortController;
}

/** The user the SMTP side runs as, or the one-line reason smtpd cannot start. */
export function privsepUser(name: string, users = new SystemUsers()): SpoolOwner | { error: string } {
  const u = users.lookup(name);
  if (u === undefined) return { error: `the unprivileged user "${name}" does not exist: run "postern install", or create it with "useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin ${name}"` };
  if ('error' in u) return { error: `user "${name}": ${u.error}` };
  if (u.uid === 0 || u.gid === 0) return { error: `the unprivileged user "${name}" has uid or gid 0` };
  return { name: u.name, uid: u.uid, gid: u.gid };
}

class Parent {
  private config: Config;
  private tables = new TableRegistry();
  private readonly users = new SystemUsers();
  /** The ~/.forward files read for the SMTP side, while unchanged (forward-cache.ts). */
  private readonly forwards = new ForwardCache();
  private agent: LocalAgent;
  private child!: ChildProcess;
  private readonly out = new Coalescer<ParentMessage>((m, done) => {
    if (!this.child.connected) return done();
    this.child.send(m, undefined, {}, () => done());
  });
  private readonly inflight = new Map<number, Inflight>();
  private controlInode: number | undefined;
  private ready = false;
  private tableFiles: { readonly table: Table; readonly path: string; mtime: number }[] = [];
  private tablesCheckedAt = 0;
  private readonly auth: Authenticator;
  private passwords: Promise<void> = Promise.resolve();
  private readonly filters: FilterHost;
  /** This host's names and addresses for verify.ts, made again at most once a minute (networkInterfaces() costs). */
  private localNames: { readonly names: LocalNames; readonly at: number } | undefined;

  constructor(
    private readonly o: ParentOptions,
    private readonly releasePid: () => void,
  ) {
    this.config = o.config;
    this.loadTables(o.config);
    this.agent = new LocalAgent({ config: o.config, users: this.users, tables: this.tables, log: o.log, privsep: true });
    this.auth = new Authenticator(o.config, this.tables);
    this.filters = new FilterHost((m) => this.send(m), () => this.config, o.log);
  }

  private get log(): MailLog {
    return this.o.log;
  }

  private get name(): string {
    return this.o.name ?? 'smtpd';
  }

  private loadTables(config: Config): void {
    const tables: Table[] = [];
    this.tableFiles = [];
    for (const decl of config.tables.values()) {
      const t = tableFromDecl(decl);
      if (t.error) throw new Error(`${decl.pos.file}:${decl.pos.line}: table ${decl.name}: ${t.error}`);
      tables.push(t);
      if (decl.kind === 'file' || decl.kind === 'db') this.tableFiles.push({ table: t, path: decl.path, mtime: mtimeOf(decl.path) });
    }
    this.tables.replace(tables);
  }

  /**
   * The SMTP side re-reads a table on `smtpctl update table` (and resolves recipients by it at once);
   * the parent, which looks users and aliases up again for deliveries, follows the files themselves:
   * a file changed since it was read is read again (looked at once a second at most).
   */
  private refreshTables(): void {
    const now = Date.now();
    if (now - this.tablesCheckedAt < 1000) return;
    this.tablesCheckedAt = now;
    for (const f of this.tableFiles) {
      const m = mtimeOf(f.path);
      if (m === f.mtime) continue;
      f.mtime = m;
      try {
        f.table.reload();
      } catch (e) {
        this.log.warn(`privsep: table ${f.table.name}: ${describe(e)}; the previous contents stay in force`);
      }
    }
  }

  start(): void {
    const child = spawn(process.execPath, [...process.execArgv, ...this.o.childArgs], {
      // LOG_FD: the SMTP side's mail log (log-pipe.ts), written here.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe'],
      serialization: 'advanced',
      // io_uring requests would keep the credentials the ring was made with (root): off in the child (CVE-2024-22017).
      env: { ...process.env, [CHILD_ENV]: `${this.o.user.uid}:${this.o.user.gid}`, UV_USE_IO_URING: '0' },
    });
    this.child = child;
    this.log.info(`${this.name}: privileged parent pid=${process.pid}; SMTP side pid=${child.pid ?? '?'} runs as ${this.o.user.name} (uid ${this.o.user.uid})`);
    child.on('message', (raw: unknown) => {
      for (const x of unbatch(raw)) {
        const m = checkChildMessage(x);
        if (!m) this.log.warn('privsep: a malformed message from the SMTP side, ignored');
        else this.handle(m);
      }
    });
    const logPipe = child.stdio[LOG_FD];
    const logEnded = logPipe ? readLogPipe(logPipe as Readable, (line, sev) => this.log.relayed(line, sev)) : Promise.resolve();
    // The child's last lines first (its end of the pipe closes as it exits; a process it started could hold it: not long).
    child.on('exit', (code, signal) => {
      const wait = new Promise((r) => setTimeout(r, 500));
      void Promise.race([logEnded, wait]).then(() => this.childExited(code, signal));
    });
    process.on('SIGHUP', () => child.kill('SIGHUP'));
    // SIGINT is passed on as SIGTERM (the child leaves SIGINT to us: a terminal's ^C reaches both). The same stop
    // asked twice within a second (^C and a kill from a wrapper) is passed on once; later, a second one means "now".
    let lastStop = 0;
    const stop = (): void => {
      if (Date.now() - lastStop < 1000) return;
      lastStop = Date.now();
      child.kill('SIGTERM');
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGUSR1', () => this.log.reopen());
  }

  /** Messages without a handle leave together at the end of the turn (coalesce.ts); one with a handle after them, at once. */
  private send(m: ParentMessage, handle?: Server, done?: () => void): void {
    if (handle === undefined) return void this.out.send(m).then(done);
    this.out.flush();
    if (!this.child.connected) return done?.();
    this.child.send(m, handle, {}, () => done?.());
  }

  private handle(m: ChildMessage): void {
    switch (m.t) {
      case 'bind':
        return void this.bind(m.id, m.spec);
      case 'deliver':
        return this.deliver(m);
      case 'body':
        this.inflight.get(m.id)?.body?.write(asBuffer(m.chunk));
        return;
      case 'end':
        this.inflight.get(m.id)?.body?.end();
        return;
      case 'abandon':
        this.inflight.get(m.id)?.body?.destroy(new Error('the SMTP side could not read the whole message'));
        return;
      case 'cancel':
        this.inflight.get(m.id)?.ac.abort();
        return;
      case 'offline':
        return this.send({ t: 'offline-file', id: m.id, ...this.readOffline(m.name) });
      case 'password':
        // One check at a time: the SMTP side cannot make root run unix_chkpwd faster than one after another.
        this.passwords = this.passwords.then(() => this.auth.checkSystemPassword(m.user, m.password)).then((outcome) => this.send({ t: 'checked', id: m.id, outcome }));
        return;
      case 'filter-spawn':
      case 'filter-in':
      case 'filter-kill':
        return this.filters.handle(m);
      case 'forward':
        return void this.readForward(m.user).then((read) => this.send({ t: 'forward-read', id: m.id, read }));
      case 'reload':
        return this.send({ t: 'reloaded', id: m.id, ...this.reload() });
      case 'ready':
        this.ready = true;
        if (process.send) {
          process.send({ ready: true });
          process.disconnect();
        }
        return;
      case 'fatal':
        if (process.send && !this.ready) process.send({ error: m.message });
        return;
    }
  }

  /** Is this an address the configuration asks to listen on? */
  private allowed(spec: BindSpec): boolean {
    const c = this.config;
    if (spec.kind === 'unix') return spec.path === c.paths.controlSocket;
    if (c.http && c.http.address === spec.host && c.http.port === spec.port) return true;
    return c.listeners.some((l) => {
      const addrs = listenAddresses(l.on, l.family);
      return l.port === spec.port && Array.isArray(addrs) && addrs.includes(spec.host);
    });
  }

  private async bind(id: number, spec: BindSpec): Promise<void> {
    if (!this.allowed(spec)) {
      this.log.warn(`privsep: refused to bind ${spec.kind === 'unix' ? spec.path : `${spec.host} port ${spec.port}`}: not in the configuration`);
      return this.send({ t: 'bound', id, error: 'EACCES: not an address of the configuration' });
    }
    const server = createServer();
    try {
      if (spec.kind === 'unix') this.controlInode = await bindControlSocket(spec.path, server);
      else {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: spec.host, port: spec.port, backlog: spec.backlog ?? 511, ipv6Only: false }, () => {
            server.off('error', reject);
            resolve();
          });
        });
      }
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return this.send({ t: 'bound', id, error: err.code ? `${err.code}: ${err.message}` : err.message });
    }
    // The child has its own copy of the socket once the message is sent; ours is closed (a control socket
    // was bound under a temporary name, so closing it removes nothing).
    this.send({ t: 'bound', id }, server, () => server.close());
  }

  /**
   * The recipients of one request, each checked (verify.ts) and delivered as its user; one answer with every
   * outcome. A message that came whole is handed to every job as the same Buffer (no stream per job).
   */
  private deliver(m: Extract<ChildMessage, { t: 'deliver' }>): void {
    this.refreshTables();
    const now = Date.now();
    if (!this.localNames || now - this.localNames.at > 60_000) this.localNames = { names: new LocalNames(this.config.hostname), at: now };
    const ac = new AbortController();
    let body: PassThrough | Buffer;
    if (m.body) body = asBuffer(m.body);
    else {
      // A larger message follows in 'body' messages.
      body = new PassThrough();
      body.on('error', () => undefined);
    }
    const stream = Buffer.isBuffer(body) ? undefined : body;
    this.inflight.set(m.id, { ...(stream ? { body: stream } : {}), ac });
    const local = this.localNames.names;
    void Promise.all(m.reqs.map((req) => this.deliverOne(req, local, body, ac.signal))).then((outcomes) => {
      this.inflight.delete(m.id);
      stream?.destroy();
      this.send({ t: 'outcome', id: m.id, outcomes });
    });
  }

  private deliverOne(req: RemoteRequest, local: LocalNames, body: PassThrough | Buffer, signal: AbortSignal): Promise<Outcome> {
    const v = verifyDelivery(req, { config: this.config, tables: this.tables, users: this.users, local });
    if ('error' in v) {
      this.log.warn(`privsep: delivery of ${req.rcpt.evpid} refused: ${v.error}`);
      return Promise.resolve(tempfail('4.3.5', `refused by the privileged parent: ${v.error}`));
    }
    const { rcpt, sender, facts } = req;
    const one = { action: v.action, sender, signal, openBody: () => body };
    return this.agent.deliverRecipient(one, { ...rcpt, dest: rcpt.dest }, facts).catch((e: unknown) => tempfail('4.3.0', `privileged parent: ${describe(e)}`));
  }

  /** offline/NAME for the SMTP side: its owner and its bytes, with the checks the enqueuer made itself before. */
  private readOffline(name: string): { uid?: number; data?: Uint8Array; error?: string; code?: number } {
    if (name !== basename(name) || name.startsWith('.') || name === '') return { error: 'bad file name', code: 554 };
    const path = join(this.config.queue.path, 'offline', name);
    let fd: number;
    try {
      const st = lstatSync(path);
      if (!st.isFile() || st.nlink !== 1) return { error: 'not a regular file', code: 554 };
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      return { error: describe(e) };
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.nlink !== 1) return { error: 'not a regular file', code: 554 };
      if (st.size > this.config.smtp.maxMessageSize + 1_000_000) return { error: 'Message size exceeds fixed maximum message size', code: 552 };
      return { uid: st.uid, data: readFileSync(fd) };
    } catch (e) {
      return { error: describe(e) };
    } finally {
      closeSync(fd);
    }
  }

  /** A system user's ~/.forward for the SMTP side: the user by name, looked up here; never a path from the child. */
  private async readForward(name: string): Promise<ForwardRead> {
    if (!(this.config.forward ?? DEFAULT_FORWARD).read) return { kind: 'missing' };
    const u = this.users.lookup(name);
    if (u === undefined) return { kind: 'missing' };
    if ('error' in u) return { kind: 'error', reason: u.error };
    const r = this.forwards.read(u);
    const paths = r.kind === 'ok' ? includePaths(r.nodes) : [];
    if (r.kind !== 'ok' || paths.length === 0) return r;
    // Its :include: files, read as the user (never root: a user could name /etc/shadow).
    const includes = await readIncludesAs(u, paths);
    return 'error' in includes ? { kind: 'error', reason: includes.error } : { ...r, includes };
  }

  /** The configuration read again from the same source; the secret files it names. */
  private reload(): { error?: string; secrets?: Map<string, Uint8Array> } {
    const s = this.o.source;
    if (s === undefined) {
      try {
        this.loadTables(this.config);
        return { secrets: preloadSecrets(secretPaths(this.config)) };
      } catch (e) {
        return { error: describe(e) };
      }
    }
    const r = s.file !== undefined ? loadConfigFile(s.file, { macros: s.macros }) : loadConfigText(s.text ?? '', '<built-in>', { macros: s.macros });
    if (!r.config) return { error: r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic).join('; ') };
    try {
      const { config } = withPolicyFiles(r.config);
      this.loadTables(config);
      this.config = config;
      this.localNames = undefined;
      this.agent.setConfig(config);
      return { secrets: preloadSecrets(secretPaths(config)) };
    } catch (e) {
      return { error: describe(e) };
    }
  }

  private childExited(code: number | null, signal: NodeJS.Signals | null): void {
    const how = signal ?? `status ${code}`;
    if (code !== 0) this.log.warn(`${this.name}: the SMTP side exited (${how}); the privileged parent exits too`);
    for (const f of this.inflight.values()) {
      f.body?.destroy(new Error('message cut short (the SMTP side went away)'));
      f.ac.abort();
    }
    this.agent.close();
    this.filters.stopAll();
    if (!this.ready && process.send) process.send({ error: `the SMTP side exited during start-up (${how})` });
    if (this.controlInode !== undefined) {
      try {
        if (lstatSync(this.config.paths.controlSocket).ino === this.controlInode) unlinkSync(this.config.paths.controlSocket);
      } catch {
        /* gone */
      }
    }
    this.releasePid();
    this.log.info(`${this.name}: privileged parent exiting`);
    this.log.flush();
    // Workers finish or undo the job in hand on their own (their input is closed).
    process.exit(code ?? 1);
  }
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/** Run as the privileged parent; returns once the child is started (the process lives on its events). */
export function runParent(o: ParentOptions): void {
  prepareSpool(o.config.queue.path, o.user);
  mkdirSync(dirname(o.config.paths.pidFile), { recursive: true });
  const releasePid = acquirePidFile(o.config.paths.pidFile);
  try {
    new Parent(o, releasePid).start();
  } catch (e) {
    releasePid();
    throw e;
  }
}
