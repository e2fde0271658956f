/*
 * daemon/dry-run.ts — `smtpd -b '[ADDRESS]'`: one SMTP session on standard
 * input and output, as if the client connected from ADDRESS, against the
 * whole policy — and nothing queued or delivered anywhere.
 *
 * ZMailer's `smtpserver -i -T '[1.2.3.4]'` and Exim's `-bh` are the idea.
 * The session is the real one (smtp/session.ts behind smtp/connection.ts),
 * so every reply is what a client at ADDRESS would get; after each reply
 * come comment lines ("# …") saying which phase and which rule decided it,
 * and why (the Obtuse rule's FILE:LINE and text via explain(), the HELO
 * pattern, the smtpd.conf rule's FILE:LINE, the content filter's answer).
 *
 * Differences from a real session, all announced in the comments:
 *  - messages go to a temporary spool that is removed at the end; the
 *    scheduler seam drops them (nothing is queued, nothing delivered);
 *  - waits (noto_delay, deny_delay, tarpit, error slow-down) are noted, not
 *    waited;
 *  - connection limits are shown, not counted (there is one session);
 *  - the listener is the configuration's first, without TLS;
 *  - input lines may end in LF alone (a terminal): each LF becomes CRLF.
 */
import type { Socket } from 'node:net';
import { loadavg } from 'node:os';
import ipaddr from 'ipaddr.js';
import type { Config, Listener } from '../config/model.js';
import type { MailLog } from '../log/maillog.js';
import { SystemUsers } from '../users/system-users.js';
import { Stats } from '../stats.js';
import { buildPolicy, type BuiltPolicy } from '../policy/build.js';
import type { LoadedConfig } from '../config/policy-files.js';
import type { PolicyNote } from '../policy/policy.js';
import type { StyleOption } from '../config/zmailer/helo-patterns.js';
import { Session } from '../smtp/session.js';
import { Connection, type ReplyInfo } from '../smtp/connection.js';
import { reply, type Reply } from '../mail/reply.js';
import type { SchedulerSeam } from '../queue/seam.js';
import { StdioSocket } from './stdio-session.js';
import { scratchConnectionOptions, scratchSessionEnv, withScratch } from './scratch.js';

/**
 * "[192.0.2.1]", "[IPv6:2001:db8::1]", ZMailer's "[ipv6.2001:db8::1]", or a
 * bare address: the canonical address, or an error message.
 */
export function parseTestAddress(s: string): { address: string } | { error: string } {
  const t = s.trim();
  const inner = t.startsWith('[') && t.endsWith(']') ? t.slice(1, -1) : t;
  const v6 = /^ipv6[.:](.+)$/i.exec(inner);
  const text = v6 ? (v6[1] as string) : inner;
  const v4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(text);
  if (!ipaddr.isValid(text) || (!v4 && !text.includes(':'))) {
    return { error: `"${s}" is not an address literal (expected [192.0.2.1] or [IPv6:2001:db8::1])` };
  }
  const a = ipaddr.parse(text);
  const n = a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() ? (a as ipaddr.IPv6).toIPv4Address() : a;
  return { address: n.toString() };
}

export interface DryRunOptions {
  readonly address: string;
  readonly log: MailLog;
  readonly input: NodeJS.ReadableStream;
  readonly output: NodeJS.WritableStream;
  readonly style?: StyleOption;
  readonly maxLoadAverage?: number;
}

/** Turn every LF not preceded by CR into CRLF (across chunk boundaries). */
export function crlf(): (chunk: Buffer) => Buffer {
  let lastCr = false;
  return (chunk) => {
    const out: number[] = [];
    for (const b of chunk) {
      if (b === 0x0a && !lastCr) out.push(0x0d);
      out.push(b);
      lastCr = b === 0x0d;
    }
    return Buffer.from(out);
  };
}

/** Run the session on the loaded configuration (config/policy-files.ts); resolves when it ends. */
export async function dryRun(loaded: LoadedConfig, opts: DryRunOptions): Promise<void> {
  const { config, files } = loaded;
  await withScratch(config, 'postern-dryrun-', async (scratch) => {
    const { config: dryConfig, tables, local, resolver } = scratch;
    const users = new SystemUsers();
    const notes: PolicyNote[] = [];
    const built = buildPolicy({ config: dryConfig, files }, {
      tables,
      users,
      local,
      dns: resolver.raw,
      loadAverage: () => loadavg()[0] ?? 0,
      ...(opts.maxLoadAverage !== undefined ? { maxLoadAverage: opts.maxLoadAverage } : {}),
      ...(opts.style ? { style: opts.style } : {}),
      observer: (n) => notes.push(n),
    });
    const committed: string[] = [];
    const scheduler: SchedulerSeam = {
      etrn: (domain) => reply(250, '2.0.0', `Queuing for node ${domain} started`),
      enqueued: (env, o) => void committed.push(`${env.msgid}${o?.held ? ' (would be held)' : ''}`),
    };
    const listener: Listener = { ...(config.listeners.find((l) => l.on !== 'socket') ?? fallbackListener(config)), tls: 'none' };
    const stats = new Stats();
    const session = new Session(
      'dry-run',
      scratchSessionEnv(scratch, built, opts.log, scheduler, stats),
      {
        address: opts.address,
        port: 0,
        fromSocket: false,
        listener: 'dry-run',
        localPort: listener.port,
        hostname: listener.hostname ?? config.hostname,
        tag: listener.tag,
        noDsn: listener.noDsn,
        config: listener,
      },
    );
    const rdns = resolver.reverseConfirmed(opts.address);
    const host = await rdns;
    opts.output.write(intro(opts.address, host, config, built));

    const socket = new StdioSocket(opts.output);
    const conn = new Connection(
      socket as unknown as Socket,
      session,
      {
        ...scratchConnectionOptions(scratch, built),
        earlyTalker: 'allow',
        sleep: async () => undefined,
        explain: (r, info) => explain(r, info, notes.splice(0), committed.splice(0), built),
      },
      opts.log,
      stats,
    );
    const done = new Promise<void>((resolve) => {
      conn.onClose = () => resolve();
    });
    const fix = crlf();
    const onData = (d: Buffer | string): void => void socket.push(fix(Buffer.isBuffer(d) ? d : Buffer.from(d, 'utf8')));
    const onEnd = (): void => void socket.push(null);
    opts.input.on('data', onData);
    opts.input.on('end', onEnd);
    void conn.start(Promise.resolve(host));
    await done;
    opts.input.off('data', onData);
    opts.input.off('end', onEnd);
    opts.input.pause();
    await new Promise<void>((r) => opts.output.write('', () => r()));
  });
}

function fallbackListener(config: Config): Listener {
  return { pos: { file: config.file, line: 0, col: 0 }, on: 'localhost', port: 25, tls: 'none', auth: 'none', maskSrc: false, noDsn: false, smtputf8: true, proxyV2: false };
}

/** The comment block before the greeting: who we pretend to be, and what decides. */
function intro(address: string, host: string | undefined, config: Config, built: BuiltPolicy): string {
  const lines = [
    `dry run: a session from [${address}]; nothing is queued or delivered`,
    `client host name: ${host ?? 'none (no forward-confirmed reverse DNS: UNKNOWN)'}`,
    `policy: ${[
      config.smtpserverConf ? `smtpserver.conf ${config.smtpserverConf.path}` : undefined,
      config.rulesFile ? `rules file ${config.rulesFile.path}` : undefined,
      `smtpd.conf ${config.file} (${config.rules.length} rule${config.rules.length === 1 ? '' : 's'})`,
    ]
      .filter((x) => x !== undefined)
      .join(', ')}`,
    `phases: connection limits, ${[...built.policy.phaseNames, 'smtpd.conf rules'].join(', ')}`,
  ];
  return lines.map((l) => `# ${l}\r\n`).join('');
}

/** The comment lines after one reply. */
function explain(r: Reply, info: ReplyInfo, notes: readonly PolicyNote[], committed: readonly string[], built: BuiltPolicy): string[] {
  const out = notes.map((n) => `${n.phase}: ${n.source}: ${n.why}`);
  if (info.command === '(connect)') {
    const l = built.connection.limits;
    const lim = (n: number): string => (n > 0 ? String(n) : 'no limit');
    out.unshift(`connect: connection limits ${lim(l.maxPerClient)} per address, ${lim(l.maxTotal)} in total (not counted in a dry run)`);
    if (r.code < 400) out.push(built.session.greeting ? 'connect: greeting from smtpserver.conf hdr220' : 'connect: no policy objection');
  } else if (out.length === 0) {
    out.push(r.code >= 400 ? `${info.command}: refused by the session itself (syntax, sequence or a limit), no policy rule involved` : `${info.command}: no policy phase objects`);
  }
  for (const m of committed) out.push(`dry run: message ${m} thrown away, not queued`);
  if (info.verdictDelayMs > 0) out.push(`delay: the rule makes this reply wait ${info.verdictDelayMs / 1000} s (not waited in a dry run)`);
  if (info.pacingDelayMs > 0) out.push(`tarpit/error limit: this reply would wait ${info.pacingDelayMs / 1000} s after ${info.errors} error(s) (not waited in a dry run)`);
  if (r.close) out.push('the session ends here');
  return out;
}
