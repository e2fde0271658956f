/*
 * test/unit/control-helpers.ts — an in-process control server on a fake
 * ControlTarget backed by a real QueueRunner and FsSpool in a temporary
 * folder, and smtpctl run in-process against it.
 *
 * The delivery agents are scripted fakes (not Postern's agents): relayed
 * recipients always fail temporarily (a "deferring destination"), local
 * ones are delivered, and local user "hang" never returns until aborted,
 * to see an envelope in flight.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/load.js';
import type { Action, Config } from '../../src/config/model.js';
import type { DeliveryAgent, DeliveryTask, RecipientResult } from '../../src/delivery/agent.js';
import { MailLog } from '../../src/log/maillog.js';
import { QueueRunner } from '../../src/scheduler/runner.js';
import type { Envelope, EnvelopeRecipient } from '../../src/mail/envelope.js';
import { FsSpool, newEvpid } from '../../src/spool/fs/fs-spool.js';
import { Stats } from '../../src/stats.js';
import { ControlServer, type ControlServerOptions } from '../../src/control/server.js';
import type { ControlTarget, Service } from '../../src/control/target.js';
import { smtpctl, type Io } from '../../src/cli/smtpctl.js';

/** Scripted agent; not a real delivery agent. */
class ScriptedAgent implements DeliveryAgent {
  constructor(readonly kind: 'mda' | 'mta') {}

  key(_a: Action, r: EnvelopeRecipient): string {
    const [user, domain] = r.address.split('@') as [string, string];
    return this.kind === 'mta' ? domain : user;
  }

  async deliver(task: DeliveryTask): Promise<RecipientResult[]> {
    if (task.recipients.some((r) => r.address.startsWith('hang@'))) {
      await new Promise<void>((resolve) => (task.signal.aborted ? resolve() : task.signal.addEventListener('abort', () => resolve(), { once: true })));
    }
    return task.recipients.map((r) =>
      this.kind === 'mta'
        ? { evpid: r.evpid, status: 'tempfail', enhanced: '4.4.1', detail: 'connect to mx.example.net[192.0.2.1]: Connection refused|again' }
        : r.address.startsWith('hang@')
          ? { evpid: r.evpid, status: 'tempfail', enhanced: '4.3.0', detail: 'aborted' }
          : { evpid: r.evpid, status: 'ok', enhanced: '2.0.0', detail: 'delivered' },
    );
  }
}

export interface Bench {
  readonly dir: string;
  readonly confPath: string;
  readonly socket: string;
  readonly config: Config;
  readonly spool: FsSpool;
  readonly runner: QueueRunner;
  readonly stats: Stats;
  readonly logs: string[];
  readonly target: ControlTarget & { stopped: number; verbose: boolean; reloadError?: string; pausedState: Record<Service, boolean>; sessionCount: number };
  server: ControlServer;
  /** Queue a message from `sender` to `rcpts`; returns its envelope. */
  queue(sender: string, rcpts: readonly (string | Partial<EnvelopeRecipient> & { address: string })[], body?: string, extra?: Partial<Envelope>): Promise<Envelope>;
  /** smtpctl in-process with -f; captures its output. */
  ctl(args: readonly string[], opts?: { stdin?: readonly string[]; signal?: AbortSignal; onOut?: (s: string) => void }): Promise<{ status: number; out: string; err: string; raw: Buffer }>;
  close(): Promise<void>;
}

export async function bench(opts: ControlServerOptions = {}): Promise<Bench> {
  const dir = mkdtempSync(join(tmpdir(), 'pctl-'));
  const socket = join(dir, 'smtpd.sock');
  const text = [
    'hostname "mail.example.org"',
    `queue path "${dir}/spool"`,
    `control socket "${socket}"`,
    'action "local" mbox',
    'action "relay" relay',
    'match from any for domain "example.org" action "local"',
    'match from local for any action "relay"',
    '',
  ].join('\n');
  const confPath = join(dir, 'smtpd.conf');
  writeFileSync(confPath, text);
  const res = loadConfigText(text, confPath);
  if (!res.config) throw new Error(`test config: ${JSON.stringify(res.diagnostics)}`);
  const config = res.config;
  const spool = new FsSpool({ root: config.queue.path });
  await spool.open();
  const logs: string[] = [];
  const log = new MailLog({ sink: (l) => logs.push(l) });
  const stats = new Stats();
  const runner = new QueueRunner({ spool, config, log, stats, agents: { mda: new ScriptedAgent('mda'), mta: new ScriptedAgent('mta') }, random: () => 0.5, stopGraceMs: 200 });
  await runner.start();
  const pausedState: Record<Service, boolean> = { smtp: false, mta: false, mda: false };
  const target: Bench['target'] = {
    config,
    stats,
    runner,
    spool,
    log,
    stopped: 0,
    verbose: false,
    pausedState,
    sessionCount: 0,
    pause(what) {
      pausedState[what] = true;
      if (what !== 'smtp') runner.pause(what);
    },
    resume(what) {
      pausedState[what] = false;
      if (what !== 'smtp') runner.resume(what);
    },
    paused: () => ({ ...pausedState }),
    async reload() {
      return this.reloadError === undefined ? { ok: true } : { ok: false, error: this.reloadError };
    },
    updateTable: (name) => (name === 'aliases' ? { ok: true } : { ok: false, error: `no table "${name}"` }),
    stop() {
      this.stopped++;
    },
    sessions() {
      return this.sessionCount;
    },
    hosts: () => [{ host: 'mx.example.net', address: '192.0.2.1', state: 'down', errors: 3 }],
  };
  const origSetVerbose = log.setVerbose.bind(log);
  log.setVerbose = (on: boolean) => {
    target.verbose = on;
    origSetVerbose(on);
  };
  const server = new ControlServer(socket, target, opts);
  await server.listen();

  const b: Bench = {
    dir,
    confPath,
    socket,
    config,
    spool,
    runner,
    stats,
    logs,
    target,
    server,
    async queue(sender, rcpts, body = 'Subject: test\r\n\r\nhello\r\n', extra = {}) {
      const w = await spool.createMessage();
      w.write(Buffer.from(body));
      const taken = new Set<string>();
      const recipients = rcpts.map((r) => {
        const evpid = newEvpid(w.msgid, taken);
        taken.add(evpid);
        const o = typeof r === 'string' ? { address: r } : r;
        const local = o.address.endsWith('@example.org');
        return { evpid, action: local ? 'local' : 'relay', ...(local ? { dest: { kind: 'user' as const, user: o.address.split('@')[0] as string } } : { dest: { kind: 'remote' as const } }), ...o };
      });
      const env = await w.commit({
        sender,
        recipients,
        body: '8BITMIME',
        smtputf8: false,
        arrival: Date.now(),
        client: { address: '192.0.2.7', port: 40123, helo: 'client.example.net', proto: 'ESMTP', listener: '127.0.0.1:25' },
        ...extra,
      });
      runner.enqueued(env);
      if (!recipients.some((r) => r.address.startsWith('hang@'))) await runner.idle();
      return env;
    },
    async ctl(args, o = {}) {
      let out = '';
      let err = '';
      const raw: Buffer[] = [];
      const io: Io = {
        out: (s) => {
          raw.push(Buffer.isBuffer(s) ? s : Buffer.from(s));
          out += s.toString();
          o.onOut?.(s.toString());
        },
        err: (s) => (err += s),
        lines: async function* () {
          for (const l of o.stdin ?? []) yield l;
        },
        ...(o.signal ? { signal: o.signal } : {}),
      };
      const status = await smtpctl(['-f', confPath, ...args], io);
      return { status, out, err, raw: Buffer.concat(raw) };
    },
    async close() {
      await b.server.close();
      await runner.stop();
      await spool.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return b;
}
