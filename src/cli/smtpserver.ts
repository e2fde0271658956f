/*
 * cli/smtpserver.ts — ZMailer's `smtpserver` (seed 000) on Postern:
 * the same options with the same meaning (cli/smtpserver-options.ts), the
 * same smtpserver.conf, and Postern's spool and scheduler behind them.
 *
 *   smtpserver [options]          kill the previous smtpserver (its pid file),
 *                                 detach, listen, queue and deliver: the
 *                                 Postern daemon, configured by the options
 *   smtpserver -n [options]       run by inetd: the connection is stdin/stdout
 *   smtpserver -i [-v] [-T '[a]'] a BSMTP batch on stdin, replies on stdout
 *   smtpserver -c [options]       check; print every start-up warning; exit
 *   smtpserver -V                 the version
 *
 * Postern's own configuration (rules, actions, tables) comes from
 * $POSTERN_CONFIG, else /etc/mail/smtpd.conf, else the built-in one; the
 * command line and smtpserver.conf (-C, else smtpd.conf's smtpserver-conf,
 * else $MAILSHARE/smtpserver.conf) set the rest. ZENV variables for
 * $NAME in smtpserver.conf come from /etc/zmailer.conf ($ZCONFIG) and the
 * environment. An unknown option or a bad value: one line, exit status 1.
 *
 * Started as root, the daemon is smtpd's two processes (daemon/privsep/):
 * the detached process stays root as the privileged parent (binds, local
 * deliveries, the log, the pid file) and starts the SMTP side, this same
 * command again with an IPC channel, which gives up root for _postern.
 */
import { existsSync, fstatSync, readFileSync, statSync } from 'node:fs';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, loadConfigText, formatDiagnostic } from '../config/load.js';
import { DEFAULT_CONFIG_TEXT } from '../config/defaults.js';
import type { Config } from '../config/model.js';
import type { LoadedConfig } from '../config/policy-files.js';
import { Daemon, type DaemonPolicyExtras } from '../daemon/daemon.js';
import { parseTestAddress } from '../daemon/dry-run.js';
import { startupWarnings } from '../daemon/startup-warnings.js';
import { ensureSpool, stdioSession, StdioSocket } from '../daemon/stdio-session.js';
import { feedBatch, lines, ReplyReader } from '../daemon/bsmtp.js';
import { routerPhase } from '../policy/zmailer/router.js';
import { POSTERN_VERSION } from '../policy/build.js';
import { whosonServerFromEnv } from '../net/whoson.js';
import { parseSmtpserverArgs, smtpserverListeners, withCommandLine, SMTPSERVER_USAGE, type SmtpserverOptions } from './smtpserver-options.js';
import { sessionLog, sessionTrace } from './smtpserver-log.js';
import { stopPrevious } from './smtpserver-pid.js';
import { detachUntilReady } from './detach.js';
import { withPolicyFilesOrExit } from './config-for-tools.js';
import { childLink, giveUpRoot } from '../daemon/privsep/child.js';
import { prepareSpool } from '../daemon/privsep/spool-owner.js';
import { preloadSecrets, secretPaths, setSecrets } from '../privsep/secrets.js';
import { DEFAULT_PRIVSEP_USER, privsepUser, runParent } from '../daemon/privsep/parent.js';
import { MailLog } from '../log/maillog.js';

function fail(msg: string): never {
  process.stderr.write(`smtpserver: ${msg}\n`);
  process.exit(1);
}

/** /etc/zmailer.conf's NAME=value lines into the environment (the environment wins). */
function loadZenv(): void {
  const file = process.env['ZCONFIG'] ?? '/etc/zmailer.conf';
  if (!existsSync(file)) return;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) process.env[m[1] as string] ??= (m[2] as string).replace(/^"(.*)"$/, '$1');
  }
}

function baseConfig(): Config {
  const file = process.env['POSTERN_CONFIG'] ?? (existsSync('/etc/mail/smtpd.conf') ? '/etc/mail/smtpd.conf' : undefined);
  if (file !== undefined && !existsSync(file)) fail(`${file}: no such file`);
  const r = file !== undefined ? loadConfigFile(file) : loadConfigText(DEFAULT_CONFIG_TEXT, '<built-in>');
  if (!r.config) fail(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic).join('\n'));
  return r.config;
}

/** What the options do differently from ZMailer, said once at start (and by -c). */
function optionNotes(o: SmtpserverOptions, loaded: LoadedConfig): string[] {
  const z = loaded.files.zmailer;
  const notes: string[] = [];
  if (z?.received.whoson && !o.whoson) notes.push('PARAM rcvd-whoson without -w: nobody is asked, so Received: shows no whoson user');
  if (o.whoson && z?.received.whoson !== true) notes.push('-w: whoson answers are logged and trust-whoson trusts them; add "PARAM rcvd-whoson" to show them in Received:');
  if (o.gullible) notes.push('-g: the client\'s name is what its PTR record says, not checked forward: a client that controls its reverse zone can claim any name (Received:, logs and name-based policy believe it)');
  if (o.router !== undefined && !z?.enableRouter) notes.push(`-R ${o.router}: smtpserver.conf has no "PARAM enable-router", so the router is never asked (as ZMailer)`);
  if (z?.enableRouter && o.router === undefined) notes.push('PARAM enable-router without -R: no router program to ask; addresses are checked by smtpd.conf\'s rules');
  if (o.ident && !z?.received.ident) notes.push('-a: ident answers are logged; add "PARAM rcvd-ident" to show them in Received:');
  return notes;
}

async function main(argv: string[]): Promise<void> {
  const o = parseSmtpserverArgs(argv);
  if ('error' in o) fail(`${o.error} (${SMTPSERVER_USAGE})`);
  if (o.version) {
    process.stdout.write(`smtpserver (Postern ${POSTERN_VERSION}), ZMailer-compatible SMTP server\n`);
    return;
  }
  loadZenv();
  let config = withCommandLine(baseConfig(), o);
  if (o.cfgFile === undefined && config.smtpserverConf === undefined && process.env['MAILSHARE'] && existsSync(`${process.env['MAILSHARE']}/smtpserver.conf`)) {
    config = { ...config, smtpserverConf: { path: `${process.env['MAILSHARE']}/smtpserver.conf`, pos: { file: '$MAILSHARE', line: 0, col: 0 } } };
  }
  if (config.smtpserverConf && !existsSync(config.smtpserverConf.path)) fail(`-C ${config.smtpserverConf.path}: no such file`);
  let loaded: LoadedConfig = withPolicyFilesOrExit(config);
  config = smtpserverListeners(config, o, loaded.files.zmailer);
  loaded = { ...loaded, config: smtpserverListeners(loaded.config, o, loaded.files.zmailer) };

  const z = loaded.files.zmailer;
  const extras: DaemonPolicyExtras = {
    frontEnd: 'smtpserver',
    ...(o.style ? { style: o.style } : {}),
    ...(o.router !== undefined && z?.enableRouter ? { extraPhases: [routerPhase({ program: o.router, checkSender: o.style?.kind === 'flags' && o.style.flags.has('f') })] } : {}),
    ...(o.ident ? { ident: { timeoutMs: 5_000, ...(process.env['POSTERN_IDENT_PORT'] ? { port: Number(process.env['POSTERN_IDENT_PORT']) } : {}) } } : {}),
    ...(o.whoson ? { whoson: { server: whosonServerFromEnv(), timeoutMs: 2_000 } } : {}),
    ...(o.gullible ? { gullible: true } : {}),
  };
  const warnings = [...startupWarnings(loaded, extras), ...optionNotes(o, loaded)];

  if (o.check) {
    for (const w of warnings) process.stderr.write(`${w}\n`);
    process.stdout.write('configuration OK\n');
    return;
  }
  const verbose = o.verbose || o.debug > 0;
  if (o.interactive || o.inetd) {
    const log = sessionLog({ targets: o.logs, verbose, fallback: o.interactive && o.debug > 0 ? { kind: 'stderr' } : { kind: 'none' } });
    // Run by inetd as root: the session (network input) runs as the spool's owner, never root (the log is open already).
    if (process.getuid?.() === 0) await sessionUser(loaded.config);
    for (const w of warnings) log.warn(w);
    if (o.interactive) await batch(loaded, o, log, extras);
    else await inetd(loaded, o, log, extras);
    log.close();
    process.exit(0);
  }

  // The daemon: the previous one goes, then we detach and listen.
  if (process.env['POSTERN_SMTPSERVER_CHILD'] !== '1') {
    const stopped = await stopPrevious(config.paths.pidFile);
    if (stopped !== undefined) process.stderr.write(`smtpserver: stopped the previous smtpserver (pid ${stopped})\n`);
    return detach(argv);
  }
  const fallback = config.paths.logFile ? { kind: 'file' as const, path: config.paths.logFile } : { kind: 'stderr' as const };
  // Started as root: a privileged parent stays root, the SMTP side runs as _postern, as smtpd's (docs/architecture.md).
  const link = childLink();
  if (!link && process.getuid?.() === 0) {
    const user = privsepUser(config.privsepUser ?? DEFAULT_PRIVSEP_USER);
    if ('error' in user) return fail(user.error);
    const plog = sessionLog({ targets: o.logs, verbose, fallback });
    try {
      await ensureSpool(config.queue.path);
      runParent({ config: loaded.config, name: 'smtpserver', log: plog, childArgs: [fileURLToPath(new URL('./main.js', import.meta.url)), 'smtpserver', ...argv], user });
    } catch (e) {
      process.send?.({ error: (e as Error).message });
      plog.flush();
      fail((e as Error).message);
    }
    return;
  }
  const log = link ? new MailLog({ relay: link, verbose, ...sessionTrace(o.logs) }) : sessionLog({ targets: o.logs, verbose, fallback });
  for (const w of optionNotes(o, loaded)) log.warn(w);
  let daemon: Daemon;
  try {
    // ZMailer keeps its pid file in the postoffice: lay a new spool out first, so the file is not a stranger in it.
    if (!link) await ensureSpool(config.queue.path);
    daemon = await Daemon.start(config, log, { policy: extras, ...(link ? { privsep: link } : {}) });
  } catch (e) {
    if (link) await link.fatal((e as Error).message);
    else process.send?.({ error: (e as Error).message });
    fail((e as Error).message);
  }
  if (link) link.ready();
  else {
    process.send?.({ ready: true });
    process.disconnect?.();
  }
  const exit = (code: number): void => void (link ? link.flush() : Promise.resolve()).finally(() => process.exit(code));
  const stop = (why: string): void => void daemon.shutdown(why).then(() => exit(0), () => exit(1));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Under privilege separation the parent passes SIGINT on (a terminal's ^C reaches both).
  process.on('SIGINT', () => (link ? undefined : stop('SIGINT')));
  process.on('SIGHUP', () => void daemon.reload());
  // SIGUSR1: the log files again by their names, after logrotate moved them (under privilege separation the parent writes the log and reopens it).
  process.on('SIGUSR1', () => log.reopen());
  link?.onParentGone(() => {
    process.stderr.write('smtpserver: the privileged parent is gone: exiting\n');
    process.exit(1);
  });
  daemon.onStopRequest = () => stop('smtpctl stop');
}

/**
 * -n/-i started as root: the spool laid out and given to the unprivileged user as the daemon
 * would (its owner already, when a daemon ran: that user), the secret files (TLS keys) read,
 * then root given up for good before a byte of the session is read.
 */
async function sessionUser(config: Config): Promise<void> {
  await ensureSpool(config.queue.path);
  let owner: { uid: number; gid: number } = statSync(config.queue.path);
  if (owner.uid === 0) {
    const user = privsepUser(config.privsepUser ?? DEFAULT_PRIVSEP_USER);
    if ('error' in user) fail(user.error);
    prepareSpool(config.queue.path, user);
    owner = user;
  }
  setSecrets(preloadSecrets(secretPaths(config)));
  giveUpRoot(owner.uid, owner.gid);
}

/** -i: the batch on standard input, replies (and with -v the batch itself) on standard output. */
async function batch(loaded: LoadedConfig, o: SmtpserverOptions, log: ReturnType<typeof sessionLog>, extras: DaemonPolicyExtras): Promise<void> {
  let address = '127.0.0.1';
  if (o.testAddress !== undefined) {
    const a = parseTestAddress(o.testAddress);
    if ('error' in a) fail(`-T ${a.error}`);
    address = a.address;
  }
  const replies = new ReplyReader();
  const out = {
    write(chunk: Buffer | string, cb?: (e?: Error | null) => void): boolean {
      replies.push(chunk);
      return process.stdout.write(chunk, cb);
    },
  } as unknown as NodeJS.WritableStream;
  const socket = new StdioSocket(out);
  socket.on('finish', () => replies.close());
  const session = stdioSession(loaded, { client: { address, port: 0 }, socket, log, policy: extras, noWaits: true, ...(o.bsmtp ? { protocolNote: 'BSMTP' } : {}) });
  void session.finally(() => replies.close());
  const summary = await feedBatch(lines(process.stdin), {
    send: (line) => socket.push(Buffer.from(`${line}\r\n`, 'utf8')),
    end: () => socket.push(null),
    replies,
    ...(o.verbose ? { echo: (line: string) => process.stdout.write(`${line}\r\n`) } : {}),
  });
  await session;
  log.info(`smtpserver -i: ${summary.commands} command(s), ${summary.skipped} transaction(s) skipped`);
}

/** -n: the connection inetd accepted is standard input/output. */
async function inetd(loaded: LoadedConfig, o: SmtpserverOptions, log: ReturnType<typeof sessionLog>, extras: DaemonPolicyExtras): Promise<void> {
  let isSocket = false;
  try {
    isSocket = fstatSync(0).isSocket();
  } catch {
    /* not a socket */
  }
  const env = process.env;
  const envPeer = env['SOCAT_PEERADDR'] ?? env['TCPREMOTEIP'] ?? env['REMOTE_ADDR'];
  const envPort = Number(env['SOCAT_PEERPORT'] ?? env['TCPREMOTEPORT'] ?? env['REMOTE_PORT'] ?? 0);
  if (isSocket) {
    const socket = new Socket({ fd: 0, readable: true, writable: true });
    const address = (socket.remoteAddress ?? envPeer ?? '127.0.0.1').replace(/^::ffff:/, '');
    await stdioSession(loaded, { client: { address, port: socket.remotePort ?? envPort }, socket, log, policy: extras, ...(o.bsmtp ? { protocolNote: 'BSMTP' } : {}), ...(extras.ident ? { ident: extras.ident } : {}), ...(extras.whoson ? { whoson: extras.whoson } : {}), ...(extras.gullible ? { gullible: true } : {}) });
    return;
  }
  const socket = new StdioSocket(process.stdout);
  process.stdin.on('data', (d: Buffer) => socket.push(d));
  process.stdin.on('end', () => socket.push(null));
  await stdioSession(loaded, { client: { address: (envPeer ?? '127.0.0.1').replace(/^::ffff:/, ''), port: envPort }, socket, log, policy: extras });
}

/** Run ourselves in the background; exit 0 once the child listens. */
function detach(argv: string[]): Promise<void> {
  return detachUntilReady([fileURLToPath(new URL('./main.js', import.meta.url)), 'smtpserver', ...argv], fail, { env: { ...process.env, POSTERN_SMTPSERVER_CHILD: '1' } });
}

export function smtpserverMain(argv: string[]): Promise<void> {
  return main(argv).catch((e: Error) => fail(e.message));
}
