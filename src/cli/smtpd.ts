/*
 * cli/smtpd.ts — the `smtpd` command, as OpenSMTPD's:
 *
 *   smtpd [-dFhnv] [-D name=value] [-f file] [-T trace]
 *   smtpd -b '[ADDRESS]' [-v] [-f file]
 *
 *   -d  foreground, log to standard error      -F  foreground, log to the log file
 *   -n  check the configuration and exit       -v  verbose logging: every command and reply
 *   -f  configuration file (default /etc/mail/smtpd.conf if it exists, else the built-in one)
 *   -D  define a macro                         -T  trace a subsystem (smtp, io, rules, spool, …, all)
 *   -P  pause a subsystem at start-up: smtp, mta or mda (resume with smtpctl)
 *   -b  policy dry run: one SMTP session on stdin/stdout as if the client
 *       were ADDRESS ([192.0.2.1], [IPv6:2001:db8::1]); each reply is followed
 *       by "# …" lines naming the phase and rule that decided it; nothing is
 *       queued or delivered (ZMailer's -T, Exim's -bh; -T is OpenSMTPD's trace here)
 *   -h  help
 *
 * `smtpd -c HOME [-d SPOOL] [-u USER] [-g GROUP] -D [-L]` is Obtuse's smtpd
 * (cli/smtpd-mode.ts has the rule, cli/obtuse-smtpd.ts the launcher).
 *
 * Without -d or -F the daemon detaches: a child runs with -F and the
 * parent exits 0 once it is listening (or 1 with its error). Where the
 * log goes: -d standard error (and syslog if `log syslog` says so); else
 * the `log file`, and the system log when `log syslog` is given or there
 * is no `log file` (cli/log-setup.ts). A daemon that would log nowhere
 * refuses to detach.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
tuneHeap();

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getopt, countFlag } from './getopt.js';
import { chooseSmtpdMode } from './smtpd-mode.js';
import { logOptions, nowhereToLog, logFatal } from './log-setup.js';
import { tuneHeap } from '../daemon/heap.js';
import { loadConfigFile, loadConfigText, formatDiagnostic, type LoadResult } from '../config/load.js';
import { DEFAULT_CONFIG_TEXT } from '../config/defaults.js';
import { MailLog, TRACE_KINDS, type TraceKind } from '../log/maillog.js';
import { Daemon, type ConfigSource } from '../daemon/daemon.js';
import { resolve } from 'node:path';
import { dryRun, parseTestAddress } from '../daemon/dry-run.js';
import { startupWarnings } from '../daemon/startup-warnings.js';
import { detachUntilReady } from './detach.js';
import { withPolicyFilesOrExit } from './config-for-tools.js';
import { childLink } from '../daemon/privsep/child.js';
import { DEFAULT_PRIVSEP_USER, privsepUser, runParent } from '../daemon/privsep/parent.js';

const USAGE = 'usage: smtpd [-dFhnv] [-b address] [-D name=value] [-f file] [-P subsystem] [-T trace]';
const SYSTEM_CONFIG = '/etc/mail/smtpd.conf';

function fail(msg: string): never {
  process.stderr.write(`smtpd: ${msg}\n`);
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  // `-c HOME` is Obtuse's smtpd (seed 001); a mix of the two is one line (cli/smtpd-mode.ts).
  const mode = chooseSmtpdMode(argv);
  if (mode.kind === 'error') fail(mode.message);
  if (mode.kind === 'obtuse') return (await import('./obtuse-smtpd.js')).obtuseSmtpdMain(mode.options, fail);
  const opts = getopt(argv, 'dFhnvb:D:f:T:P:');
  if ('error' in opts) fail(`${opts.error} (${USAGE})`);
  if (opts.flags.has('h')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (opts.operands.length > 0) fail(`unexpected argument "${opts.operands[0]}" (${USAGE})`);

  const macros = new Map<string, string>();
  for (const d of opts.values.get('D') ?? []) {
    const eq = d.indexOf('=');
    if (eq <= 0) fail(`-D ${d}: expected name=value`);
    macros.set(d.slice(0, eq), d.slice(eq + 1));
  }
  const trace = new Set<TraceKind>();
  for (const t of (opts.values.get('T') ?? []).flatMap((x) => x.split(','))) {
    if (t === 'all') TRACE_KINDS.forEach((k) => trace.add(k));
    else if ((TRACE_KINDS as readonly string[]).includes(t)) trace.add(t as TraceKind);
    else fail(`unknown trace subsystem "${t}" (one of: ${TRACE_KINDS.join(', ')}, all)`);
  }

  const pause: ('smtp' | 'mta' | 'mda')[] = [];
  for (const p of (opts.values.get('P') ?? []).flatMap((x) => x.split(','))) {
    if (p !== 'smtp' && p !== 'mta' && p !== 'mda') fail(`-P ${p}: expected smtp, mta or mda`);
    pause.push(p);
  }
  const file = opts.values.get('f')?.at(-1);
  let result: LoadResult;
  let source: ConfigSource;
  if (file !== undefined) {
    if (!existsSync(file)) fail(`${file}: no such file`);
    source = { file: resolve(file), macros };
    result = loadConfigFile(file, { macros });
  } else if (existsSync(SYSTEM_CONFIG)) {
    source = { file: SYSTEM_CONFIG, macros };
    result = loadConfigFile(SYSTEM_CONFIG, { macros });
  } else {
    source = { text: DEFAULT_CONFIG_TEXT, macros };
    result = loadConfigText(DEFAULT_CONFIG_TEXT, '<built-in>', { macros });
  }
  for (const d of result.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
  if (!result.config) {
    const n = result.diagnostics.filter((d) => d.severity === 'error').length;
    if (opts.flags.has('n')) process.exit(1);
    fail(`${n} error(s) in the configuration`);
  }
  const config = result.config;
  // The policy files named by `rules` and `smtpserver-conf` are checked too (and merged in: the daemon does the same at start).
  const loaded = withPolicyFilesOrExit(config);
  const test = opts.values.get('b')?.at(-1);
  // The daemon logs these warnings itself.
  if (opts.flags.has('n') || test !== undefined) for (const w of startupWarnings(loaded)) process.stderr.write(`${w}\n`);
  if (opts.flags.has('n')) {
    process.stdout.write('configuration OK\n');
    return;
  }
  if (test !== undefined) {
    const a = parseTestAddress(test);
    if ('error' in a) fail(`-b ${a.error}`);
    const log = new MailLog(opts.flags.has('v') ? { verbose: true, trace } : { sink: () => undefined });
    await dryRun(loaded, { address: a.address, log, input: process.stdin, output: process.stdout });
    process.exit(0);
  }

  const foreground = opts.flags.has('d') || opts.flags.has('F');
  if (!foreground) {
    const nowhere = nowhereToLog(config);
    if (nowhere) fail(nowhere);
    return detach(argv);
  }

  const verbosity = countFlag(argv, 'dFhnvb:D:f:T:P:', 'v');
  // -v: every command and reply (AUTH's arguments hidden), as issue 20 asks (-v -v is the same).
  if (verbosity > 0) trace.add('io');
  // Started as root: a privileged parent stays root and starts the SMTP side, which gives up root (docs/architecture.md).
  const link = childLink();
  if (!link && process.getuid?.() === 0) {
    const user = privsepUser(config.privsepUser ?? DEFAULT_PRIVSEP_USER);
    if ('error' in user) fail(user.error);
    const plog = new MailLog(logOptions(config, { stderr: opts.flags.has('d'), verbose: verbosity > 0, trace }));
    logFatal(plog);
    try {
      runParent({ config, source, log: plog, childArgs: [fileURLToPath(import.meta.url), ...argv], user });
    } catch (e) {
      plog.flush();
      fail((e as Error).message);
    }
    return;
  }
  const log = new MailLog(link ? { relay: link, verbose: verbosity > 0, trace, ...(config.paths.logFormat !== undefined ? { format: config.paths.logFormat } : {}) } : logOptions(config, { stderr: opts.flags.has('d'), verbose: verbosity > 0, trace }));
  logFatal(log, link ? () => link.flush() : undefined);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, log, { pause, source, ...(link ? { privsep: link } : {}) });
  } catch (e) {
    const msg = (e as Error).message;
    if (link) await link.fatal(msg);
    else if (process.send) process.send({ error: msg });
    log.flush();
    fail(msg);
  }
  if (link) link.ready();
  else if (process.send) {
    process.send({ ready: true });
    process.disconnect();
  }
  let signals = 0;
  const stop = (sig: string): void => {
    if (++signals > 1) {
      log.warn(`${sig} again: exiting now`);
      process.exit(1);
    }
    // Under privilege separation the last lines ("smtpd exiting") go to the parent before the exit.
    const exit = (code: number): void => void (link ? link.flush() : Promise.resolve()).finally(() => process.exit(code));
    daemon.shutdown(`received ${sig}`).then(
      () => exit(0),
      (e: Error) => {
        log.error(`shutdown: ${e.message}`);
        exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  // The SMTP side leaves SIGINT (a terminal's ^C reaches both processes) to the parent, which passes it on once.
  process.on('SIGINT', () => (link ? undefined : stop('SIGINT')));
  // The parent died (kill -9): exit at once, as if killed too — no shutdown, so that nothing in flight is recorded
  // as a failure (the spool loses nothing; a restart, or another node once the leases lapse, delivers it again),
  // and a restarted smtpd finds neither this process on the spool nor on the control socket.
  link?.onParentGone(() => {
    process.stderr.write('smtpd: the privileged parent is gone: exiting\n');
    process.exit(1);
  });
  // SIGHUP is `smtpctl reload`: configuration, tables and certificates; an invalid configuration is refused and logged.
  process.on('SIGHUP', () => void daemon.reload());
  // SIGUSR1: the log file again by its name, after logrotate moved it.
  process.on('SIGUSR1', () => log.reopen());
  daemon.onStopRequest = () => stop('smtpctl stop');
}

/** Run ourselves in the background with -F; exit once the child is listening. */
function detach(argv: string[]): Promise<void> {
  return detachUntilReady([fileURLToPath(import.meta.url), ...argv, '-F'], fail, { cwd: process.cwd() });
}

main(process.argv.slice(2)).catch((e: Error) => fail(e.message));
