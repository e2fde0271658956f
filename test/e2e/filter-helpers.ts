/*
 * test/e2e/filter-helpers.ts — what the filter tests share: a daemon whose
 * listener goes through a filter, helper processes (milters, rspamd …)
 * started in a temporary folder and stopped after, and one SMTP dialogue.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type DaemonHandle, REPO } from '../helpers/daemon.js';
import { RawClient } from '../helpers/smtp-client.js';

export const FIXTURES = join(REPO, 'test/fixtures');

/** smtpd.conf with one listener through filter `name`; `filters`: the filter statements. */
export function filterConfig(filters: string, name: string, extra = ''): string {
  return `queue path "$DIR/spool"
mbox path "$DIR/mail"
hostname "mx.test.example"
${filters}
listen on 127.0.0.1 port 0 filter ${name}
${extra}
action "out" relay host "smtp://127.0.0.1:9"
match from any for domain "test.example" action "out"
`;
}

export function startFiltered(filters: string, name: string, dir: string, extra = ''): Promise<DaemonHandle> {
  return startDaemon(filterConfig(filters, name, extra), { dir });
}

/** A helper process; its output is kept for a failing test's message. */
export interface Helper {
  readonly proc: ChildProcess;
  readonly output: string[];
  stop(): Promise<void>;
}

export function startHelper(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Helper {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}), env: { ...process.env, ...opts.env } });
  const output: string[] = [];
  proc.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  proc.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    proc,
    output,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Wait until `check` is true (a socket file appears, a port answers). */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A milter's unix socket has appeared. When the tests run as root, smtpd's SMTP side runs as
 * _postern (privilege separation) and must be able to connect: the socket is given to it, as an
 * administrator gives a milter's socket to the MTA's user (Postfix's `postfix`, here `_postern`).
 */
export const socketExists = (path: string) => (): boolean => {
  if (!existsSync(path)) return false;
  if (process.getuid?.() === 0) {
    const id = spawnSync('id', ['-u', '_postern'], { encoding: 'utf8' });
    if (id.status === 0) chownSync(path, Number(id.stdout.trim()), -1);
  }
  return true;
};

export interface SendResult {
  readonly mail: string;
  readonly rcpts: string[];
  readonly data?: string;
  readonly end?: string;
}

/** One message: every reply, stopping at the first refusal of MAIL or DATA. */
export async function send(port: number, from: string, to: readonly string[], message: string, client?: RawClient): Promise<SendResult> {
  const c = client ?? (await RawClient.open(port, '127.0.0.1'));
  try {
    if (!client) {
      await c.reply();
      c.send('EHLO client.test.example\r\n');
      await c.reply();
    }
    c.send(`MAIL FROM:<${from}>\r\n`);
    const mail = (await c.reply(40_000)).text;
    if (!mail.startsWith('250')) return { mail, rcpts: [] };
    const rcpts: string[] = [];
    for (const r of to) {
      c.send(`RCPT TO:<${r}>\r\n`);
      rcpts.push((await c.reply(40_000)).text);
    }
    if (!rcpts.some((r) => r.startsWith('250'))) return { mail, rcpts };
    c.send('DATA\r\n');
    const data = (await c.reply(40_000)).text;
    if (!data.startsWith('354')) return { mail, rcpts, data };
    c.send(`${message.replaceAll('\r\n', '\n').replaceAll('\n', '\r\n')}\r\n.\r\n`);
    const end = (await c.reply(60_000)).text;
    return { mail, rcpts, data, end };
  } finally {
    if (!client) c.close();
  }
}

/**
 * rspamd with a throwaway configuration in `dir` (Debian's /etc/rspamd with
 * local.d/override.d of our own): the proxy in milter mode on
 * HOST:11332 (127.0.17.1 unless told; scanning itself), the normal worker on 11333 (for
 * OpenSMTPD's filter-rspamd, which speaks HTTP), the controller on 11334;
 * no fuzzy storage, no hyperscan (its start-up compile takes minutes), DNS
 * pointed at an address where nothing answers (there is no network) unless
 * told (the bench gives it its NXDOMAIN stub).
 * Slow to start on a loaded machine: waits up to four minutes.
 */
export async function startRspamd(dir: string, host = '127.0.17.1', nameserver = '127.0.17.53:53'): Promise<Helper> {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const { connect } = await import('node:net');
  for (const d of ['local.d', 'override.d', 'db', 'run', 'log']) mkdirSync(join(dir, d), { recursive: true });
  const files: Record<string, string> = {
    'override.d/worker-proxy.inc': `milter = yes;\ntimeout = 120s;\nbind_socket = "${host}:11332";\nupstream "local" { default = yes; self_scan = yes; }\ncount = 1;\nreject_message = "Spam message rejected";\n`,
    'override.d/worker-normal.inc': `bind_socket = "${host}:11333";\ncount = 1;\n`,
    'override.d/worker-controller.inc': `bind_socket = "${host}:11334";\ncount = 1;\n`,
    'override.d/worker-fuzzy.inc': 'enabled = false;\n',
    'override.d/logging.inc': 'type = "console";\nlevel = "notice";\n',
    'local.d/options.inc': `dns { nameserver = ["${nameserver}"]; timeout = 1s; retransmits = 1; }\ndisable_hyperscan = true;\n`,
    'local.d/fuzzy_check.conf': 'enabled = false;\n',
  };
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  const h = startHelper('/usr/bin/rspamd', ['-f', '-i', '-u', 'root', '-g', 'root', '-c', '/etc/rspamd/rspamd.conf', '--var', `LOCAL_CONFDIR=${dir}`, '--var', `DBDIR=${dir}/db`, '--var', `RUNDIR=${dir}/run`, '--var', `LOGDIR=${dir}/log`]);
  const answers = (port: number) => (): Promise<boolean> =>
    new Promise((resolve) => {
      const s = connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
  try {
    await waitFor(async () => (await answers(11332)()) && (await answers(11333)()), 'rspamd', 240_000);
  } catch (e) {
    await h.stop();
    throw new Error(`${(e as Error).message}: ${h.output.join('').slice(-2000)}`);
  }
  return h;
}

/** GTUBE, the string every spam filter refuses (rspamd: action reject). */
export const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
