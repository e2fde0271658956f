/*
 * daemon/stdio-session.ts — one real SMTP session on a stream that is not
 * one of the daemon's listeners: ZMailer's `smtpserver -n` (run by inetd,
 * the connection is standard input and output) and `smtpserver -i` (a BSMTP
 * batch on standard input, daemon/bsmtp.ts feeds it).
 *
 * The session is the daemon's own (smtp/session.ts behind
 * smtp/connection.ts, the whole policy of the configuration), but it runs
 * in this short-lived process, which does not own the spool: the daemon
 * does. So the session's front door commits into a private temporary spool,
 * and each message it accepts is handed on — before the client hears 250 —
 * to the daemon's queue the way `sendmail` hands mail on
 * (submit/enqueue-client.ts: offline/ file, fsynced, then the enqueue
 * socket). When the daemon is not running the file waits in offline/ and
 * is queued at its next start, as ZMailer's smtpserver leaves files in the
 * postoffice for its router. The daemon checks it again as local
 * submission (`from local`); its Received: line says so.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Config, Listener } from '../config/model.js';
import type { LoadedConfig } from '../config/policy-files.js';
import type { MailLog } from '../log/maillog.js';
import type { Envelope } from '../mail/envelope.js';
import { FsSpool } from '../spool/fs/fs-spool.js';
import { SystemUsers } from '../users/system-users.js';
import { Stats } from '../stats.js';
import { buildPolicy, type PolicyDeps } from '../policy/build.js';
import { Session } from '../smtp/session.js';
import { Connection } from '../smtp/connection.js';
import { reply } from '../mail/reply.js';
import type { SchedulerSeam } from '../queue/seam.js';
import { TlsContexts } from '../tls/contexts.js';
import { writeOfflineFile, askDaemon } from '../submit/enqueue-client.js';
import { startPeerLookups, type PeerLookupOptions } from '../smtp/peer-lookups.js';
import { scratchConnectionOptions, scratchSessionEnv, withScratch } from './scratch.js';

/** Standard input and output (or any pair of streams) as a connection's socket. */
export class StdioSocket extends Duplex {
  constructor(private readonly out: NodeJS.WritableStream) {
    super({ allowHalfOpen: true });
  }

  override _read(): void {
    /* data is pushed by the owner */
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.out.write(chunk, (e) => cb(e ?? null));
  }

  setNoDelay(): this {
    return this;
  }
}

export interface StdioSessionOptions {
  /** The client: the inetd socket's peer, ZMailer's -T address, or this machine. */
  readonly client: { readonly address: string; readonly port: number };
  /** The connection: a real socket (inetd) or a StdioSocket. */
  readonly socket: Duplex;
  readonly log: MailLog;
  /** -s, -L: what the command line adds to the policy. */
  readonly policy?: Pick<PolicyDeps, 'style' | 'maxLoadAverage' | 'extraPhases' | 'frontEnd'>;
  /** Waits of the tarpit and the error limits: real by default; a batch does not wait. */
  readonly noWaits?: boolean;
  /** Marks messages in the mail log (`-B`: they came by BSMTP). */
  readonly protocolNote?: string;
  /** `-a` under inetd: ask the client's identd (the socket must be a TCP socket); `-w`: the whoson server. */
  readonly ident?: PeerLookupOptions['ident'];
  readonly whoson?: PeerLookupOptions['whoson'];
  /** `-g`: the client's name from its PTR record, unchecked. */
  readonly gullible?: boolean;
}

/** What the daemon is told about a message the session accepted: the envelope as the client gave it. */
export function offlineHeaderFor(env: Envelope): { sender: string; recipients: string[]; ret?: 'FULL' | 'HDRS'; envid?: string } {
  const recipients = [...new Set(env.recipients.map((r) => r.original ?? r.address))];
  return { sender: env.sender, recipients, ...(env.ret ? { ret: env.ret } : {}), ...(env.envid ? { envid: env.envid } : {}) };
}

/** Run one session; resolves when it ends. */
export async function stdioSession(loaded: LoadedConfig, opts: StdioSessionOptions): Promise<void> {
  const { config, files } = loaded;
  await withScratch(config, 'postern-smtpserver-', async (scratch) => {
    const { config: privateConfig, spool, tables, local, resolver } = scratch;
    const built = buildPolicy(
      { config: privateConfig, files },
      { tables, users: new SystemUsers(), local, dns: resolver.raw, loadAverage: () => loadavg()[0] ?? 0, log: opts.log, ...opts.policy },
    );
    const scheduler: SchedulerSeam = {
      etrn: () => reply(458, '4.3.0', 'Unable to queue messages for node: run ETRN against the daemon'),
      enqueued: async (env, o) => {
        const body = await readAll(spool.openBody(env.msgid));
        await ensureSpool(config.queue.path);
        const name = await writeOfflineFile(config.queue.path, { ...offlineHeaderFor(env), ...(o?.held ? { held: 'frozen by policy' } : {}) }, body);
        await spool.remove(env.msgid).catch(() => undefined);
        const answer = await askDaemon(config.queue.path, `ENQUEUE ${name}\n`);
        opts.log.event('smtp', 'handed-on', { msgid: env.msgid, file: `offline/${name}`, daemon: answer ?? 'not running: queued at its next start', ...(opts.protocolNote ? { via: opts.protocolNote } : {}) });
        if (answer !== undefined && !answer.startsWith('OK ')) throw new Error(`the daemon did not take offline/${name}: ${answer}`);
      },
    };
    const listener: Listener = config.listeners.find((l) => l.on !== 'socket') ?? fallbackListener(config);
    const sock = opts.socket as Partial<Socket>;
    const lookups = startPeerLookups(opts, { session: `stdio-${process.pid}`, client: opts.client, ...(sock.localAddress ? { localAddress: sock.localAddress } : {}), ...(sock.localPort !== undefined ? { localPort: sock.localPort } : {}) }, opts.log);
    const stats = new Stats();
    const tls = config.pki.size > 0 ? new TlsContexts(config) : undefined;
    const session = new Session(
      `stdio-${process.pid}`,
      scratchSessionEnv(scratch, built, opts.log, scheduler, stats),
      {
        address: opts.client.address,
        port: opts.client.port,
        fromSocket: false,
        listener: 'stdio',
        localPort: listener.port,
        hostname: listener.hostname ?? config.hostname,
        tag: listener.tag,
        noDsn: listener.noDsn,
        config: listener,
        ...lookups,
      },
    );
    const conn = new Connection(
      opts.socket as unknown as Socket,
      session,
      { ...scratchConnectionOptions(scratch, built), ...(opts.noWaits ? { earlyTalker: 'allow' as const, sleep: async () => undefined } : {}) },
      opts.log,
      stats,
      tls,
    );
    const done = new Promise<void>((resolve) => {
      conn.onClose = () => resolve();
    });
    void conn.start(opts.gullible === true ? resolver.reverseName(opts.client.address) : resolver.reverseConfirmed(opts.client.address));
    await done;
  });
}

/** A spool no daemon ever opened is laid out first (as the daemon would), so that offline/ exists. */
export async function ensureSpool(path: string): Promise<void> {
  if (existsSync(join(path, 'VERSION'))) return;
  const s = new FsSpool({ root: path });
  await s.open();
  await s.close();
}

async function readAll(r: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(parts);
}

function fallbackListener(config: Config): Listener {
  return { pos: { file: config.file, line: 0, col: 0 }, on: 'localhost', port: 25, tls: 'none', auth: 'none', maskSrc: false, noDsn: false, smtputf8: true, proxyV2: false };
}
