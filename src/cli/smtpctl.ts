/*
 * cli/smtpctl.ts — control the running daemon, as OpenSMTPD's smtpctl(8):
 *
 *   smtpctl [-f file] [--json] [--human] command [argument ...]
 *
 * The commands are the table COMMANDS below (grammar in control/grammar.ts:
 * any unambiguous prefix of a word will do, `smtpctl sh q`). They talk to
 * the daemon through its control socket (control/protocol.ts), found in
 * the configuration (`-f`, $POSTERN_CONFIG, /etc/mail/smtpd.conf, built-in,
 * as the other tools). `show queue`, `show envelope` and `show message`
 * read the spool directly when the daemon is stopped; `encrypt` and `help`
 * need no daemon at all.
 *
 * Output: `show …` prints text (OpenSMTPD's formats, control/format.ts),
 * or with --json the daemon's data as JSON. Diagnostics are one line on
 * standard error, "smtpctl: …", with exit status 1: daemon not running,
 * permission denied on the socket, unknown id, unknown command or option.
 */
import { createInterface } from 'node:readline';
import { hashPassword } from '../auth/hash.js';
import type { Config } from '../config/model.js';
import { ConnectError, ControlClient, RemoteError } from '../control/client.js';
import { MonitorPrinter, envelopeLines, listLines, queueLine, queueTable, statsLines, statusLines } from '../control/format.js';
import { Grammar, type GrammarEntry } from '../control/grammar.js';
import { OfflineError, offlineEnvelope, offlineMessage, offlineQueue } from '../control/offline.js';
import { openSpoolForReading } from './read-spool.js';
import type { Args, CommandName } from '../control/protocol.js';
import type { EnvelopeDetails, QueueEntry } from '../control/queue-view.js';
import { isDigest, type Digest, type StatsView } from '../control/stats-view.js';
import { getopt } from './getopt.js';
import { toolConfig } from './config-for-tools.js';

const USAGE = 'usage: smtpctl [-f file] [--json] [--human] command [argument ...]';

/** Where smtpctl reads and writes (the process's streams, or a test's buffers). */
export interface Io {
  out(s: string | Buffer): void;
  err(s: string): void;
  /** Standard input, line by line (encrypt without an argument). */
  lines(): AsyncIterable<string>;
  /** Ends a running `monitor` (tests); the process's is never aborted. */
  readonly signal?: AbortSignal;
}

interface Ctx {
  readonly prog: string;
  readonly io: Io;
  readonly params: Readonly<Record<string, string>>;
  readonly json: boolean;
  readonly human: boolean;
  config(): Config;
}

type Run = (ctx: Ctx) => Promise<void>;

/** A failure to report as one line. */
class Fail extends Error {}

/* ------------------------------------------------------------- helpers */

async function connect(ctx: Ctx): Promise<ControlClient> {
  return ControlClient.connect(ctx.config().paths.controlSocket);
}

/** Run `fn` on a connection to the daemon. */
async function daemon<T>(ctx: Ctx, fn: (c: ControlClient) => Promise<T>): Promise<T> {
  const c = await connect(ctx);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/** Ask the daemon; when it is not running, `offline()` answers from the spool. */
async function daemonOr<T>(ctx: Ctx, online: (c: ControlClient) => Promise<T>, offline: () => Promise<T>): Promise<T> {
  let c: ControlClient;
  try {
    c = await connect(ctx);
  } catch (e) {
    if (e instanceof ConnectError && e.kind === 'not-running') return offline();
    throw e;
  }
  try {
    return await online(c);
  } finally {
    c.close();
  }
}

function printJson(ctx: Ctx, data: unknown): void {
  ctx.io.out(`${JSON.stringify(data, null, 2)}\n`);
}

/** A daemon command answered by "command succeeded" (OpenSMTPD's words), or its data with --json. */
function simple(name: CommandName, argsOf: (p: Readonly<Record<string, string>>) => Args = () => ({})): Run {
  return async (ctx) => {
    const data = await daemon(ctx, (c) => c.request(name, argsOf(ctx.params)));
    if (ctx.json) printJson(ctx, data);
    else ctx.io.out('command succeeded\n');
  };
}

/** schedule / remove / pause envelope / resume envelope: "N envelopes VERB". */
function counted(name: CommandName, verb: string): Run {
  return async (ctx) => {
    const target = ctx.params['id'] ?? 'all';
    const data = (await daemon(ctx, (c) => c.request(name, { target }))) as { count?: unknown; direct?: unknown; elsewhere?: unknown };
    if (ctx.json) return printJson(ctx, data);
    const n = typeof data?.count === 'number' ? data.count : 0;
    ctx.io.out(`${n} envelope${n === 1 ? '' : 's'} ${verb}\n`);
    // A cluster (docs/cluster.md): what no node holds was done in the database; lease holders act at their next poll.
    if (typeof data?.direct === 'number' && data.direct > 0) ctx.io.out(`${data.direct} envelope${data.direct === 1 ? '' : 's'} no node holds: ${verb} in the shared queue\n`);
    if (Array.isArray(data?.elsewhere)) {
      for (const e of data.elsewhere as { node?: unknown; messages?: unknown }[]) ctx.io.out(`${String(e.messages)} message(s) leased by node ${String(e.node)}: asked to act (within a second)\n`);
    }
  };
}

/* ------------------------------------------------------------ commands */

const showQueue: Run = async (ctx) => {
  const msgid = ctx.params['msgid'];
  const args: Args = msgid === undefined ? {} : { msgid };
  const entries = await daemonOr(
    ctx,
    async (c) => (await c.request('show queue', args)) as QueueEntry[],
    () => offlineQueue(ctx.config(), () => openSpoolForReading(ctx.config()), msgid),
  );
  if (ctx.json) return printJson(ctx, entries);
  if (ctx.human) return ctx.io.out(queueTable(entries, Date.now()));
  ctx.io.out(entries.map((e) => `${queueLine(e)}\n`).join(''));
};

const showEnvelope: Run = async (ctx) => {
  const evpid = ctx.params['evpid'] as string;
  const d = await daemonOr(
    ctx,
    async (c) => (await c.request('show envelope', { evpid })) as EnvelopeDetails,
    () => offlineEnvelope(ctx.config(), () => openSpoolForReading(ctx.config()), evpid),
  );
  if (ctx.json) return printJson(ctx, d);
  ctx.io.out(envelopeLines(d, Date.now()));
};

const showMessage: Run = async (ctx) => {
  const id = ctx.params['id'] as string;
  const parts: Buffer[] = [];
  const emit = (b: Buffer): void => {
    if (ctx.json) parts.push(b);
    else ctx.io.out(b);
  };
  await daemonOr(
    ctx,
    (c) =>
      c.stream('show message', { id }, (d) => {
        const chunk = (d as { chunk?: unknown }).chunk;
        if (typeof chunk === 'string') emit(Buffer.from(chunk, 'base64'));
      }),
    async () => {
      for await (const b of await offlineMessage(() => openSpoolForReading(ctx.config()), id)) emit(b as Buffer);
    },
  );
  if (ctx.json) {
    const all = Buffer.concat(parts);
    printJson(ctx, { msgid: id.slice(0, 8), size: all.length, base64: all.toString('base64') });
  }
};

function show(name: CommandName, text: (data: unknown) => string): Run {
  return async (ctx) => {
    const data = await daemon(ctx, (c) => c.request(name));
    if (ctx.json) printJson(ctx, data);
    else ctx.io.out(text(data));
  };
}

const monitor: Run = async (ctx) => {
  const printer = new MonitorPrinter();
  let prev: Digest | undefined;
  await daemon(ctx, async (c) => {
    const done = c.stream('monitor', {}, (d) => {
      if (!isDigest(d)) return;
      if (ctx.json) ctx.io.out(`${JSON.stringify(MonitorPrinter.delta(prev, d))}\n`);
      else ctx.io.out(printer.line(d));
      prev = d;
    });
    const signal = ctx.io.signal;
    if (signal === undefined) return done;
    const stopped = new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    await Promise.race([done, stopped]);
    return undefined;
  });
};

const encrypt: Run = async (ctx) => {
  const s = ctx.params['string'];
  if (s !== undefined) return ctx.io.out(`${await hashPassword(s)}\n`);
  for await (const line of ctx.io.lines()) {
    if (line === '') continue;
    ctx.io.out(`${await hashPassword(line)}\n`);
  }
};

const reload: Run = async (ctx) => {
  try {
    await daemon(ctx, (c) => c.request('reload'));
  } catch (e) {
    if (e instanceof RemoteError) throw new Fail(`reload failed, smtpd keeps the configuration in force: ${e.message}`);
    throw e;
  }
  if (ctx.json) printJson(ctx, { reloaded: true });
  else ctx.io.out('command succeeded\n');
};

const help: Run = async (ctx) => {
  ctx.io.out(`${USAGE}\n\ncommands (any unambiguous prefix of a word will do: "smtpctl sh q"):\n${GRAMMAR.help()}`);
};

const COMMANDS: readonly GrammarEntry<Run>[] = [
  { pattern: 'show queue', help: 'every queued envelope (pipe-separated; --human: a table; --json)', value: showQueue },
  { pattern: 'show queue <msgid>', help: 'the envelopes of one message', value: showQueue },
  { pattern: 'show envelope <evpid>', help: 'everything about one envelope, with its history', value: showEnvelope },
  { pattern: 'show message <id>', help: 'the stored message (a message or envelope id)', value: showMessage },
  { pattern: 'show stats', help: 'counters, key=value', value: show('show stats', (d) => statsLines(d as StatsView)) },
  { pattern: 'show status', help: 'whether smtp, mta and mda are paused; whether the queue is still loading', value: show('show status', (d) => statusLines(d as { smtp: string; mta: string; mda: string; queue?: string; messages?: number })) },
  { pattern: 'show hosts', help: "the relay agent's view of remote hosts", value: show('show hosts', (d) => listLines(Array.isArray(d) ? d : [])) },
  { pattern: 'show routes', help: "the relay agent's routes", value: show('show routes', (d) => listLines(Array.isArray(d) ? d : [])) },
  { pattern: 'show cluster', help: 'the shared queue (queue postgresql): each message and the node holding its lease', value: show('show cluster', (d) => listLines(Array.isArray(d) ? d : [])) },
  { pattern: 'schedule <id>', help: 'try a message or an envelope now', value: counted('schedule', 'scheduled') },
  { pattern: 'schedule all', help: 'try every queued envelope now', value: counted('schedule', 'scheduled') },
  { pattern: 'remove <id>', help: 'drop a message or an envelope, without a bounce', value: counted('remove', 'removed') },
  { pattern: 'remove all', help: 'drop every queued envelope, without bounces', value: counted('remove', 'removed') },
  { pattern: 'pause envelope <id>', help: 'hold a message or an envelope (kept, never tried, never expires)', value: counted('pause envelope', 'paused') },
  { pattern: 'pause envelope all', help: 'hold every queued envelope', value: counted('pause envelope', 'paused') },
  { pattern: 'pause smtp', help: 'stop accepting SMTP connections', value: simple('pause smtp') },
  { pattern: 'pause mta', help: 'stop relaying (mail keeps being queued)', value: simple('pause mta') },
  { pattern: 'pause mda', help: 'stop local deliveries (mail keeps being queued)', value: simple('pause mda') },
  { pattern: 'resume envelope <id>', help: 'release a held message or envelope', value: counted('resume envelope', 'resumed') },
  { pattern: 'resume envelope all', help: 'release every held envelope', value: counted('resume envelope', 'resumed') },
  { pattern: 'resume smtp', help: 'accept SMTP connections again', value: simple('resume smtp') },
  { pattern: 'resume mta', help: 'relay again', value: simple('resume mta') },
  { pattern: 'resume mda', help: 'deliver locally again', value: simple('resume mda') },
  { pattern: 'log brief', help: 'normal logging', value: simple('log brief') },
  { pattern: 'log verbose', help: 'debug logging', value: simple('log verbose') },
  { pattern: 'monitor', help: 'one line of activity a second (Ctrl-C to end)', value: monitor },
  { pattern: 'update table <name>', help: 're-read one table', value: simple('update table', (p) => ({ name: p['name'] ?? '' })) },
  { pattern: 'encrypt', help: 'a bcrypt hash of each line of standard input (no daemon needed)', value: encrypt },
  { pattern: 'encrypt <string>', help: 'a bcrypt hash of the string, for credentials tables', value: encrypt },
  { pattern: 'reload', help: 're-read the configuration and tables (kept if invalid), as SIGHUP', value: reload },
  { pattern: 'stop', help: 'stop smtpd gracefully, as SIGTERM', value: simple('stop') },
  { pattern: 'help', help: 'this list', value: help },
];

const GRAMMAR = new Grammar(COMMANDS);

/* ---------------------------------------------------------------- main */

/** Run smtpctl; returns the exit status. */
export async function smtpctl(argv: readonly string[], io: Io, prog = 'smtpctl'): Promise<number> {
  const fail = (msg: string): number => {
    io.err(`${prog}: ${msg}\n`);
    return 1;
  };
  let json = false;
  let human = false;
  let wantHelp = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--json') json = true;
    else if (a === '--human') human = true;
    else if (a === '--help') wantHelp = true;
    else if (a.startsWith('--')) return fail(`unknown option ${a} (${USAGE})`);
    else rest.push(a);
  }
  const opts = getopt(rest, 'f:h');
  if ('error' in opts) return fail(`${opts.error} (${USAGE})`);
  if (wantHelp || opts.flags.has('h')) return (await help({ prog, io, params: {}, json, human, config: () => toolConfig(undefined, prog) }), 0);
  const parsed = GRAMMAR.parse(opts.operands);
  if (!parsed.ok) return fail(parsed.error);
  const file = opts.values.get('f')?.at(-1);
  let config: Config | undefined;
  const ctx: Ctx = { prog, io, params: parsed.params, json, human, config: () => (config ??= toolConfig(file, prog)) };
  try {
    await parsed.entry.value(ctx);
    return 0;
  } catch (e) {
    if (e instanceof ConnectError || e instanceof RemoteError || e instanceof OfflineError || e instanceof Fail) return fail(e.message);
    return fail(`${parsed.words.join(' ')}: ${(e as Error).message}`);
  }
}

function processIo(): Io {
  // `smtpctl show queue | head`: a reader that goes away ends smtpctl quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    process.stderr.write(`smtpctl: standard output: ${e.message}\n`);
    process.exit(1);
  });
  return {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
    lines: () => createInterface({ input: process.stdin, crlfDelay: Infinity }),
  };
}

/** Entry point for cli/main.ts (and `sendmail -q`). */
export async function main(argv: string[], prog: string): Promise<void> {
  process.exitCode = await smtpctl(argv, processIo(), prog);
}
