/*
 * delivery/local/agent.ts — the local DeliveryAgent: mbox, maildir, mda,
 * lmtp, and the "/file" and "|command" destinations of aliases(5).
 *
 * For each recipient of a task the agent finds the destination (rcpt.dest,
 * or the address's user when the envelope predates expansion), the user the
 * delivery runs as (`user NAME` overrides it; `userbase <table>` holds
 * virtual users), builds a Job (job.ts) with every path expanded and
 * checked, and runs it:
 *   - as root: mbox, maildir and /file jobs in a long-lived delivery
 *     worker that switches its effective ids to the user's per job
 *     (worker-pool.ts, deliver-worker.ts); mda and |command jobs here,
 *     the command started through setpriv as the user (mda.ts), or, when
 *     setpriv is missing, in the one-shot deliver-as helper (privsep.ts);
 *   - otherwise: here, as the current user, into the configured paths.
 * LMTP recipients of a task share one LMTP transaction (lmtp.ts), on a
 * session kept from message to message; LMTP touches no user file and runs
 * in the daemon.
 *
 * Before writing, the message header is read once per task for loops
 * (a Delivered-To: equal to the recipient → 5.4.6, as OpenSMTPD) and spam
 * marks (`maildir junk`). Results: 2.0.0 delivered; 5.1.1 no such user;
 * 5.1.3 an address that would leave its mail root; 4.3.5 configuration
 * errors; others from the backends (outcome.ts, mda.ts, lmtp.ts).
 */
import { mkdir, stat, chmod } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import type { Action, Config } from '../../config/model.js';
import type { MailLog } from '../../log/maillog.js';
import type { Destination, EnvelopeRecipient } from '../../mail/envelope.js';
import { NOBODY } from '../../users/system-users.js';
import type { TableRegistry } from '../../table/table.js';
import { oneLine, type DeliveryAgent, type DeliveryTask, type RecipientResult } from '../agent.js';
import type { UserBase, UserInfo } from '../../users/system-users.js';
import { splitAddress, unsafeName } from './address.js';
import { expandPath, extensionFolder, shellCommand, type FormatContext } from './format.js';
import { runJob, type Credentials, type Job } from './job.js';
import { deliverLmtp } from './lmtp.js';
import { LmtpSessions } from './lmtp-connection.js';
import { existsSync } from 'node:fs';
import { DEFAULT_MDA_TIMEOUT_MS, runMda, SETPRIV } from './mda.js';
import { fromLine } from './mbox.js';
import { deliveryHeaders, headerFactsIn, readUpTo, scanHeader, type HeaderFacts } from './message.js';
import { wholeBodyStream } from '../../spool/whole-body.js';
import { describe, permfail, tempfail, type Outcome } from './outcome.js';
import { runAsUser } from './privsep.js';
import { TableUserBase } from './userbase.js';
import { WorkerPool } from './worker-pool.js';
import { groupsOf } from './user-groups.js';

export interface LocalAgentOptions {
  readonly config: Config;
  readonly users: UserBase;
  readonly tables: TableRegistry;
  readonly log: MailLog;
  /** mda time limit (ms). Default 5 minutes. */
  readonly mdaTimeoutMs?: number;
  /** Wait this long for a mailbox lock (ms). Default 30 s. */
  readonly lockTimeoutMs?: number;
  /** Deliver through the deliver-as helper. Default: when running as root. */
  readonly privsep?: boolean;
  /** The helper script (tests). */
  readonly helperPath?: string;
  /** Delivery workers (as root): how many at most. Default 2. */
  readonly workers?: number;
  /** The worker script (tests). */
  readonly workerPath?: string;
  /** setpriv, which starts commands as the user (as root); default /usr/bin/setpriv. Missing: the deliver-as helper. */
  readonly setpriv?: string;
  /**
   * The SMTP side of a root-started smtpd (daemon/privsep/): mailbox, file and command deliveries are
   * asked of the privileged parent, which resolves the recipient again and runs them (LMTP stays here).
   */
  readonly remote?: RemoteDeliver;
}

/** One local recipient as the SMTP side asks the privileged parent to deliver it (daemon/privsep/protocol.ts). */
export interface RemoteRequest {
  readonly action: string;
  readonly sender: string;
  readonly rcpt: Pick<EnvelopeRecipient, 'evpid' | 'address' | 'original' | 'action' | 'dest'>;
  readonly facts: HeaderFacts;
}
/**
 * Deliver recipients of one message through the privileged parent: one outcome per request, in order.
 * `openBody` may be called more than once (a message too large to travel whole goes once per recipient).
 */
export type RemoteDeliver = (reqs: readonly RemoteRequest[], openBody: () => Readable, signal: AbortSignal) => Promise<Outcome[]>;

/** What one recipient's delivery needs of its task (the parent builds it from a RemoteRequest). */
export interface OneDelivery {
  readonly action: Action;
  readonly sender: string;
  readonly signal: AbortSignal;
  /** The message as a stream, or whole (the parent: a small message came whole with its request). */
  openBody(): Readable | Buffer;
}

function asStream(body: Readable | Buffer): Readable {
  return Buffer.isBuffer(body) ? Readable.from([body], { objectMode: false }) : body;
}

/** A shell PATH for commands, as OpenSMTPD's _PATH_DEFPATH. */
export const SAFE_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin';
/** The helper's own time limit beyond the job's. */
const HELPER_SLACK_MS = 60_000;
const FILE_JOB_TIMEOUT_MS = 15 * 60_000;
/** A message up to this size is read into memory once per task (the privileged parent takes it whole too). */
const WHOLE_MAX = 256 * 1024;
/** Keys per user for maildir deliveries (see key()). */
const MAILDIR_LANES = 4;
/** Keys per action for LMTP deliveries (see key()): with maxTasksPerKey.mda (2), the sessions open at once to a server. */
const LMTP_LANES = 5;

/** A recipient's destination; envelopes written before expansion existed deliver to the address's user. */
export function destinationOf(rcpt: EnvelopeRecipient): Destination {
  return rcpt.dest ?? { kind: 'user', user: splitAddress(rcpt.address).user };
}

/** The local user an LMTP recipient is handed over as. */
function userOf(rcpt: EnvelopeRecipient): string {
  const d = destinationOf(rcpt);
  return d.kind === 'remote' ? splitAddress(rcpt.address).user : d.user;
}

type Prepared = { readonly job: Job; readonly creds: Credentials; readonly timeoutMs: number } | { readonly outcome: Outcome };

export class LocalAgent implements DeliveryAgent {
  readonly kind = 'mda' as const;
  private config: Config;
  private readonly users: UserBase;
  private readonly tables: TableRegistry;
  private readonly log: MailLog;
  private readonly mdaTimeoutMs: number;
  private readonly lockTimeoutMs: number | undefined;
  private readonly privsep: boolean;
  private readonly helperPath: string | undefined;
  private readonly userbases = new Map<string, TableUserBase>();
  private readonly setpriv: string;
  private setprivChecked: boolean | undefined;
  /** The delivery workers (as root); started with the first job that needs one. */
  readonly pool: WorkerPool | undefined;
  private readonly remote: RemoteDeliver | undefined;
  /** Idle LMTP sessions, kept for the next message. */
  private readonly lmtpSessions = new LmtpSessions();

  constructor(opts: LocalAgentOptions) {
    this.config = opts.config;
    this.users = opts.users;
    this.tables = opts.tables;
    this.log = opts.log;
    this.mdaTimeoutMs = opts.mdaTimeoutMs ?? DEFAULT_MDA_TIMEOUT_MS;
    this.lockTimeoutMs = opts.lockTimeoutMs;
    this.privsep = opts.privsep ?? process.getuid?.() === 0;
    this.helperPath = opts.helperPath;
    this.setpriv = opts.setpriv ?? SETPRIV;
    this.remote = opts.remote;
    if (this.privsep) this.pool = new WorkerPool({ size: opts.workers, workerPath: opts.workerPath, log: (l) => this.log.info(l) });
  }

  /** The daemon stops: workers end (a job in hand is aborted and reported as a temporary failure). */
  close(): void {
    this.pool?.close();
    this.lmtpSessions.close();
  }

  /** Is setpriv there? Checked once; its absence is logged once. */
  private hasSetpriv(): boolean {
    if (this.setprivChecked === undefined) {
      this.setprivChecked = existsSync(this.setpriv);
      if (!this.setprivChecked) this.log.warn(`mda: ${this.setpriv} not found: commands run through the one-shot deliver-as helper (a Node.js start per delivery); install util-linux`);
    }
    return this.setprivChecked;
  }

  /** `smtpctl reload`: the next deliveries use the new configuration. */
  setConfig(config: Config): void {
    this.config = config;
  }

  /**
   * The local user: the scheduler runs few tasks at once per key (maxTasksPerKey), so that one user's mbox
   * or commands see few deliveries at a time. A maildir needs no lock, and its deliveries are batched by the
   * delivery workers (one round trip and one fsync of each new/ for several messages, worker-pool.ts), so
   * maildir deliveries of a user destination share MAILDIR_LANES keys of the action, picked by message: the
   * recipients of one message (one message to 100 users) form one task whose body is read once, and enough
   * deliveries wait at once to form batches. LMTP deliveries touch no file of ours (the server stores and
   * locks): they share LMTP_LANES keys of the action, picked by message in the same way, so that the recipients
   * of one message go in one transaction and several sessions (reused from message to message, lmtp.ts) are
   * open at once, as Postfix's lmtp(8) delivers per destination, not per user.
   */
  key(action: Action, rcpt: EnvelopeRecipient): string {
    const dest = destinationOf(rcpt);
    if (dest.kind === 'remote') return rcpt.address.toLowerCase();
    if (dest.kind === 'user' && (action.kind === 'maildir' || action.kind === 'lmtp')) {
      // An evpid starts with its msgid (8 characters, spool/fs/ids.ts).
      const c = rcpt.evpid.charCodeAt(Math.min(7, rcpt.evpid.length - 1));
      const n = Number.isNaN(c) ? 0 : c;
      return action.kind === 'maildir' ? `maildir lane ${n % MAILDIR_LANES}` : `lmtp lane ${n % LMTP_LANES}`;
    }
    return dest.user.toLowerCase();
  }

  async deliver(task: DeliveryTask): Promise<RecipientResult[]> {
    const outcomes: (Outcome | undefined)[] = task.recipients.map(() => undefined);
    const lmtp: number[] = [];
    const local: number[] = [];
    for (const [i, rcpt] of task.recipients.entries()) {
      const dest = destinationOf(rcpt);
      if (dest.kind === 'remote') outcomes[i] = tempfail('4.3.5', `${rcpt.address}: not a local destination (action ${task.action.name})`);
      else if (dest.kind === 'user' && task.action.kind === 'lmtp') lmtp.push(i);
      else local.push(i);
    }
    if (lmtp.length > 0) {
      const rs = await this.deliverLmtp(task, lmtp.map((i) => task.recipients[i] as EnvelopeRecipient));
      lmtp.forEach((i, k) => (outcomes[i] = rs[k]));
    }
    if (local.length > 0) {
      let facts: HeaderFacts | undefined;
      try {
        // A small message is read once for the header and every recipient of the task (not once more for the
        // deliveries: a read of the spool file checks the SHA-256 of the whole body).
        const start = await readUpTo(task.openBody(), WHOLE_MAX);
        facts = headerFactsIn(start.bytes, start.whole) ?? (await scanHeader(task.openBody()));
        if (start.whole) task = { ...task, openBody: () => wholeBodyStream([start.bytes]) };
      } catch (e) {
        for (const i of local) outcomes[i] = tempfail('4.3.0', `cannot read the message: ${describe(e)}`);
      }
      if (facts) {
        const one = async (i: number): Promise<void> => {
          if (task.signal.aborted) outcomes[i] = tempfail('4.3.0', 'delivery interrupted');
          else outcomes[i] = await this.deliverOne(task, task.recipients[i] as EnvelopeRecipient, facts);
        };
        // Asked of the privileged parent, maildir deliveries of a task go together: one request, the message
        // once (its pool batches them); else one by one.
        if (this.remote && task.action.kind === 'maildir') {
          const rs = await this.deliverRemote(task, local.map((i) => task.recipients[i] as EnvelopeRecipient), facts);
          local.forEach((i, k) => (outcomes[i] = rs[k]));
        } else for (const i of local) await one(i);
      }
    }
    return task.recipients.map((rcpt, i) => {
      const o = outcomes[i] ?? tempfail('4.3.0', 'not delivered');
      if (this.log.tracing('mda')) this.log.trace('mda', `evpid=${rcpt.evpid} action=${task.action.name} status=${o.status} ${o.enhanced} ${o.detail}`);
      return { evpid: rcpt.evpid, ...o, detail: oneLine(o.detail) };
    });
  }

  /** Recipients asked of the privileged parent (remote), one outcome each. */
  private async deliverRemote(task: DeliveryTask, rcpts: readonly EnvelopeRecipient[], facts: HeaderFacts): Promise<Outcome[]> {
    const remote = this.remote as RemoteDeliver;
    if (task.signal.aborted) return rcpts.map(() => tempfail('4.3.0', 'delivery interrupted'));
    const reqs = rcpts.map((rcpt): RemoteRequest => {
      const { evpid, address, original, action, dest } = rcpt;
      return { action: task.action.name, sender: task.envelope.sender, rcpt: { evpid, address, original, action, dest: dest ?? destinationOf(rcpt) }, facts };
    });
    return remote(reqs, () => task.openBody(), task.signal);
  }

  private async deliverOne(task: DeliveryTask, rcpt: EnvelopeRecipient, facts: HeaderFacts): Promise<Outcome> {
    if (this.remote) return (await this.deliverRemote(task, [rcpt], facts))[0] ?? tempfail('4.3.0', 'not delivered');
    return this.deliverRecipient({ action: task.action, sender: task.envelope.sender, signal: task.signal, openBody: () => task.openBody() }, rcpt, facts);
  }

  /** Deliver one local recipient (mbox, maildir, mda, an alias's file or command) as its user. */
  async deliverRecipient(task: OneDelivery, rcpt: EnvelopeRecipient, facts: HeaderFacts): Promise<Outcome> {
    let prepared: Prepared;
    try {
      prepared = await this.prepare(task, rcpt, facts);
    } catch (e) {
      return tempfail('4.3.0', `${rcpt.address}: ${describe(e)}`);
    }
    if ('outcome' in prepared) return prepared.outcome;
    let body: Readable | Buffer;
    try {
      body = task.openBody();
    } catch (e) {
      return tempfail('4.3.0', `cannot read the message: ${describe(e)}`);
    }
    const { job, creds } = prepared;
    if (!this.privsep) return runJob(job, asStream(body), { signal: task.signal });
    let o: Outcome;
    if (job.kind === 'mda' && this.hasSetpriv()) {
      // The command as the user, real and effective ids (setpriv); nothing else started. The user's groups from a list
      // kept for 5 s (user-groups.ts) spare setpriv its own group-database lookup (--init-groups) at every command.
      const groups = creds.initgroups ? (groupsOf(creds.user, creds.gid) ?? 'init') : [creds.gid];
      o = await runMda(job, asStream(body), task.signal, { uid: creds.uid, gid: creds.gid, groups, setpriv: this.setpriv });
    } else if (job.kind === 'mda' || !this.pool) {
      o = await runAsUser(creds, job, asStream(body), { signal: task.signal, timeoutMs: prepared.timeoutMs + HELPER_SLACK_MS, helperPath: this.helperPath });
    } else {
      o = await this.pool.run(creds, job, body, { signal: task.signal, timeoutMs: prepared.timeoutMs + HELPER_SLACK_MS });
    }
    if (/^delivery (helper|worker)/.test(o.detail)) this.log.warn(`mda: ${rcpt.evpid} as ${creds.user}: ${o.detail}`);
    return o;
  }

  /** The delivery user: `user NAME` (a system user), else the destination's user (system, or userbase unless `system`). */
  private identity(action: Action, name: string, system: boolean): UserInfo | Outcome {
    let r: ReturnType<UserBase['lookup']>;
    if (action.user !== undefined) r = this.users.lookup(action.user);
    else if (action.userbase !== undefined && !system) r = this.userbase(action.userbase).lookup(name);
    else r = this.users.lookup(name);
    const who = action.user ?? name;
    if (r === undefined) return permfail('5.1.1', `${who}: no such user`);
    if ('error' in r) return tempfail('4.3.0', `${who}: user lookup failed: ${r.error}`);
    return r;
  }

  private userbase(table: string): TableUserBase {
    let u = this.userbases.get(table);
    if (!u) this.userbases.set(table, (u = new TableUserBase(this.tables, table)));
    return u;
  }

  private async prepare(task: OneDelivery, rcpt: EnvelopeRecipient, facts: HeaderFacts): Promise<Prepared> {
    const action = task.action;
    const dest = destinationOf(rcpt);
    if (dest.kind === 'remote') return { outcome: tempfail('4.3.5', 'not a local destination') };
    if (dest.kind === 'user') {
      const why = unsafeName(dest.user);
      if (why !== undefined) return { outcome: permfail('5.1.3', `${rcpt.address}: unsafe local user "${dest.user}": ${why}`) };
    }
    // Files and commands of an alias with no local user behind it run as NOBODY, the system's user (expand.ts), even with a userbase.
    const system = dest.kind !== 'user' && dest.user === NOBODY;
    const id = this.identity(action, dest.user, system);
    if ('status' in id) return { outcome: id };
    const address = rcpt.address;
    if (facts.deliveredTo.includes(address.toLowerCase())) return { outcome: permfail('5.4.6', `${address}: mail forwarding loop (Delivered-To: ${address})`) };

    const env = { sender: task.sender };
    const prefix = deliveryHeaders(env.sender, address);
    const ctx: FormatContext = { sender: env.sender, rcpt: rcpt.original ?? address, dest: address, user: { name: id.name, home: id.home } };
    const creds: Credentials = { user: id.name, uid: id.uid, gid: id.gid, home: id.home, initgroups: action.user !== undefined || action.userbase === undefined || system, mode: 'user' };

    if (dest.kind === 'file') {
      if (!isAbsolute(dest.path)) return { outcome: tempfail('4.3.5', `alias file destination "${dest.path}" is not an absolute path`) };
      const job: Job = { kind: 'mbox', path: dest.path, fromLine: fromLine(env.sender, new Date()), prefix, lock: 'optional', ...(this.lockTimeoutMs !== undefined ? { lockTimeoutMs: this.lockTimeoutMs } : {}) };
      return { job, creds, timeoutMs: FILE_JOB_TIMEOUT_MS };
    }
    if (dest.kind === 'command') return this.mdaJob(action, dest.command, 'command', rcpt, id, ctx, prefix, creds);

    switch (action.kind) {
      case 'mbox':
        return this.mboxJob(id, env.sender, prefix, creds);
      case 'maildir': {
        const p = expandPath(action.maildirPath ?? '~/Maildir', ctx);
        if (!p.ok) return { outcome: p.unsafe ? permfail('5.1.3', `${address}: ${p.error}`) : tempfail('4.3.5', `action ${action.name}: ${p.error}`) };
        const ext = splitAddress(address).extension;
        let folder: string | undefined;
        if (ext !== undefined) {
          const f = extensionFolder(ext);
          if (!f.ok) return { outcome: permfail('5.1.3', `${address}: ${f.error}`) };
          folder = f.folder;
        }
        const job: Job = { kind: 'maildir', dir: p.path, junk: action.junk, spam: facts.spam, prefix, ...(folder !== undefined ? { folder } : {}) };
        return { job, creds, timeoutMs: FILE_JOB_TIMEOUT_MS };
      }
      case 'mda':
        if (action.command === undefined) return { outcome: tempfail('4.3.5', `action ${action.name}: no mda command`) };
        return this.mdaJob(action, action.command, 'mda', rcpt, id, ctx, prefix, creds);
      default:
        return { outcome: tempfail('4.3.5', `action ${action.name} (${action.kind}) does not deliver locally`) };
    }
  }

  private mdaJob(action: Action, command: string, label: string, rcpt: EnvelopeRecipient, id: UserInfo, ctx: FormatContext, prefix: string, creds: Credentials): Prepared {
    if (action.wrapper !== undefined) return { outcome: tempfail('4.3.5', `action ${action.name}: mda wrapper "${action.wrapper}" is not supported`) };
    const cmd = shellCommand(command, ctx);
    if (!cmd.ok) return { outcome: tempfail('4.3.5', `action ${action.name}: ${cmd.error}`) };
    const p = splitAddress(rcpt.address);
    const env: Record<string, string> = {
      PATH: SAFE_PATH,
      SHELL: '/bin/sh',
      HOME: id.home,
      USER: id.name,
      LOGNAME: id.name,
      SENDER: ctx.sender,
      RECIPIENT: rcpt.address,
      ORIGINAL_RECIPIENT: rcpt.original ?? rcpt.address,
      DOMAIN: p.domain,
      LOCAL: p.local,
      ...(p.extension !== undefined ? { EXTENSION: p.extension } : {}),
      ...cmd.env,
    };
    if (Object.values(env).some((v) => v.includes('\0'))) return { outcome: permfail('5.1.3', `${rcpt.address}: NUL in an envelope value`) };
    const job: Job = { kind: 'mda', label, command: cmd.command, env, cwd: id.home, timeoutMs: this.mdaTimeoutMs, prefix };
    return { job, creds, timeoutMs: this.mdaTimeoutMs };
  }

  /** `<mbox dir>/<user>`, and how the helper gets at it (see Credentials in job.ts). */
  private async mboxJob(id: UserInfo, sender: string, prefix: string, creds: Credentials): Promise<Prepared> {
    const why = unsafeName(id.name);
    if (why !== undefined) return { outcome: permfail('5.1.3', `unsafe mailbox name "${id.name}": ${why}`) };
    const dir = resolve(this.config.paths.mboxDir);
    const path = join(dir, id.name);
    const job = { kind: 'mbox' as const, path, fromLine: fromLine(sender, new Date()), prefix, lock: 'required' as const, ...(this.lockTimeoutMs !== undefined ? { lockTimeoutMs: this.lockTimeoutMs } : {}) };
    if (!this.privsep) {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      return { job, creds, timeoutMs: FILE_JOB_TIMEOUT_MS };
    }
    let st = await stat(dir).catch(() => undefined);
    if (!st) {
      // A mail spool of our own making: world-writable and sticky, as /var/mail on systems without a mail group.
      await mkdir(dir, { recursive: true, mode: 0o755 });
      await chmod(dir, 0o1777);
      st = await stat(dir);
    }
    if (!st.isDirectory()) return { outcome: tempfail('4.3.5', `mbox path ${dir} is not a directory`) };
    const owned = { ...job, ownerUid: id.uid };
    if (st.mode & 0o002) return { job: owned, creds, timeoutMs: FILE_JOB_TIMEOUT_MS };
    if (st.mode & 0o020) return { job: owned, creds: { ...creds, mode: 'user+group', spoolGid: st.gid }, timeoutMs: FILE_JOB_TIMEOUT_MS };
    return { job: { ...owned, chownNew: { uid: id.uid, gid: id.gid } }, creds: { ...creds, mode: 'root-open' }, timeoutMs: FILE_JOB_TIMEOUT_MS };
  }

  private async deliverLmtp(task: DeliveryTask, rcpts: readonly EnvelopeRecipient[]): Promise<Outcome[]> {
    const action = task.action;
    if (action.lmtpDestination === undefined) return rcpts.map(() => tempfail('4.3.5', `action ${action.name}: no lmtp destination`));
    const env = task.envelope;
    return deliverLmtp({
      destination: action.lmtpDestination,
      lhlo: this.config.hostname,
      sender: env.sender,
      recipients: rcpts.map((r) => ({ evpid: r.evpid, rcptTo: action.lmtpRcptTo === 'rcpt-to' ? r.address : userOf(r) })),
      body: () => task.openBody(),
      eightBit: env.body !== '7BIT',
      smtputf8: env.smtputf8,
      signal: task.signal,
    }, this.lmtpSessions);
  }
}
